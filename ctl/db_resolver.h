// Which db a connection has selected, when the capture cannot tell: a pooled
// connection joined mid-stream, or one that lost client bytes where a SELECT
// may have been (docs/resp.md, "Unknown db"). The source server knows, and
// says so in a CLIENT LIST reply: one seen on the wire (any client's: a
// monitoring agent's, an operator's `redis-cli client list` during the
// capture), or one asked for by a live capture (--resolve-db). Answers go on
// a board, per server; each connection whose db is unknown settles it from
// the board once an answer applies (DbSettler, Connection::ProveDb).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "dataplane/endpoint.h"
#include "resp/client_list.h"
#include "resp/connection.h"

namespace kvf::ctl {

// Hash of an 18-byte address key.
struct ClientAddrKeyHash {
  size_t operator()(const resp::ClientAddrKey& k) const;
};

// One server's answer, on the capture clock (CLOCK_REALTIME, or the file's).
struct DbAnswer {
  uint64_t asked_ns = 0;     // when the request was sent (or captured)
  uint64_t answered_ns = 0;  // when the reply came (or was captured)
  bool asked = false;        // the resolver's own question (not one seen on the wire)
  // The db of each client; -1 for a client whose db may still change where
  // the capture has already read (unread query bytes, or inside a MULTI).
  std::unordered_map<resp::ClientAddrKey, int32_t, ClientAddrKeyHash> db_by_client;

  // The entries of `text` (a CLIENT LIST reply) that are clients of `server`
  // (by laddr=, when the server gives it).
  static std::shared_ptr<DbAnswer> FromClientList(std::string_view text, const dataplane::Endpoint& server,
                                                  uint64_t asked_ns, uint64_t answered_ns);
};

// The latest answers of every server (by asked_ns ascending), immutable
// once published: every one answered within DbSettler::kMarginNs of the
// newest (not yet applicable to a stream read up to it), and kKeep older
// ones, at most kMaxKept in all. Not the kKeep newest alone: an agent
// polling faster than the margin always showed answers not yet applicable,
// and pushed out the one that was (a review: CLIENT LIST every 10 ms left
// every connection's db unknown, --resolve-db too).
struct DbAnswers {
  static constexpr size_t kKeep = 4;
  static constexpr size_t kMaxKept = 256;
  using List = std::vector<std::shared_ptr<const DbAnswer>>;
  std::map<dataplane::Endpoint, List> by_server;
  // Servers shown to be Redis Cluster nodes: db 0 alone, for every client
  // and at all times (resp::Connection::SetSingleDb).
  std::set<dataplane::Endpoint> cluster_nodes;
  const List* Find(const dataplane::Endpoint& server) const {
    const auto it = by_server.find(server);
    return it == by_server.end() ? nullptr : &it->second;
  }
};

// The answers so far. Thread-safe; readers poll version() (one atomic load)
// and fetch the answers only when it moved.
class DbAnswerBoard {
 public:
  // Adds `answer` to `server`'s latest (dropping the oldest: see DbAnswers).
  void Publish(const dataplane::Endpoint& server, std::shared_ptr<const DbAnswer> answer);
  // `server` is a Redis Cluster node (once; later calls change nothing).
  void PublishClusterNode(const dataplane::Endpoint& server);
  std::shared_ptr<const DbAnswers> Answers() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const DbAnswers> answers_;  // guarded by mu_
  std::atomic<uint64_t> version_{0};
};

struct DbResolverOptions {
  std::string username;  // AUTH username (empty: the default user)
  std::string password;  // empty: no AUTH. Never logged, printed or shipped.
  // The names the source knows AUTH and CLIENT by (its rename-commands:
  // resp::ServerCommandName).
  std::string auth_command = "AUTH";
  std::string client_command = "CLIENT";
  std::chrono::milliseconds min_interval{1000};  // between two CLIENT LISTs to one server
  std::chrono::milliseconds timeout{1000};       // connect, and each reply
};

struct DbResolverStats {
  uint64_t queries = 0;   // CLIENT LIST answered
  uint64_t failures = 0;  // connect, AUTH or CLIENT LIST failed
};

// Asks servers CLIENT LIST on a thread of its own, at most once per
// `min_interval` per server and only while some connection wants an answer,
// and publishes the answers on `board`.
class DbResolver {
 public:
  // `board` must outlive the resolver.
  DbResolver(DbAnswerBoard* board, DbResolverOptions options);
  ~DbResolver();  // stops the thread
  DbResolver(const DbResolver&) = delete;
  DbResolver& operator=(const DbResolver&) = delete;

