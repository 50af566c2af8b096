// Failovers a capture shows, for decode and capture alike. A server made a
// replica (REPLICAOF host port) replaces its dataset with its master's: after
// a failover (another server made a master before it) Redis throws away what
// the old master accepted in between, but its records are in the capture,
// unflagged (a Sentinel review replayed 52 such keys). So from the first
// promotion on, the keys every other server writes are kept, per server, and
// read back after that server's demotion; the latest master's too, until
// every other server seen is its replica (one that is not may be promoted
// next, and lacks them). A database-wide write among them (FLUSHALL, SWAPDB,
// a script that declares no keys), or more keys than kMaxKeyBytes, cannot be
// undone by read-backs: the report then says to resynchronise.
//
// Threads: Failovers is shared by every connection (capture's workers too);
// a FailoverWire belongs to one connection, on its thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/record.h"
#include "ctl/db_resolver.h"
#include "dataplane/endpoint.h"
#include "resp/sink.h"

namespace kvf::ctl {

class Failovers {
 public:
  struct Change {
    std::string server;  // the one that changed
    std::string master;  // "host:port", or empty: it became a master
    uint64_t at_ns = 0;
    uint64_t readbacks = 0;    // keys read back because the change threw their writes away
    bool overflowed = false;   // a database-wide write, or more keys than kept, among them
    bool answered = true;      // else sent with its reply silenced (CLIENT REPLY OFF, SKIP)
    bool coordinated = false;  // FAILOVER's switch (PSYNC FAILOVER), not a REPLICAOF
  };
  // A key a server wrote; `unknown_db`: its db was a guess (kUnknownDb),
  // and its read-back says so (a review: the read-back of a key written in
  // db 3 on a connection joined mid-stream read db 0, unflagged).
  struct KeptKey {
    uint16_t db = 0;
    std::string key;
    bool unknown_db = false;
    auto operator<=>(const KeptKey&) const = default;
  };
  using Keys = std::set<KeptKey>;
  static constexpr size_t kKeep = 256;                      // changes listed; later ones counted
  static constexpr size_t kMaxKeyBytes = size_t{64} << 20;  // keys kept, all servers
  // What a kept key costs beside its bytes: its (db, string) in a vector
  // that may be half empty, its slot in a table at most half full (a review
  // measured 112 MiB of heap for 60.8 MiB counted at 48).
  static constexpr size_t kEntryBytes = 112;

  // `tool` names the command in what is told ("decode", "capture").
  explicit Failovers(std::string tool) : tool_(std::move(tool)) {}

  // Each change told as it happens (one line, without the tool's prefix),
  // from the thread of the connection that saw it; set before any.
  void set_on_change(std::function<void(const std::string&)> f) { on_change_ = std::move(f); }

  // A server was made a master: from now on records go through the wire.
  bool recording() const { return recording_.load(std::memory_order_acquire); }
  // Grows whenever what Keeps() says may change.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // A connection to `server` was seen (every server is told, before any of
  // its role changes or records).
  void NoteServer(const std::string& server);
  // Whether `server`'s writes are kept now: from a promotion on, those of
  // every server but the latest master, and the latest master's too until
  // every other server seen is its replica; not past the cap.
  bool Keeps(const std::string& server) const;
  // `server` wrote `key` (a record captured at `at_ns`). True: read it back
  // now, after the write: the server's demotion was already seen, later
  // than the write (capture's workers see connections at their own pace).
  bool Note(const std::string& server, uint16_t db, std::string_view key, uint64_t at_ns,
            bool unknown_db = false);
  // `server` wrote database-wide: no read-back undoes that.
  void Unknowable(const std::string& server, uint64_t at_ns);
  // `server` changed its role (`master` empty: made a master; else "host:port"
  // as REPLICAOF named it) at `at_ns`. Returns the keys to read back when it
  // is made a replica: those it wrote while they were kept (see the top).
  Keys RoleChange(const std::string& server, std::string_view master, uint64_t at_ns, bool answered,
                  bool coordinated = false);
  // Whether a connection to `server` was seen.
  bool IsServer(const std::string& server) const;
  // `replica` ("ip:port" of the port it announced) replicates `master`
  // since `at_ns`: its PSYNC was answered on a link to `master`. A REPLICAOF
  // that named the master by a host name (Sentinel's announce-hostnames) is
  // taken to mean `master` when it came before and named the same port.
  void ReplicaLink(const std::string& replica, const std::string& master, uint64_t at_ns);

  uint64_t role_changes() const { return role_changes_.load(std::memory_order_relaxed); }
  uint64_t readbacks() const { return readbacks_.load(std::memory_order_relaxed); }
  void AddReadbacks(uint64_t n) { readbacks_.fetch_add(n, std::memory_order_relaxed); }

  // The latest changes (at most `lines`, by capture time) on stderr, and how
  // many earlier ones are not shown. For the end of an offline run.
  void Report(size_t lines) const;
  // What change `i` of `all` (by capture time) meant, given those before it.
  static std::string Describe(const std::vector<Change>& all, size_t i, std::string_view tool);

