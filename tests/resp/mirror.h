// A client connection to a live redis-server whose traffic is mirrored, byte
// for byte, into a resp::Connection (as passive capture would), and helpers
// that apply the resulting records to a second server and compare datasets.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "resp/connection.h"
#include "tests/resp/live_redis.h"

namespace kvf::resp::testing {

inline uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

class MirroredClient {
 public:
  MirroredClient(int port, RecordSink* sink, uint64_t id, ConnectionOptions opts = {})
      : client_(port), conn_(sink, WithId(opts, id)) {}
  bool ok() const { return client_.ok(); }

  // Sends `request` (one or more commands), waits for `replies` replies and
  // mirrors both directions. Returns the reply bytes.
  std::string Do(const std::string& request, int replies = 1) {
    const uint64_t t_req = NowNs();
    std::string reply = client_.Send(request, replies);
    // (instant: mirrored as answered 0.1 ms after the request, however long
    // the round trip took on a loaded machine.)
    const uint64_t t_rep = instant ? t_req + 100'000 : NowNs();
    conn_.OnData(Direction::kClientToServer, request, t_req);
    if (!reply.empty()) conn_.OnData(Direction::kServerToClient, reply, t_rep);
    return reply;
  }
  std::string Do(std::initializer_list<std::string_view> args) { return Do(Cmd(args), 1); }
  // Only the request goes out now; the reply is read (and mirrored) later.
  void SendOnly(const std::string& request) {
    pending_request_ts_ = NowNs();
    client_.Send(request, 0);
    conn_.OnData(Direction::kClientToServer, request, pending_request_ts_);
  }
  std::string ReceiveMirrored(int replies) {
    std::string reply = client_.Receive(replies);
    conn_.OnData(Direction::kServerToClient, reply, NowNs());
    return reply;
  }
  // Mirrors whatever arrives within `ms` of quiet (RawClient::ReceiveFor).
  std::string ReceiveMirroredFor(int ms) {
    std::string bytes = client_.ReceiveFor(ms);
    if (!bytes.empty()) conn_.OnData(Direction::kServerToClient, bytes, NowNs());
    return bytes;
  }
  Connection& conn() { return conn_; }
  RawClient& raw() { return client_; }
  bool instant = false;

 private:
  static ConnectionOptions WithId(ConnectionOptions o, uint64_t id) {
    o.connection_id = id;
    return o;
  }
  RawClient client_;
  Connection conn_;
  uint64_t pending_request_ts_ = 0;
};

// Every reply paired with its request: no parse error, desync or stray reply.
inline void ExpectPairedCleanly(const ConnectionStats& st) {
  EXPECT_EQ(st.parse_errors, 0u);
  EXPECT_EQ(st.desyncs, 0u);
  EXPECT_EQ(st.unpaired_replies, 0u);
}

inline bool IsErrorReply(const std::string& r) {
  return !r.empty() && (r[0] == '-' || r[0] == '!');
}

// Applies records to a replica server the way the replayer would, each
// kIdempotent record twice (it must be safe to). Read-back records (and the
// kNeedsReadback flag) are collected, not applied: RepairFrom() does that.
class Replica {
 public:
  explicit Replica(int port) : client_(port) {}
  bool ok() const { return client_.ok(); }

  void Apply(const std::vector<ChangeRecord>& records) {
    for (const ChangeRecord& r : records) {
      if (r.HasFlag(kNeedsReadback) || r.op == RecordOp::kReadback) readback_.insert({r.db, r.key});
      if (r.op == RecordOp::kReadback) continue;
      Select(r.db);
      const std::string rep = client_.Send(Cmd(r.args), 1);
      EXPECT_FALSE(IsErrorReply(rep)) << "applying " << Describe(r) << " -> " << rep;
      if (r.op == RecordOp::kIdempotent) {
        const std::string again = client_.Send(Cmd(r.args), 1);
        // XADD with an explicit id refuses a duplicate: that is its idempotence.
        if (r.args[0] != "XADD") {
          EXPECT_FALSE(IsErrorReply(again)) << "re-applying " << Describe(r);
        }
      }
    }
  }

