// `kvferryctl decode` end to end: the shared write workload runs against a
// source redis-server while tcpdump captures the loopback traffic to a pcap;
// `decode --format resp | redis-cli --pipe` into an empty replica must give a
// dataset equal to the source key by key (type, DEBUG DIGEST-VALUE, TTL within
// 1 s). Needs root (tcpdump on lo) and tcpdump/redis-cli installed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/common/packet_builder.h"
#include "tests/resp/live_redis.h"
#include "tests/resp/workload.h"

namespace kvf::resp {
namespace {

using namespace testing;  // NOLINT

constexpr int kSourcePort = 16450;
constexpr int kReplicaPort = 16451;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A classic pcap written on this host (native byte order): its 24-byte file
// header and its records, each with its 16-byte record header.
struct Pcap {
  std::string header;
  std::vector<std::string> records;
};

// False if `path` is not a whole classic pcap.
bool ReadPcap(const std::string& path, Pcap* out) {
  const std::string all = ReadFile(path);
  if (all.size() < 24) return false;
  out->header = all.substr(0, 24);
  out->records.clear();
  for (size_t at = 24; at < all.size();) {
    uint32_t caplen;
    if (at + 16 > all.size()) return false;
    std::memcpy(&caplen, all.data() + at + 8, 4);
    if (at + 16 + caplen > all.size()) return false;
    out->records.push_back(all.substr(at, 16 + caplen));
    at += 16 + caplen;
  }
  return true;
}

void WritePcap(const std::string& path, const std::string& header, const std::vector<std::string>& records) {
  std::ofstream f(path, std::ios::binary);
  f << header;
  for (const std::string& r : records) f << r;
}

// Where a record's Ethernet + IPv4 + TCP headers are: the IPv4 header's
// offset in the record and the TCP source port, or false for anything else.
bool TcpOverIpv4(const std::string& record, size_t* ip, int* src_port) {
  const auto* b = reinterpret_cast<const uint8_t*>(record.data()) + 16;
  const size_t caplen = record.size() - 16;
  if (caplen < 14 + 20 + 4 || b[12] != 0x08 || b[13] != 0x00) return false;
  const size_t tcp = 14 + size_t{b[14] & 0x0fu} * 4;
  if (caplen < tcp + 4) return false;
  *ip = 16 + 14;
  *src_port = b[tcp] << 8 | b[tcp + 1];
  return true;
}

// Cuts a classic pcap file into `parts` files (the header repeated, frames
// dealt out in order, about equally), as `tcpdump -C` rotation does; returns
// their paths, or nothing if `path` is not a classic pcap.
std::vector<std::string> SplitPcap(const std::string& path, int parts, const std::string& prefix) {
  Pcap pcap;
  if (!ReadPcap(path, &pcap)) return {};
  std::vector<std::string> out;
  const size_t n = pcap.records.size();
  for (int i = 0; i < parts; ++i) {
    const auto from = pcap.records.begin() + static_cast<std::ptrdiff_t>(n * static_cast<size_t>(i) / parts);
    const auto to =
        pcap.records.begin() + static_cast<std::ptrdiff_t>(n * static_cast<size_t>(i + 1) / parts);
    out.push_back(prefix + std::to_string(i));
    WritePcap(out.back(), pcap.header, std::vector<std::string>(from, to));
  }
  return out;
}

// Rewrites a classic pcap (Ethernet, IPv4, microsecond stamps, as tcpdump
// writes on lo) as a mirror that delays one direction by `delay_us` would:
// the frames from (`from_server`) or to `server_port` are stamped later by
// that much and the file is sorted by time, so replies come before their
// requests (or requests before the replies they acknowledge). Returns the
// number of frames that changed place, or -1 if `in` is not such a file.
int DelayDirection(const std::string& in, const std::string& out, int server_port, bool from_server,
                   uint32_t delay_us) {
  Pcap pcap;
  uint32_t magic = 0, link = 0;
  if (!ReadPcap(in, &pcap)) return -1;
  std::memcpy(&magic, pcap.header.data(), 4);
  std::memcpy(&link, pcap.header.data() + 20, 4);
  if (magic != 0xa1b2c3d4 || link != 1) return -1;
  struct Frame {
    uint64_t us;
    size_t index;
  };
  std::vector<Frame> frames;
  for (std::string& r : pcap.records) {
    uint32_t sec, usec;
    std::memcpy(&sec, r.data(), 4);
    std::memcpy(&usec, r.data() + 4, 4);
    Frame f{uint64_t{sec} * 1'000'000 + usec, frames.size()};
    size_t ip;
    int src_port;
    if (TcpOverIpv4(r, &ip, &src_port) && (src_port == server_port) == from_server) {
      f.us += delay_us;
      const uint32_t s2 = static_cast<uint32_t>(f.us / 1'000'000),
                     u2 = static_cast<uint32_t>(f.us % 1'000'000);
      std::memcpy(r.data(), &s2, 4);
      std::memcpy(r.data() + 4, &u2, 4);
    }
    frames.push_back(f);
  }
  std::stable_sort(frames.begin(), frames.end(), [](const Frame& a, const Frame& b) { return a.us < b.us; });
  std::vector<std::string> sorted;
  int moved = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    moved += frames[i].index != i;
    sorted.push_back(std::move(pcap.records[frames[i].index]));
  }
  WritePcap(out, pcap.header, sorted);
  return moved;
}

// Rewrites a classic pcap (Ethernet, IPv4) as a capture on both sides of a
// DNAT would hold it (tcpdump -i any on a Docker host): each frame to or
// from `server_port` twice, once as it is and once with the server's
// address replaced by 127.0.0.2, the translated copy after the original
// towards the server and before it from the server. Returns the frames
// doubled, or -1 if `in` is not such a file.
int DoubleThroughNat(const std::string& in, const std::string& out, int server_port) {
  Pcap pcap;
  uint32_t link = 0;
  if (!ReadPcap(in, &pcap)) return -1;
  std::memcpy(&link, pcap.header.data() + 20, 4);
  if (link != 1) return -1;
  std::vector<std::string> doubled;
  for (const std::string& r : pcap.records) {
    size_t ip;
    int src_port;
    if (!TcpOverIpv4(r, &ip, &src_port)) {
      doubled.push_back(r);
      continue;
    }
    const bool from_server = src_port == server_port;
    std::string copy = r;
    auto* h = reinterpret_cast<uint8_t*>(copy.data()) + ip;
    h[from_server ? 15 : 19] = 2;  // 127.0.0.1 -> 127.0.0.2 (last byte of src/dst)
    h[10] = h[11] = 0;             // the IPv4 header checksum, again
    const uint16_t sum = kvf::testing::InetChecksum(h, size_t{h[0] & 0x0fu} * 4);
    h[10] = static_cast<uint8_t>(sum >> 8);
    h[11] = static_cast<uint8_t>(sum);
    doubled.push_back(from_server ? copy : r);
    doubled.push_back(from_server ? r : copy);
  }
  WritePcap(out, pcap.header, doubled);
  return static_cast<int>(doubled.size() - pcap.records.size());
}

// tcpdump child writing `pcap`, stopped (SIGINT, so it flushes) and reaped.
// In immediate mode libpcap's ring has one slot per snap length: 70,000
// bytes (a loopback frame is at most 65,550) and 128 MiB give about 1,900
// slots, where -s 0 (256 KiB) and 64 MiB gave 250, which a loaded machine
// overran in a burst of a few hundred packets.
// `link` picks the link type (-y) when not empty: on `-i any` tcpdump writes
// Linux cooked v2 frames by default, LINUX_SLL asks for v1.
class Tcpdump {
 public:
  Tcpdump(const std::string& pcap, const std::string& log, int port, const char* iface = "lo",
          const char* link = nullptr, const char* snaplen = "70000")
      : log_(log) {
    ::unlink(log.c_str());  // "listening" below must be this tcpdump's
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log.c_str(), "w", stderr);
      (void)f;
      const std::string filter = "tcp port " + std::to_string(port);
      if (link != nullptr) {
        ::execlp("tcpdump", "tcpdump", "--immediate-mode", "-B", "131072", "-i", iface, "-y", link, "-s",
                 snaplen, "-w", pcap.c_str(), filter.c_str(), static_cast<char*>(nullptr));
      } else {
        ::execlp("tcpdump", "tcpdump", "--immediate-mode", "-B", "131072", "-i", iface, "-s", snaplen, "-w",
                 pcap.c_str(), filter.c_str(), static_cast<char*>(nullptr));
      }
      ::_exit(127);
    }
    for (int i = 0; i < 200 && ReadFile(log).find("listening") == std::string::npos; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  void Stop() {
    if (pid_ <= 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(pid_, SIGINT);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~Tcpdump() { Stop(); }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

// kvferryctl of this build: under KVF_BINARY_DIR, or else two levels above
// this binary (tests/resp/).
std::string CtlPath() {
  std::string bin;
  if (const char* env = std::getenv("KVF_BINARY_DIR")) {
    bin = env;
  } else {
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return "";
    bin.assign(self, static_cast<size_t>(n));
    for (int up = 0; up < 3; ++up) bin.resize(bin.rfind('/'));
  }
  return bin + "/ctl/kvferryctl";
}

TEST(RespDecodePcap, DecodeRespPipeRebuildsTheSource) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: tcpdump on lo";
  if (std::system("command -v tcpdump >/dev/null && command -v redis-cli >/dev/null") != 0 ||
      !HaveRedisServer()) {
    GTEST_SKIP() << "needs tcpdump, redis-cli and redis-server";
  }
  const std::string ctl = CtlPath();
  ASSERT_EQ(::access(ctl.c_str(), X_OK), 0) << ctl;
  const std::string dir = "/tmp/kvft-resp-decode-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string pcap = dir + "/capture.pcap";

  LiveRedis source(kSourcePort), replica(kReplicaPort);
  ASSERT_TRUE(source.ok() && replica.ok());
  // The workload captured three ways, each on its own run: on lo
  // (Ethernet), and as `tcpdump -i any` writes it, Linux cooked v2 (its
  // default) and v1. A capture that dropped packets (a busy machine) is taken
  // again. The lo capture is the one the checks further down read.
  struct Way {
    std::string file;
    const char* iface;
    const char* link;
  };
  const Way ways[] = {{pcap, "lo", nullptr},
                      {dir + "/any.pcap", "any", nullptr},
                      {dir + "/any-sll.pcap", "any", "LINUX_SLL"}};
  const std::string source_cli = "redis-cli -p " + std::to_string(kSourcePort) + " ";
  for (const Way& way : ways) {
    SCOPED_TRACE(way.file);
    std::string dump_log;
    for (int attempt = 0; attempt < 5; ++attempt) {
      ASSERT_EQ(std::system((source_cli + "flushall >/dev/null && " + source_cli +
                             "script flush >/dev/null && " + source_cli + "function flush >/dev/null")
                                .c_str()),
                0);
      {
        Tcpdump dump(way.file, dir + "/tcpdump.log", kSourcePort, way.iface, way.link);
        VectorSink unused;
        MirroredClient c(kSourcePort, &unused, 1), other(kSourcePort, &unused, 2);
        RunWorkload(c, other);
        dump.Stop();
      }
      dump_log = ReadFile(dir + "/tcpdump.log");
      if (dump_log.find("\n0 packets dropped by kernel") != std::string::npos) break;
    }
    if (dump_log.find("\n0 packets dropped by kernel") == std::string::npos) {
      // tcpdump -i any drops now and then while other tests load the
      // machine (its ring fills up in blocks): the cooked ways are a check
      // of the link layer only, the lo capture is the one that must be whole.
      ASSERT_STRNE(way.iface, "lo") << "capture incomplete five times: " << dump_log;
      std::fprintf(stderr, "note: %s dropped packets five times; not checked\n", way.file.c_str());
      continue;
    }
    const auto src = Snapshot(kSourcePort, 4);
    EXPECT_GT(src.size(), 80u);
    ASSERT_EQ(std::system(("redis-cli -p " + std::to_string(kReplicaPort) + " flushall >/dev/null").c_str()),
              0);
    const std::string cmd = ctl + " decode --pcap " + way.file +
                            " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format resp 2>" + dir +
                            "/decode.err | redis-cli -p " + std::to_string(kReplicaPort) + " --pipe >" + dir +
                            "/pipe.out 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFile(dir + "/pipe.out") << ReadFile(dir + "/decode.err");
    EXPECT_NE(ReadFile(dir + "/pipe.out").find("errors: 0"), std::string::npos)
        << ReadFile(dir + "/pipe.out");
    const auto diff = Differences(src, Snapshot(kReplicaPort, 4));
    for (const auto& [db, key] : diff) ADD_FAILURE() << "db" << db << " key " << key << " differs";
  }

  // The stats format accounts for every request.
  const std::string stats_cmd = ctl + " decode --pcap " + pcap +
                                " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format stats >" +
                                dir + "/stats.out";
  ASSERT_EQ(std::system(stats_cmd.c_str()), 0);
  const std::string stats = ReadFile(dir + "/stats.out");
  EXPECT_NE(stats.find("conn unpaired_replies 0"), std::string::npos) << stats;
  EXPECT_NE(stats.find("conn parse_errors 0"), std::string::npos) << stats;
  // Per command and outcome (LPUSH: one applied, one WRONGTYPE, one WRONGTYPE inside EXEC).
  EXPECT_NE(stats.find("command incr applied="), std::string::npos) << stats;
  EXPECT_NE(stats.find("command setnx applied=1 no_effect=1 rejected=0"), std::string::npos) << stats;
  EXPECT_NE(stats.find("command lpush applied=1 no_effect=0 rejected=2"), std::string::npos) << stats;
  // Connection control is counted too: a DISCARD, an EXEC refused with
  // EXECABORT (a command refused while queueing: NOSUCHCMD, counted under
  // unknown), SELECTs.
  EXPECT_NE(stats.find("command discard applied=0 no_effect=0 rejected=0 read_only=1 "), std::string::npos)
      << stats;
  EXPECT_NE(stats.find("command exec applied=0 no_effect=0 rejected=1 "), std::string::npos) << stats;
  EXPECT_NE(stats.find("command unknown applied=0 no_effect=0 rejected=1 "), std::string::npos) << stats;
  EXPECT_NE(stats.find("command select applied=0 no_effect=0 rejected=0 read_only="), std::string::npos)
      << stats;
  // EVALSHA after SCRIPT LOAD was shipped as EVAL (the pipe above proved it ran).
  EXPECT_NE(stats.find("command evalsha applied=1 "), std::string::npos) << stats;
  // Each captured command also counts the records it gave and how many were
  // flagged (an INCR's SET counts for INCR: one each); together they are
  // every record and every flagged one (a review missed the flagged count per
  // command).
  {
    uint64_t records = 0, flagged = 0, total = 0, total_flagged = 0;
    std::istringstream lines(stats);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("command ", 0) == 0) {
        const size_t r = line.find(" records="), f = line.find(" flagged=");
        ASSERT_TRUE(r != std::string::npos && f != std::string::npos) << line;
        records += std::stoull(line.substr(r + 9));
        flagged += std::stoull(line.substr(f + 9));
        if (line.rfind("command incr ", 0) == 0) {
          const std::string applied = line.substr(line.find("applied=") + 8);
          EXPECT_EQ(std::stoull(line.substr(r + 9)), std::stoull(applied)) << line;
        }
      }
      if (line.rfind("records ", 0) == 0)
        ASSERT_EQ(std::sscanf(line.c_str(), "records %lu flagged %lu", &total, &total_flagged), 2) << line;
    }
    EXPECT_GT(total, 0u);
    EXPECT_GT(total_flagged, 0u) << stats;
    EXPECT_EQ(records, total) << stats;
    EXPECT_EQ(flagged, total_flagged) << stats;
  }
  EXPECT_NE(stats.find("conn script_unknown 0"), std::string::npos) << stats;

  // The summary counts what the json lists: flagged records (in a
  // transaction alone is no flag) and read-back records.
  {
    const std::string json_cmd = ctl + " decode --pcap " + pcap +
                                 " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format json >" +
                                 dir + "/count.json 2>" + dir + "/count.err";
    ASSERT_EQ(std::system(json_cmd.c_str()), 0);
    std::istringstream lines(ReadFile(dir + "/count.json"));
    size_t records = 0, flagged = 0, readbacks = 0, in_transaction_only = 0;
    std::map<std::string, std::pair<size_t, size_t>> per_command;  // records, flagged
    for (std::string line; std::getline(lines, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      ++records;
      const auto& flags = j["flags"];
      in_transaction_only += flags.size() == 1 && flags[0] == "in_transaction";
      // In a transaction, or creating the key, is a fact, not a doubt.
      bool is_flagged = false;
      for (const auto& flag : flags) is_flagged |= flag != "in_transaction" && flag != "creates_key";
      flagged += is_flagged;
      readbacks += j["op"] == "readback";
      if (!j["args"].empty()) {
        std::string name = j["args"][0].get<std::string>();  // counted in upper case
        for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        auto& [n, f] = per_command[name];
        ++n;
        f += is_flagged;
      }
    }
    // Per command the replica runs, with how many of its records were flagged.
    size_t commands_flagged = 0;
    for (const auto& [name, counts] : per_command) {
      EXPECT_NE(stats.find("\nrecord_command " + name + " " + std::to_string(counts.first) +
                           " flagged=" + std::to_string(counts.second) + "\n"),
                std::string::npos)
          << name << "\n"
          << stats;
      commands_flagged += counts.second;
    }
    EXPECT_GT(commands_flagged, 0u);
    EXPECT_GT(in_transaction_only, 0u);
    EXPECT_GT(readbacks, 0u);
    const std::string summary = std::to_string(records) + " records (" + std::to_string(flagged) +
                                " flagged, " + std::to_string(readbacks) + " read-backs listed)";
    EXPECT_NE(ReadFile(dir + "/count.err").find(summary), std::string::npos) << summary << "\n"
                                                                             << ReadFile(dir + "/count.err");
    EXPECT_NE(stats.find("records " + std::to_string(records) + " flagged " + std::to_string(flagged) + " "),
              std::string::npos)
        << stats;
  }

  // --rebase-time moves capture times only: a relative expiry (EXPIRE e:1
  // 300) moves with its record's capture time, an absolute one (EXPIREAT e:3)
  // stays as the client gave it.
  std::map<std::string, std::pair<int64_t, int64_t>> plain, rebased;  // key -> (capture ms, PEXPIREAT ms)
  for (auto [flag, out] :
       {std::pair<std::string, decltype(&plain)>{"", &plain}, {" --rebase-time", &rebased}}) {
    const std::string json_cmd = ctl + " decode --pcap " + pcap +
                                 " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format json" +
                                 flag + " >" + dir + "/out.json";
    ASSERT_EQ(std::system(json_cmd.c_str()), 0);
    std::istringstream lines(ReadFile(dir + "/out.json"));
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line);
      const auto& args = j["args"];
      if (args.size() == 3 && args[0] == "PEXPIREAT") {
        (*out)[args[1].get<std::string>()] = {static_cast<int64_t>(j["capture_ns"].get<uint64_t>() / 1000000),
                                              std::stoll(args[2].get<std::string>())};
      }
    }
  }
  ASSERT_TRUE(plain.count("e:1") && plain.count("e:3") && rebased.count("e:1") && rebased.count("e:3"));
  const int64_t shift_ms = rebased["e:1"].first - plain["e:1"].first;
  EXPECT_GT(shift_ms, 0);
  EXPECT_NEAR(rebased["e:1"].second - plain["e:1"].second, shift_ms, 1);
  EXPECT_NEAR(rebased["e:1"].second - rebased["e:1"].first, 300000, 1);
  EXPECT_EQ(rebased["e:3"].second, plain["e:3"].second);