 private:
  void ForgetLocked(const std::string& server, Keys* keys);
  // `server`'s writes up to `at_ns` are safe: its kept keys are dropped, and
  // it keeps anew from then.
  void DropLocked(const std::string& server, uint64_t at_ns);
  // `replica`'s REPLICAOF named its master by a host name: a link to
  // `master` at `at_ns` says which server that is (ReplicaLink).
  void ResolveLocked(const std::string& replica, const std::string& master, uint64_t at_ns);
  // Its writes are not kept (the inverse of Keeps).
  bool SettledLocked(const std::string& server) const;
  // Its write captured at `at_ns` is kept: not settled, and not from before
  // its writes were kept (none kept since: a demoted server's, late).
  bool KeptAtLocked(const std::string& server, uint64_t at_ns) const;
  // A demotion: since when the server's writes were kept, and when it came.
  struct Demotion {
    uint64_t kept_since_ns = 0, demoted_ns = 0;
  };
  // `server`'s latest demotion, if it threw away a write captured at `at_ns`
  // (capture's workers pass some on only after it); null if none did.
  const Demotion* DemotedAfterLocked(const std::string& server, uint64_t at_ns) const;
  // The change of `server` at `at_ns` as listed (null: past kKeep).
  Change* ListedLocked(const std::string& server, uint64_t at_ns);

  const std::string tool_;
  std::function<void(const std::string&)> on_change_;
  std::atomic<bool> recording_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> role_changes_{0}, readbacks_{0};
  mutable std::mutex mu_;
  std::vector<Change> changes_;  // the first kKeep; guarded by mu_
  uint64_t dropped_ = 0;         // guarded by mu_
  // Guarded by mu_: the latest server made a master (its writes stand) and
  // when; the keys the others wrote since; servers past the cap or that
  // wrote database-wide; each server's latest demotion after a promotion.
  std::string made_master_;
  uint64_t promoted_ns_ = 0;
  std::set<std::string, std::less<>> servers_;                 // seen
  std::map<std::string, std::string, std::less<>> master_of_;  // by the REPLICAOFs seen
  // Servers whose latest REPLICAOF named a host name: since when (a link
  // that PSYNCed before it says nothing about it).
  std::map<std::string, uint64_t, std::less<>> named_since_;
  // Each replica's latest link: the server it PSYNCed with, and when.
  std::map<std::string, std::pair<std::string, uint64_t>, std::less<>> links_;
  static constexpr size_t kMaxLinks = 4096;
  std::set<std::string, std::less<>> awaiting_;  // seen, not made replicas of made_master_ since
  // Since when each server's kept writes count (a promotion; a drop of its
  // safe keys); none: not kept (a replica made since).
  std::map<std::string, uint64_t, std::less<>> kept_since_;
  struct KeptKeys {
    std::vector<uint64_t> slots;  // hashes of (db, key); 0: free
    size_t used = 0;
    std::vector<KeptKey> keys;                                        // each once
    bool Insert(uint16_t db, std::string_view key, bool unknown_db);  // false: already kept
    size_t Bytes() const;
  };
  std::map<std::string, KeptKeys, std::less<>> written_;
  std::set<std::string, std::less<>> overflowed_;
  std::map<std::string, Demotion, std::less<>> demoted_;
  size_t key_bytes_ = 0;
};

// One connection's records on their way to `next` once a server was made a
// master (before that the connection emits to `next` itself: no call per
// record), and its server's role changes and CLIENT LIST replies (`board`,
// may be null).
class FailoverWire : public resp::RecordSink, public WireClientLists {
 public:
  FailoverWire(DbAnswerBoard* board, const dataplane::Endpoint& server, const dataplane::Endpoint& client,
               Failovers* failovers, resp::RecordSink* next, uint64_t connection_id)
      : WireClientLists(board, server),
        server_(server.ToString()),
        client_ip_(client.addr),
        failovers_(failovers),
        next_(next),
        connection_id_(connection_id) {
    failovers_->NoteServer(server_);
  }
  void Emit(const RecordView& r, uint64_t id) override;
  void OnRoleChange(std::string_view master, uint64_t reply_ns, bool answered) override;
  void OnReplicaLink(const resp::ReplicaLink& link, uint64_t reply_ns) override;

 private:
  // Emits a read-back of `key` in `db` at `at_ns` (after the writes Redis
  // threw away), on this connection.
  void ReadBack(uint16_t db, std::string_view key, uint64_t at_ns, bool unknown_db);

  std::string server_;
  dataplane::IpAddress client_ip_;
  Failovers* failovers_;
  resp::RecordSink* next_;
  uint64_t connection_id_;
  // What Failovers::Keeps said for this server, at which generation.
  uint64_t generation_ = UINT64_MAX;
  bool keeps_ = true;
};

}  // namespace kvf::ctl
