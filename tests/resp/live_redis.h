// Test helpers that talk to a real redis-server started by the test (on
// 127.0.0.1, a port in resp's range 16400-16499, no persistence) and record
// the exact request and reply bytes of each exchange.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "resp/parser.h"

namespace kvf::resp::testing {

// Encodes a command as a RESP multibulk request.
inline std::string Cmd(std::initializer_list<std::string_view> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out.append(a);
    out += "\r\n";
  }
  return out;
}
inline std::string Cmd(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return out;
}

inline bool HaveRedisServer() {
  return std::system("command -v redis-server >/dev/null 2>&1") == 0;
}

// A blocking client socket.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends `bytes` and returns the exact bytes of the next `replies` replies
  // (RESP3 pushes count as replies too). Empty string on timeout/close.
  std::string Send(std::string_view bytes, int replies) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return {};
      off += static_cast<size_t>(n);
    }
    return Receive(replies);
  }
  // Whatever arrives within `ms` milliseconds of quiet (bytes that need not
  // be RESP: a replication stream's RDB payload).
  std::string ReceiveFor(int ms) {
    std::string out;
    for (;;) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, ms) <= 0) return out;
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  std::string Receive(int replies) {
    std::string out;
    while (CountReplies(out) < replies) {
      char buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return {};
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  static int CountReplies(const std::string& bytes) {
    Limits deep;
    deep.max_depth = 1 << 14;  // a script's reply may nest thousands deep
    Parser p(Parser::Mode::kReply, deep);
    p.Feed(bytes);
    int n = 0;
    while (p.Next() == ParseStatus::kMessage) ++n;
    return n;
  }
  int fd_ = -1;
};

// A redis-server child process, killed (and reaped) on destruction. Its RDB
// file (written only when a replica syncs from disk) is its own, so that no
// server starts with another test's data, and is removed with it.
class LiveRedis {
 public:
  // `extra`: more configuration, as redis-server's own arguments
  // ("--rename-command", "SET", "PUT").
  explicit LiveRedis(int port, const std::vector<std::string>& extra = {})
      : port_(port), rdb_("kvft-live-" + std::to_string(::getpid()) + "-" + std::to_string(port) + ".rdb") {
    ::unlink(("/tmp/" + rdb_).c_str());
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--enable-debug-command",
                                     "yes",
                                     "--logfile",
                                     "/dev/null",
                                     "--dir",
                                     "/tmp",
                                     "--dbfilename",
                                     rdb_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a test that crashed
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    // Up when it answers, and only if it is this child: a server left on the
    // port by an earlier run (whose data a test would then read) answers
    // too, while this child fails to bind and exits.
    const std::string mine = "process_id:" + std::to_string(pid_) + "\r\n";
    // (A server given --requirepass is asked after an AUTH.)
    std::string auth, auth_name = "AUTH";
    for (size_t i = 0; i + 2 < extra.size(); ++i) {
      if (extra[i] == "--rename-command" && extra[i + 1] == "AUTH") auth_name = extra[i + 2];
    }
    for (size_t i = 0; i + 1 < extra.size(); ++i) {
      if (extra[i] == "--requirepass") auth = Cmd({auth_name, extra[i + 1]});
    }
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      RawClient c(port_);
      if (c.ok() && c.Send(auth + "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n", auth.empty() ? 1 : 2).find(mine) !=
                        std::string::npos) {
        ok_ = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~LiveRedis() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::unlink(("/tmp/" + rdb_).c_str());
  }
  LiveRedis(const LiveRedis&) = delete;
  LiveRedis& operator=(const LiveRedis&) = delete;
  bool ok() const { return ok_; }
  int port() const { return port_; }

 private:
  int port_;
  std::string rdb_;
  pid_t pid_ = -1;
  bool ok_ = false;
};

}  // namespace kvf::resp::testing
