// Asks source servers which db their clients' connections have selected
// (CLIENT LIST), for a live capture whose connections lost track of it: a
// pooled connection joined mid-stream, or one that lost client bytes where a
// SELECT may have been (docs/resp.md, "Unknown db"). One thread queries, at
// most once per `min_interval` per server and only while some connection
// wants an answer; workers read the answers without waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "dataplane/endpoint.h"
#include "resp/client_list.h"

namespace kvf::ctl {

struct DbResolverOptions {
  std::string username;                          // AUTH username (empty: the default user)
  std::string password;                          // empty: no AUTH. Never logged, printed or shipped.
  std::chrono::milliseconds min_interval{1000};  // between two CLIENT LISTs to one server
  std::chrono::milliseconds timeout{1000};       // connect, and each reply
  // An answer applies to a connection once its stream has been read this far
  // past the answer's arrival (the mirror's delay, at most), and only if it
  // was asked this long after the db became unknown (so that a SELECT lost
  // just before has surely run when the server answers).
  uint64_t margin_ns = 100'000'000;
};

// Hash of an 18-byte address key.
struct ClientAddrKeyHash {
  size_t operator()(const resp::ClientAddrKey& k) const;
};

// One server's answer, on the capture clock (CLOCK_REALTIME).
struct DbAnswer {
  uint64_t asked_ns = 0;
  uint64_t answered_ns = 0;
  // The db of each client; -1 for a client whose db may still change where
  // the capture has already read (unread query bytes, or inside a MULTI).
  std::unordered_map<resp::ClientAddrKey, int32_t, ClientAddrKeyHash> db_by_client;
};

// The latest answer of every server asked, immutable once published.
struct DbAnswers {
  std::map<dataplane::Endpoint, std::shared_ptr<const DbAnswer>> by_server;
  const DbAnswer* Find(const dataplane::Endpoint& server) const {
    const auto it = by_server.find(server);
    return it == by_server.end() ? nullptr : it->second.get();
  }
};

struct DbResolverStats {
  uint64_t queries = 0;       // CLIENT LIST answered
  uint64_t failures = 0;      // connect, AUTH or CLIENT LIST failed
  uint64_t clients_seen = 0;  // entries in the last answers, summed
};

class DbResolver {
 public:
  explicit DbResolver(DbResolverOptions options);
  ~DbResolver();  // stops the thread
  DbResolver(const DbResolver&) = delete;
  DbResolver& operator=(const DbResolver&) = delete;

  // Any thread. A connection to `server` needs an answer asked no earlier
  // than `not_before_ns` (CLOCK_REALTIME): the question waits until then.
  void Want(const dataplane::Endpoint& server, uint64_t not_before_ns);
  // Any thread: the answers published so far (null before the first) and
  // their version, which grows with every answer.
  std::shared_ptr<const DbAnswers> Answers() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  DbResolverStats stats() const;
  const DbResolverOptions& options() const { return opts_; }

 private:
  void Run();
  // One CLIENT LIST to `server`; false (a line on stderr, no secret) on
  // failure, and the server is asked again after min_interval.
  bool Query(const dataplane::Endpoint& server);

  DbResolverOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<dataplane::Endpoint, uint64_t> wanted_;  // not_before_ns, guarded by mu_
  std::map<dataplane::Endpoint, std::chrono::steady_clock::time_point> last_asked_;  // Run's thread
  std::map<dataplane::Endpoint, std::string> last_error_;                            // Run's thread
  std::shared_ptr<const DbAnswers> answers_;                                         // guarded by mu_
  DbResolverStats stats_;                                                            // guarded by mu_
  std::atomic<uint64_t> version_{0};
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace kvf::ctl