  // --threads 2 and 3 (work split over threads, handed over in batches)
  // print exactly what one thread prints, in every format (stats minus its
  // timing lines).
  for (const std::string format : {"json", "resp", "stats"}) {
    std::string outs[3];
    for (int threads = 1; threads <= 3; ++threads) {
      const std::string file = dir + "/threads" + std::to_string(threads) + "." + format;
      const std::string c = ctl + " decode --pcap " + pcap +
                            " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format " + format +
                            " --threads " + std::to_string(threads) +
                            " 2>/dev/null | grep -v -e '^frames ' -e '^throughput ' >" + file;
      ASSERT_EQ(std::system(c.c_str()), 0);
      outs[threads - 1] = ReadFile(file);
    }
    EXPECT_GT(outs[0].size(), 1000u) << format;
    EXPECT_TRUE(outs[0] == outs[1]) << "--threads 2 differs from --threads 1 in format " << format;
    EXPECT_TRUE(outs[0] == outs[2]) << "--threads 3 differs from --threads 1 in format " << format;
  }

  // The capture cut into rotated files (as `tcpdump -C` leaves it), given in
  // the wrong order (a shell glob sorts rot10 before rot2): read in the order
  // of their first frames, they decode exactly as the whole file does, on
  // one thread and on two.
  const std::vector<std::string> parts = SplitPcap(pcap, 5, dir + "/rot");
  ASSERT_EQ(parts.size(), 5u);
  const std::string scrambled = parts[3] + " " + parts[0] + " " + parts[4] + " " + parts[2] + " " + parts[1];
  const std::string whole_json = ReadFile(dir + "/threads1.json");
  for (const char* threads : {"1", "2"}) {
    const std::string c = ctl + " decode --pcap " + scrambled +
                          " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format json --threads " +
                          threads + " 2>" + dir + "/rot.err >" + dir + "/rot.json";
    ASSERT_EQ(std::system(c.c_str()), 0) << ReadFile(dir + "/rot.err");
    EXPECT_TRUE(ReadFile(dir + "/rot.json") == whole_json)
        << "rotated files decode differently, threads " << threads;
  }
  // From standard input (`zcat cap.pcap.gz | kvferryctl decode --pcap -`),
  // and from a pipe given by name (/dev/stdin here; <(zcat f.gz) alike),
  // read once through libpcap: the same records.
  for (const char* input : {"-", "/dev/stdin"}) {
    ASSERT_EQ(std::system(("cat " + pcap + " | " + ctl + " decode --pcap " + input +
                           " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format json 2>" + dir +
                           "/stdin.err >" + dir + "/stdin.json")
                              .c_str()),
              0)
        << ReadFile(dir + "/stdin.err");
    EXPECT_TRUE(ReadFile(dir + "/stdin.json") == whole_json) << "decode of --pcap " << input << " differs";
  }
  // A mirror that delays the client's direction by 1 ms (replies captured
  // before the requests they answer), or the server's (requests before the
  // replies they acknowledge): each segment waits for the bytes its ACK
  // covers, so the records are those of the true order, with nothing
  // flagged, lost or unpaired. Records carry their reply's capture time, so
  // delaying the requests changes nothing in them.
  for (const bool from_server : {false, true}) {
    SCOPED_TRACE(from_server ? "server's direction delayed" : "client's direction delayed");
    const std::string late = dir + "/late.pcap";
    EXPECT_GT(DelayDirection(pcap, late, kSourcePort, from_server, 1000), 50);
    const std::string base =
        ctl + " decode --pcap " + late + " --server 127.0.0.1:" + std::to_string(kSourcePort);
    ASSERT_EQ(std::system((base + " --format stats >" + dir + "/late.stats").c_str()), 0);
    const std::string late_stats = ReadFile(dir + "/late.stats");
    EXPECT_NE(late_stats.find("flow segments_held_for_peer "), std::string::npos) << late_stats;
    EXPECT_EQ(late_stats.find("flow segments_held_for_peer 0\n"), std::string::npos) << late_stats;
    for (const char* zero : {"flow gaps 0\n", "flow holds_expired 0\n", "conn unpaired_replies 0\n",
                             "conn desyncs 0\n", "conn parse_errors 0\n"}) {
      EXPECT_NE(late_stats.find(zero), std::string::npos) << zero << late_stats;
    }
    if (!from_server) {
      // Records carry their reply's time, but the ambiguity window compares
      // spans from each request's capture, 1 ms later here, and so widens by
      // the delay the flow table measured (the replies' ACKs came first):
      // every record the whole capture flagged ambiguous is flagged in the
      // late one too, which may flag more; the records are otherwise equal.
      auto without_order = [](const std::string& json, std::vector<bool>* ambiguous) {
        std::string out;
        std::istringstream lines(json);
        for (std::string line; std::getline(lines, line);) {
          nlohmann::json j = nlohmann::json::parse(line);
          nlohmann::json kept = nlohmann::json::array();
          bool flagged = false;
          for (const auto& flag : j["flags"]) {
            if (flag == "ambiguous_order") flagged = true;
            if (flag != "ambiguous_order" && flag != "needs_readback") kept.push_back(flag);
          }
          ambiguous->push_back(flagged);
          j["flags"] = kept;
          out += j.dump() + "\n";
        }
        return out;
      };
      std::vector<bool> whole_ambiguous, late_ambiguous;
      const std::string whole_stripped = without_order(whole_json, &whole_ambiguous);
      ASSERT_EQ(std::system((base + " --format json >" + dir + "/late.json").c_str()), 0);
      const std::string late_json = ReadFile(dir + "/late.json");
      EXPECT_TRUE(without_order(late_json, &late_ambiguous) == whole_stripped)
          << "a late client direction changed the records";
      ASSERT_EQ(late_ambiguous.size(), whole_ambiguous.size());
      for (size_t i = 0; i < whole_ambiguous.size(); ++i) {
        EXPECT_TRUE(late_ambiguous[i] || !whole_ambiguous[i]) << "record " << i << " lost its flag";
      }
      // The widening: the 1 ms delay less the server's turn, a quarter more.
      const size_t slack = late_stats.find(" request_slack_us ");
      ASSERT_NE(slack, std::string::npos) << late_stats;
      const long slack_us = std::stol(late_stats.substr(slack + 18));
      EXPECT_GE(slack_us, 1000) << late_stats;
      EXPECT_LE(slack_us, 1250) << late_stats;
      // The same over three threads (the window's clock crosses threads).
      ASSERT_EQ(std::system((base + " --format json --threads 3 >" + dir + "/late3.json").c_str()), 0);
      EXPECT_TRUE(ReadFile(dir + "/late3.json") == late_json) << "--threads 3 on the late capture differs";
      // Without the wait, the replies that overtook their requests go by
      // unpaired and their connections lose sync.
      ASSERT_EQ(std::system((base + " --reorder-window-ms 0 --format stats >" + dir + "/late.stats").c_str()),
                0);
      const std::string unheld = ReadFile(dir + "/late.stats");
      EXPECT_NE(unheld.find("flow segments_held_for_peer 0\n"), std::string::npos) << unheld;
      EXPECT_EQ(unheld.find("conn desyncs 0\n"), std::string::npos) << unheld;
    } else {
      // The client's ACKs come before the replies they acknowledge: that
      // delays no request, and the window stays as it was.
      EXPECT_NE(late_stats.find(" request_slack_us 0 "), std::string::npos) << late_stats;
      // Replies are stamped 1 ms later, and so are the expiries made
      // absolute from them: compare what the two decodes build instead.
      const std::string replica_cli = "redis-cli -p " + std::to_string(kReplicaPort);
      std::map<std::pair<int, std::string>, KeyState> built[2];
      const std::string feeds[2] = {"cat " + dir + "/threads1.resp", base + " --format resp"};
      for (int i = 0; i < 2; ++i) {
        ASSERT_EQ(std::system((replica_cli + " flushall >/dev/null && " + feeds[i] + " | " + replica_cli +
                               " --pipe >" + dir + "/pipe.out 2>&1")
                                  .c_str()),
                  0);
        built[i] = Snapshot(kReplicaPort, 4);
      }
      EXPECT_GT(built[0].size(), 80u);
      for (const auto& [db, key] : Differences(built[0], built[1])) {
        ADD_FAILURE() << "db" << db << " key " << key << " differs";
      }
    }
  }