  // Copies every read-back key from the source (DUMP/RESTORE with its TTL,
  // or DEL when it is gone), as the read-back repair stage would.
  void RepairFrom(int source_port) {
    RawClient src(source_port);
    for (const auto& [db, key] : readback_) {
      src.Send(Cmd({"SELECT", std::to_string(db)}), 1);
      Select(db);
      const std::string dump = src.Send(Cmd({"DUMP", key}), 1);
      if (dump.rfind("$-1", 0) == 0) {
        client_.Send(Cmd({"DEL", key}), 1);
        continue;
      }
      Parser p(Parser::Mode::kReply);
      p.Feed(dump);
      ASSERT_EQ(p.Next(), ParseStatus::kMessage);
      const std::string payload(p.nodes()[0].str);
      std::string pttl = src.Send(Cmd({"PTTL", key}), 1);
      pttl = pttl.substr(1, pttl.size() - 3);
      if (pttl == "-1") pttl = "0";
      const std::string rep =
          client_.Send(Cmd(std::vector<std::string>{"RESTORE", key, pttl, payload, "REPLACE"}), 1);
      EXPECT_FALSE(IsErrorReply(rep)) << rep;
    }
  }
  const std::set<std::pair<uint16_t, std::string>>& readback_keys() const { return readback_; }

  static std::string Describe(const ChangeRecord& r) {
    std::string s = "db" + std::to_string(r.db) + " " + std::string(RecordOpName(r.op)) + " [" + r.key + "]";
    for (const auto& a : r.args) s += " " + a;
    return s;
  }

 private:
  void Select(uint16_t db) {
    if (db == db_) return;
    client_.Send(Cmd({"SELECT", std::to_string(db)}), 1);
    db_ = db;
  }
  RawClient client_;
  uint16_t db_ = 0;
  std::set<std::pair<uint16_t, std::string>> readback_;
};

// One key's observable state: type, DEBUG DIGEST-VALUE (and a stream's
// groups), TTL rounded to 1 s.
struct KeyState {
  std::string type, digest;
  int64_t pttl = 0;
};

inline std::string StripReply(const std::string& r) {
  Parser p(Parser::Mode::kReply);
  p.Feed(r);
  if (p.Next() != ParseStatus::kMessage) return "?";
  const Node& n = p.nodes()[0];
  if (n.type == Type::kInteger) return std::to_string(n.integer);
  if (n.type == Type::kArray && n.children > 0) return std::string(p.nodes()[1].str);
  return std::string(n.str);
}

inline std::map<std::pair<int, std::string>, KeyState> Snapshot(int port, int dbs) {
  RawClient c(port);
  std::map<std::pair<int, std::string>, KeyState> out;
  for (int db = 0; db < dbs; ++db) {
    c.Send(Cmd({"SELECT", std::to_string(db)}), 1);
    const std::string keys = c.Send(Cmd({"KEYS", "*"}), 1);
    Parser p(Parser::Mode::kReply);
    p.Feed(keys);
    EXPECT_EQ(p.Next(), ParseStatus::kMessage);
    std::vector<std::string> names;
    for (size_t i = 1; i < p.nodes().size(); ++i) names.emplace_back(p.nodes()[i].str);
    for (const auto& k : names) {
      KeyState s;
      s.type = StripReply(c.Send(Cmd({"TYPE", k}), 1));
      s.digest = StripReply(c.Send(Cmd({"DEBUG", "DIGEST-VALUE", k}), 1));
      // DEBUG DIGEST-VALUE covers a stream's entries, not its consumer
      // groups: their names, consumer and pending counts and last ids
      // (XINFO GROUPS holds no times) are part of the state too.
      if (s.type == "stream") s.digest += c.Send(Cmd({"XINFO", "GROUPS", k}), 1);
      s.pttl = std::stoll(StripReply(c.Send(Cmd({"PTTL", k}), 1)));
      out[{db, k}] = s;
    }
  }
  return out;
}

// Keys whose state differs between the two snapshots (TTL within 1 s).
inline std::set<std::pair<int, std::string>> Differences(
    const std::map<std::pair<int, std::string>, KeyState>& a,
    const std::map<std::pair<int, std::string>, KeyState>& b) {
  std::set<std::pair<int, std::string>> out;
  for (const auto& [k, s] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second.type != s.type || it->second.digest != s.digest ||
        (s.pttl < 0) != (it->second.pttl < 0) || std::llabs(s.pttl - it->second.pttl) > 1000) {
      out.insert(k);
    }
  }
  for (const auto& [k, s] : b) {
    if (!a.count(k)) out.insert(k);
  }
  return out;
}

}  // namespace kvf::resp::testing
