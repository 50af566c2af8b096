// CLIENT LIST queries for unknown dbs: see db_resolver.h.
#include "ctl/db_resolver.h"

#include <hiredis/hiredis.h>

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <vector>

namespace kvf::ctl {

namespace {

uint64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

Reply Command(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return Reply(
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lens.data())));
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

}  // namespace

size_t ClientAddrKeyHash::operator()(const resp::ClientAddrKey& k) const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
  return static_cast<size_t>(h);
}

std::shared_ptr<DbAnswer> DbAnswer::FromClientList(std::string_view text, const dataplane::Endpoint& server,
                                                   uint64_t asked_ns, uint64_t answered_ns) {
  const resp::ClientList list = resp::ParseClientList(text);
  auto answer = std::make_shared<DbAnswer>();
  answer->asked_ns = asked_ns;
  answer->answered_ns = answered_ns;
  const resp::ClientAddrKey self = resp::ClientAddrKeyOf(server.addr.bytes, server.port);
  for (const resp::ClientListEntry& e : list.entries) {
    // With laddr (Redis 6.2+), only clients of the address asked: a server
    // listening on several addresses lists all its clients.
    if (e.has_laddr && e.laddr != self) continue;
    answer->db_by_client[e.addr] = e.settled() ? e.db : -1;
  }
  return answer;
}

void DbAnswerBoard::Publish(const dataplane::Endpoint& server, std::shared_ptr<const DbAnswer> answer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto next = std::make_shared<DbAnswers>(answers_ != nullptr ? *answers_ : DbAnswers{});
  DbAnswers::List& list = next->by_server[server];
  const auto at = std::upper_bound(list.begin(), list.end(), answer->asked_ns,
                                   [](uint64_t asked, const auto& a) { return asked < a->asked_ns; });
  list.insert(at, std::move(answer));
  uint64_t newest_ns = 0;
  for (const auto& a : list) newest_ns = std::max(newest_ns, a->answered_ns);
  size_t applicable = 0;  // answered a margin or more before the newest
  for (const auto& a : list) applicable += a->answered_ns + DbSettler::kMarginNs <= newest_ns;
  while (list.size() > DbAnswers::kMaxKept || applicable > DbAnswers::kKeep) {
    applicable -= list.front()->answered_ns + DbSettler::kMarginNs <= newest_ns;
    list.erase(list.begin());
  }
  answers_ = std::move(next);
  version_.fetch_add(1, std::memory_order_release);
}

void DbAnswerBoard::PublishClusterNode(const dataplane::Endpoint& server) {
  std::lock_guard<std::mutex> lock(mu_);
  if (answers_ != nullptr && answers_->cluster_nodes.count(server) != 0) return;
  auto next = std::make_shared<DbAnswers>(answers_ != nullptr ? *answers_ : DbAnswers{});
  next->cluster_nodes.insert(server);
  answers_ = std::move(next);
  version_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const DbAnswers> DbAnswerBoard::Answers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return answers_;
}

bool DbSettler::Check(resp::Connection& conn, DbBoardReader& board, uint64_t ts) {
  if (gave_up_ || conn.db_known() || conn.ignored() || conn.encrypted()) return false;
  const DbAnswers* answers = board.Current();
  if (answers != nullptr && answers->cluster_nodes.count(server_) != 0) {
    conn.SetSingleDb();
    return false;
  }
  const uint64_t since = conn.db_unknown_since_ns();
  if (since == 0) return false;  // stamped by the next bytes
  const DbAnswers::List* list = answers != nullptr ? answers->Find(server_) : nullptr;
  bool asked_late_enough = false;
  for (size_t i = list != nullptr ? list->size() : 0; i-- > 0;) {
    const DbAnswer* a = (*list)[i].get();
    if (a->asked_ns < since + kMarginNs) break;  // and so were the older ones
    asked_late_enough = true;
    // Once the stream is read past where it came, every SELECT the server
    // ran before answering has been seen.
    if (ts < a->answered_ns + kMarginNs) continue;
    if (a->asked_ns <= tried_asked_ns_) return false;  // tried (it and the older ones)
    tried_asked_ns_ = a->asked_ns;
    const auto it = a->db_by_client.find(client_);
    if (it != a->db_by_client.end() && it->second >= 0 &&
        conn.ProveDb(static_cast<uint16_t>(it->second), a->asked_ns, a->answered_ns + kMarginNs))
      return false;
    // Answers seen on the wire cost nothing: wait for more. Only the
    // resolver's own count towards giving up.
    if (resolver_ == nullptr || !a->asked) return false;
    if (it == a->db_by_client.end() ? ++not_listed_ >= kMaxNotListed : ++refused_ >= kMaxRefused) {
      // Not among the server's clients (seen through NAT, or closed), or
      // never at rest when asked (replies off, a transaction or a SELECT
      // always on its way): the guess stays, and the server is not asked
      // every second for the rest of the capture.
      gave_up_ = true;
      return true;
    }
    resolver_->Want(server_, 0);  // a later answer
    return false;
  }
  if (asked_late_enough) return false;  // one applies once the stream is read that far
  if (resolver_ != nullptr && wanted_after_ns_ != since) {
    wanted_after_ns_ = since;
    resolver_->Want(server_, since + kMarginNs);
  }
  return false;
}