  // Any thread. A connection to `server` needs an answer asked no earlier
  // than `not_before_ns` (CLOCK_REALTIME): the question waits until then.
  void Want(const dataplane::Endpoint& server, uint64_t not_before_ns);
  DbResolverStats stats() const;

 private:
  void Run();
  // One CLIENT LIST to `server`; false (a line on stderr, no secret) on
  // failure, and the server is asked again after min_interval.
  bool Query(const dataplane::Endpoint& server);

  DbAnswerBoard* board_;
  DbResolverOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<dataplane::Endpoint, uint64_t> wanted_;  // not_before_ns, guarded by mu_
  std::map<dataplane::Endpoint, std::chrono::steady_clock::time_point> last_asked_;  // Run's thread
  std::map<dataplane::Endpoint, std::string> last_error_;                            // Run's thread
  DbResolverStats stats_;                                                            // guarded by mu_
  bool stop_ = false;                                                                // guarded by mu_
  std::thread thread_;
};

// One thread's view of the board (a worker's, or decode's RESP thread):
// fetches the answers when the board's version moves.
class DbBoardReader {
 public:
  explicit DbBoardReader(DbAnswerBoard* board) : board_(board) {}
  const DbAnswers* Current() {
    const uint64_t v = board_->version();
    if (v != version_) {
      answers_ = board_->Answers();
      version_ = v;
    }
    return answers_.get();
  }

 private:
  DbAnswerBoard* board_;
  std::shared_ptr<const DbAnswers> answers_;
  uint64_t version_ = 0;
};

// One connection's way to a proven db: after each chunk of its stream,
// Check() settles an unknown db from the board once an answer applies, and
// (with a resolver) asks for one when none does. The rules are in
// docs/resp.md; Connection::ProveDb has the last word.
class DbSettler {
 public:
  // An answer must be asked this long after the db became unknown (a SELECT
  // lost just before has surely run), and applies once the stream has been
  // read this far past the answer (the mirror's delay, at most).
  static constexpr uint64_t kMarginNs = 100'000'000;

  // `resolver` may be null (answers seen on the wire only).
  DbSettler(const dataplane::Endpoint& server, const dataplane::Endpoint& client, DbResolver* resolver)
      : server_(server),
        client_(resp::ClientAddrKeyOf(client.addr.bytes, client.port)),
        resolver_(resolver) {}

  // The stream of `conn` has been read up to capture time `ts`. True when
  // this call gave up on the connection (for the caller to count; once).
  bool Check(resp::Connection& conn, DbBoardReader& board, uint64_t ts);

 private:
  static constexpr uint32_t kMaxNotListed = 3;
  static constexpr uint32_t kMaxRefused = 10;

  dataplane::Endpoint server_;
  resp::ClientAddrKey client_;
  DbResolver* resolver_;
  uint64_t tried_asked_ns_ = 0;   // the answer last tried
  uint64_t wanted_after_ns_ = 0;  // the unknown-since stamp an answer was last asked for
  uint32_t not_listed_ = 0;       // answers that did not list the client
  uint32_t refused_ = 0;          // answers that listed it but could not settle its db
  bool gave_up_ = false;
};

// Publishes the CLIENT LIST replies one connection pairs on a board: the
// answers seen on the wire.
class WireClientLists : public resp::ClientListObserver {
 public:
  // `board` may be null: the answers are dropped.
  WireClientLists(DbAnswerBoard* board, const dataplane::Endpoint& server) : board_(board), server_(server) {}
  void OnClientList(std::string_view text, uint64_t request_ns, uint64_t reply_ns) override {
    if (board_ != nullptr)
      board_->Publish(server_, DbAnswer::FromClientList(text, server_, request_ns, reply_ns));
  }
  void OnClusterNode(uint64_t) override {
    if (board_ != nullptr) board_->PublishClusterNode(server_);
  }

 private:
  DbAnswerBoard* board_;
  dataplane::Endpoint server_;
};

}  // namespace kvf::ctl