  // The capture as seen before and after a DNAT (every frame twice, the
  // server under two addresses): with a --server that matches both, each
  // connection is decoded once, to the same records.
  {
    const std::string nat = dir + "/nat.pcap";
    EXPECT_GT(DoubleThroughNat(pcap, nat, kSourcePort), 100);
    const std::string port = std::to_string(kSourcePort);
    for (const std::string& servers :
         {" --server '*:" + port + "'", " --server 127.0.0.1:" + port + " --server 127.0.0.2:" + port}) {
      SCOPED_TRACE(servers);
      ASSERT_EQ(std::system((ctl + " decode --pcap " + nat + servers + " --format json >" + dir +
                             "/nat.json 2>" + dir + "/nat.err")
                                .c_str()),
                0);
      EXPECT_TRUE(ReadFile(dir + "/nat.json") == whole_json) << "the NAT views decode differently";
      EXPECT_NE(ReadFile(dir + "/nat.err").find("seen twice"), std::string::npos)
          << ReadFile(dir + "/nat.err");
    }
    ASSERT_EQ(std::system((ctl + " decode --pcap " + nat + " --server '*:" + port + "' --format stats >" +
                           dir + "/nat.stats")
                              .c_str()),
              0);
    const std::string nat_stats = ReadFile(dir + "/nat.stats");
    const std::string plain_stats = ReadFile(dir + "/threads1.stats");
    auto count = [](std::string text, const std::string& name) {
      text.insert(0, "\n");
      const size_t at = text.find("\n" + name + " ");
      return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + name.size() + 2);
    };
    EXPECT_GT(count(plain_stats, "flow flows_created"), 0);
    EXPECT_EQ(count(nat_stats, "flow duplicate_flows"), count(plain_stats, "flow flows_created"))
        << nat_stats;
    EXPECT_EQ(count(nat_stats, "conn requests"), count(plain_stats, "conn requests")) << nat_stats;
  }

  // A damaged file among them is reported (exit 1); the others are still read.
  {
    std::ofstream cut(parts[2], std::ios::binary | std::ios::app);
    cut.write("\x01\x02\x03", 3);  // a record header cut short
  }
  const std::string c = ctl + " decode --pcap " + scrambled +
                        " --server 127.0.0.1:" + std::to_string(kSourcePort) + " --format json 2>" + dir +
                        "/rot.err >" + dir + "/rot.json";
  EXPECT_EQ(WEXITSTATUS(std::system(c.c_str())), 1);
  EXPECT_NE(ReadFile(dir + "/rot.err").find("truncated record header"), std::string::npos)
      << ReadFile(dir + "/rot.err");
  EXPECT_TRUE(ReadFile(dir + "/rot.json") == whole_json) << "the frames around a cut file were not all read";
  if (!HasFailure()) std::system(("rm -rf " + dir).c_str());  // kept for inspection otherwise
}