DbResolver::DbResolver(DbAnswerBoard* board, DbResolverOptions options)
    : board_(board), opts_(std::move(options)) {
  thread_ = std::thread([this] { Run(); });
}

DbResolver::~DbResolver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DbResolver::Want(const dataplane::Endpoint& server, uint64_t not_before_ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto [it, added] = wanted_.emplace(server, not_before_ns);
    // Several connections want it: the earliest question that serves them
    // all is the latest of their bounds.
    if (!added && it->second >= not_before_ns) return;
    it->second = not_before_ns;
  }
  cv_.notify_all();
}

DbResolverStats DbResolver::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void DbResolver::Run() {
  // hiredis writes with write(): to a connection the server closed at
  // once (maxclients, protected mode) that raised SIGPIPE, and the capture
  // died (a review). Blocked on this thread, the signal stays pending and
  // the write fails with EPIPE.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // The servers wanted whose last question is old enough; the others wait.
    const auto now = std::chrono::steady_clock::now();
    const uint64_t real_now = RealtimeNs();
    std::vector<dataplane::Endpoint> due;
    auto next = now + std::chrono::hours(1);
    for (auto it = wanted_.begin(); it != wanted_.end();) {
      const auto last = last_asked_.find(it->first);
      auto at = last == last_asked_.end() ? now : last->second + opts_.min_interval;
      if (it->second > real_now) at = std::max(at, now + std::chrono::nanoseconds(it->second - real_now));
      if (at <= now) {
        due.push_back(it->first);
        it = wanted_.erase(it);
      } else {
        next = std::min(next, at);
        ++it;
      }
    }
    if (due.empty()) {
      cv_.wait_until(lock, next);
      continue;
    }
    lock.unlock();
    std::vector<dataplane::Endpoint> failed;
    for (const dataplane::Endpoint& server : due) {
      {
        std::lock_guard<std::mutex> check(mu_);
        if (stop_) break;
      }
      last_asked_[server] = std::chrono::steady_clock::now();
      if (!Query(server)) failed.push_back(server);
    }
    lock.lock();
    // The connections that wanted an answer still do.
    for (const dataplane::Endpoint& server : failed) wanted_.emplace(server, 0);
  }
}

bool DbResolver::Query(const dataplane::Endpoint& server) {
  const std::string name = server.ToString();
  auto fail = [&](const std::string& why) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.failures;
    }
    // Said once per server and reason, not every second.
    std::string& last = last_error_[server];
    if (last != why) {
      std::fprintf(stderr, "kvferryctl capture: asking %s for its clients' dbs: %s\n", name.c_str(),
                   why.c_str());
      last = why;
    }
    return false;
  };
  const std::string host = server.addr.ToString();
  const timeval tv = ToTimeval(opts_.timeout);
  Context c(redisConnectWithTimeout(host.c_str(), server.port, tv));
  if (c == nullptr) return fail("out of memory");
  if (c->err != 0) return fail(std::string("cannot connect: ") + c->errstr);
  redisSetTimeout(c.get(), tv);
  if (!opts_.password.empty()) {
    std::vector<std::string> auth = {opts_.auth_command};
    if (!opts_.username.empty()) auth.push_back(opts_.username);
    auth.push_back(opts_.password);
    Reply r = Command(c.get(), auth);
    if (r == nullptr) return fail(std::string("AUTH: ") + c->errstr);
    // Its first word only (WRONGPASS, NOAUTH, ERR): Redis repeats the
    // arguments of a command it does not know, the password among them (a
    // review printed it so, with AUTH renamed).
    if (r->type == REDIS_REPLY_ERROR) {
      const std::string_view error(r->str, r->len);
      return fail("AUTH refused: " + std::string(error.substr(0, error.find(' '))));
    }
  }
  // Named like a replayer: a capture of this server sees this connection
  // too, and must not take it for an application's.
  Reply named = Command(c.get(), {opts_.client_command, "SETNAME", "kvferry:dbresolver"});
  if (named == nullptr) return fail("CLIENT SETNAME: " + std::string(c->errstr));
  // Refused as it was accepted (maxclients, protected mode): the server
  // closes it. Refused by an ACL that allows CLIENT LIST alone: unnamed
  // does as well (its reads are no application's writes; the diff review).
  if (named->type == REDIS_REPLY_ERROR) {
    const std::string_view error(named->str, named->len);
    if (error.starts_with("ERR max number of clients") || error.starts_with("DENIED"))
      return fail("refused: " + std::string(error));
  }
  const uint64_t asked = RealtimeNs();
  Reply r = Command(c.get(), {opts_.client_command, "LIST", "TYPE", "normal"});
  const uint64_t answered = RealtimeNs();
  if (r == nullptr) return fail(std::string("CLIENT LIST: ") + c->errstr);
  if (r->type == REDIS_REPLY_ERROR) return fail("CLIENT LIST refused: " + std::string(r->str, r->len));
  if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
    return fail("CLIENT LIST: unexpected reply type " + std::to_string(r->type));
  board_->Publish(server,
                  DbAnswer::FromClientList(std::string_view(r->str, r->len), server, asked, answered));
  last_error_.erase(server);
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.queries;
  return true;
}

}  // namespace kvf::ctl