// A Redis with TLS on (tls-port): the captured connections are encrypted.
// Each is told apart by its first TLS record and ignored, so that decode
// reports TLS rather than parse errors, desyncs or unpaired replies, and
// says so on stderr; a --server that matches nothing is reported too.
TEST(RespDecodePcap, TlsConnectionsAreToldApartAndIgnored) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: tcpdump on lo";
  if (std::system("command -v tcpdump >/dev/null && command -v redis-cli >/dev/null && "
                  "command -v openssl >/dev/null") != 0 ||
      !HaveRedisServer()) {
    GTEST_SKIP() << "needs tcpdump, redis-cli, openssl and redis-server";
  }
  const std::string ctl = CtlPath();
  ASSERT_EQ(::access(ctl.c_str(), X_OK), 0) << ctl;
  const std::string dir = "/tmp/kvft-resp-tls-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  ASSERT_EQ(std::system(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
                         "-subj /CN=localhost -keyout " +
                         dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null")
                            .c_str()),
            0);
  constexpr int kTlsPort = 16452;
  const std::string port = std::to_string(kTlsPort);
  const std::string start =
      "redis-server --port 0 --tls-port " + port + " --bind 127.0.0.1 --tls-cert-file " + dir +
      "/cert.pem --tls-key-file " + dir + "/key.pem --tls-ca-cert-file " + dir +
      "/cert.pem --tls-auth-clients no --save '' --appendonly no --daemonize yes --dir " + dir +
      " --pidfile " + dir + "/redis.pid --logfile " + dir + "/redis.log";
  if (std::system(start.c_str()) != 0) GTEST_SKIP() << "this redis-server has no TLS support";
  const std::string cli = "redis-cli --tls --insecure -p " + port + " ";
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = std::system((cli + "ping 2>/dev/null | grep -q PONG").c_str()) == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!up) {
    std::system(("kill $(cat " + dir + "/redis.pid) 2>/dev/null").c_str());
    GTEST_SKIP() << "redis-server did not come up with TLS: " << ReadFile(dir + "/redis.log");
  }
  const std::string pcap = dir + "/tls.pcap";
  {
    Tcpdump dump(pcap, dir + "/tcpdump.log", kTlsPort);
    EXPECT_EQ(std::system((cli + "set k v >/dev/null && " + cli + "incr n >/dev/null && " + cli +
                           "mset a 1 b 2 >/dev/null")
                              .c_str()),
              0);
    dump.Stop();
  }
  std::system(("kill $(cat " + dir + "/redis.pid) 2>/dev/null").c_str());
  const std::string decode = ctl + " decode --pcap " + pcap + " --server 127.0.0.1:" + port;
  ASSERT_EQ(std::system((decode + " --format stats >" + dir + "/stats.out 2>" + dir + "/stats.err").c_str()),
            0);
  const std::string stats = ReadFile(dir + "/stats.out");
  EXPECT_NE(stats.find("conn tls_connections 3\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("conn parse_errors 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("conn desyncs 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("conn unpaired_replies 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("conn requests 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("records 0 "), std::string::npos) << stats;
  EXPECT_NE(ReadFile(dir + "/stats.err").find("3 connection(s) carried TLS"), std::string::npos)
      << ReadFile(dir + "/stats.err");
  // A --server that is not in the capture says so, and fails.
  const std::string wrong =
      ctl + " decode --pcap " + pcap + " --server 127.0.0.1:" + std::to_string(kTlsPort + 1);
  const int status = std::system((wrong + " --format json >/dev/null 2>" + dir + "/wrong.err").c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(ReadFile(dir + "/wrong.err")
                .find("no connection to 127.0.0.1:" + std::to_string(kTlsPort + 1) + " in the capture"),
            std::string::npos)
      << ReadFile(dir + "/wrong.err");
  if (!HasFailure()) std::system(("rm -rf " + dir).c_str());
}

// A capture taken with a short snap length (`tcpdump -s 300`, as one made to
// save disk is) keeps only the start of each longer frame. What it kept is
// decoded and the rest is a gap at once, so a write whose name and key were
// captured is read back, not lost: every key that differs on a replica
// rebuilt from the records is one a record flagged. Before, a cut frame was
// dropped whole, and a large SET on a connection that then closed (as
// redis-cli's do) left no trace at all.
TEST(RespDecodePcap, ASnapLengthCaptureReadsBackTheWritesItCut) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: tcpdump on lo";
  if (std::system("command -v tcpdump >/dev/null && command -v redis-cli >/dev/null") != 0 ||
      !HaveRedisServer()) {
    GTEST_SKIP() << "needs tcpdump, redis-cli and redis-server";
  }
  constexpr int kSnapSource = 16454, kSnapReplica = 16455;
  const std::string ctl = CtlPath();
  const std::string dir = "/tmp/kvft-resp-snap-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string pcap = dir + "/snap.pcap";
  LiveRedis source(kSnapSource), replica(kSnapReplica);
  ASSERT_TRUE(source.ok() && replica.ok());
  {
    Tcpdump dump(pcap, dir + "/tcpdump.log", kSnapSource, "lo", nullptr, "300");
    RawClient a(kSnapSource), b(kSnapSource);
    ASSERT_TRUE(a.ok() && b.ok());
    for (int i = 0; i < 60; ++i) {
      const std::string n = std::to_string(i);
      RawClient& c = i % 2 ? a : b;
      ASSERT_FALSE(c.Send(Cmd({"SET", "small:" + n, "v" + n}), 1).empty());
      ASSERT_FALSE(c.Send(Cmd({"SET", "big:" + n, std::string(300 + 41 * i, 'a' + i % 26)}), 1).empty());
      ASSERT_FALSE(c.Send(Cmd({"HSET", "h", "f" + n, std::string(i % 3 ? 10 : 900, 'h')}), 1).empty());
      ASSERT_FALSE(c.Send(Cmd({"INCR", "counter"}), 1).empty());
    }
    for (int i = 0; i < 5; ++i) {  // a large write and the connection closes
      RawClient once(kSnapSource);
      ASSERT_FALSE(once.Send(Cmd({"SET", "once:" + std::to_string(i), std::string(2000, 'o')}), 1).empty());
    }
    dump.Stop();
  }
  const std::string server = " --server 127.0.0.1:" + std::to_string(kSnapSource);
  ASSERT_EQ(std::system((ctl + " decode --pcap " + pcap + server + " --format json >" + dir +
                         "/snap.json 2>" + dir + "/snap.err")
                            .c_str()),
            0)
      << ReadFile(dir + "/snap.err");
  std::set<std::string> flagged, read_back;
  std::istringstream lines(ReadFile(dir + "/snap.json"));
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    for (const auto& flag : j["flags"])
      if (flag != "in_transaction" && flag != "creates_key") flagged.insert(j["key"].get<std::string>());
    if (j["op"] == "readback") read_back.insert(j["key"].get<std::string>());
  }
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(read_back.count("once:" + std::to_string(i))) << i;
  EXPECT_TRUE(read_back.count("big:59"));
  EXPECT_TRUE(read_back.count("h"));
  EXPECT_FALSE(read_back.count("small:59"));  // whole in its frame
  EXPECT_NE(ReadFile(dir + "/snap.err").find("cut short by the capture's snap length"), std::string::npos);
  ASSERT_EQ(
      std::system((ctl + " decode --pcap " + pcap + server + " --format resp 2>/dev/null | redis-cli -p " +
                   std::to_string(kSnapReplica) + " --pipe >" + dir + "/pipe.out 2>&1")
                      .c_str()),
      0)
      << ReadFile(dir + "/pipe.out");
  const auto diff = Differences(Snapshot(kSnapSource, 1), Snapshot(kSnapReplica, 1));
  EXPECT_FALSE(diff.empty());  // the big values were not captured
  for (const auto& [db, key] : diff) EXPECT_TRUE(flagged.count(key)) << key << " differs, not flagged";
  EXPECT_EQ(std::system(("rm -rf " + dir).c_str()), 0);
}

// Two pooled connections were open before tcpdump started: one had selected
// db 3, the other never selected (db 0). Nothing on the wire says so, until
// a monitoring agent's CLIENT LIST lists both: decode then gives their later
// records the listed db without unknown_db, and keeps the guess, flagged,
// for the records before. Every thread count gives the same output.
TEST(RespDecodePcap, AClientListInTheCaptureSettlesTheDbOfPooledConnections) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: tcpdump on lo";
  if (std::system("command -v tcpdump >/dev/null") != 0 || !HaveRedisServer())
    GTEST_SKIP() << "needs tcpdump and redis-server";
  const std::string ctl = CtlPath();
  ASSERT_EQ(::access(ctl.c_str(), X_OK), 0) << ctl;
  constexpr int kPort = 16453;
  LiveRedis redis(kPort);
  ASSERT_TRUE(redis.ok());
  const std::string dir = "/tmp/kvft-resp-clientlist-" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  RawClient in3(kPort), in0(kPort);
  ASSERT_TRUE(in3.ok() && in0.ok());
  ASSERT_EQ(in3.Send(Cmd({"SELECT", "3"}), 1), "+OK\r\n");  // before the capture
  const std::string pcap = dir + "/pool.pcap";
  {
    Tcpdump dump(pcap, dir + "/tcpdump.log", kPort);
    // A monitoring agent polls CLIENT LIST every 40 ms from the 10th write
    // on: faster than the 100 ms margin, so the newest answer never applies
    // where the streams have been read; an older one does.
    RawClient agent(kPort);
    ASSERT_TRUE(agent.ok());
    for (int i = 0; i < 25; ++i) {
      EXPECT_EQ(in3.Send(Cmd({"SET", "p3:" + std::to_string(i), "v"}), 1), "+OK\r\n");
      EXPECT_EQ(in0.Send(Cmd({"SET", "p0:" + std::to_string(i), "v"}), 1), "+OK\r\n");
      // A filtered list is not an answer (it does not say who is not there).
      if (i == 5)
        EXPECT_NE(agent.Send(Cmd({"CLIENT", "LIST", "TYPE", "pubsub"}), 1).find('$'), std::string::npos);
      if (i >= 10 && i % 2 == 0)
        EXPECT_NE(agent.Send(Cmd({"CLIENT", "LIST"}), 1).find("db=3"), std::string::npos);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    dump.Stop();
  }
  std::string first;
  for (int threads = 1; threads <= 3; ++threads) {
    const std::string out = dir + "/t" + std::to_string(threads);
    ASSERT_EQ(std::system((ctl + " decode --pcap " + pcap + " --server 127.0.0.1:" + std::to_string(kPort) +
                           " --format json --threads " + std::to_string(threads) + " >" + out + ".json 2>" +
                           out + ".err")
                              .c_str()),
              0);
    const std::string json = ReadFile(out + ".json");
    if (threads == 1) {
      first = json;
    } else {
      EXPECT_EQ(json, first) << "--threads " << threads;
    }
    EXPECT_NE(ReadFile(out + ".err").find("2 connection(s) had their db settled by CLIENT LIST replies"),
              std::string::npos)
        << ReadFile(out + ".err");
  }
  std::map<std::string, std::pair<int, int>> guessed_settled;
  bool guess_after_settled = false;
  std::istringstream lines(first);
  for (std::string line; std::getline(lines, line);) {
    const auto rec = nlohmann::json::parse(line);
    const std::string key = rec["key"];
    const std::string conn = key.substr(0, 2);
    const auto& flags = rec["flags"];
    auto& [guessed, settled] = guessed_settled[conn];
    if (std::find(flags.begin(), flags.end(), "unknown_db") != flags.end()) {
      EXPECT_EQ(rec["db"], 0) << line;  // the guess
      ++guessed;
      guess_after_settled |= settled > 0;
    } else {
      EXPECT_EQ(rec["db"].get<int>(), conn == "p3" ? 3 : 0) << line;
      ++settled;
    }
  }
  for (const char* conn : {"p3", "p0"}) {
    const auto [guessed, settled] = guessed_settled[conn];
    EXPECT_EQ(guessed + settled, 25) << conn;
    EXPECT_GE(guessed, 10) << conn;  // before the answer
    EXPECT_GE(settled, 5) << conn;   // from 100 ms after it
  }
  EXPECT_FALSE(guess_after_settled);
  if (!HasFailure()) std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace kvf::resp
