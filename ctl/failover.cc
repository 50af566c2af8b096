#include "ctl/failover.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>

#include "ctl/notes.h"
#include "resp/command_table.h"
#include "resp/convert.h"

// XXH3 inlined: a hash a kept write.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvf::ctl {
namespace {

// "2026-12-07 01:02:03.456 UTC" for a capture time.
std::string CaptureTime(uint64_t ns) {
  const time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm t {};
  gmtime_r(&secs, &t);
  char buf[64];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &t);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03u UTC", static_cast<unsigned>(ns / 1'000'000 % 1000));
  return buf;
}

}  // namespace

// Open addressing over 64-bit hashes of (db, key), at most half full: one
// cache line a write while the set holds a hot key set (a std::set cost a
// capture in a failover window four fifths of its rate; a review).
bool Failovers::KeptKeys::Insert(uint16_t db, std::string_view key, bool unknown_db) {
  uint64_t h = XXH3_64bits(key.data(), key.size()) ^ (uint64_t{db} * 0x9e3779b97f4a7c15ull) ^
               (unknown_db ? 0xc2b2ae3d27d4eb4full : 0);
  h = h == 0 ? 1 : h;
  if ((used + 1) * 2 > slots.size()) {
    std::vector<uint64_t> old(std::max<size_t>(64, slots.size() * 2), 0);
    old.swap(slots);
    for (uint64_t o : old) {
      if (o == 0) continue;
      for (size_t i = o & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1)) {
        if (slots[i] == 0) {
          slots[i] = o;
          break;
        }
      }
    }
  }
  for (size_t i = h & (slots.size() - 1);; i = (i + 1) & (slots.size() - 1)) {
    if (slots[i] == h) return false;
    if (slots[i] == 0) {
      slots[i] = h;
      ++used;
      keys.push_back(KeptKey{db, std::string(key), unknown_db});
      return true;
    }
  }
}

size_t Failovers::KeptKeys::Bytes() const {
  size_t n = 0;
  for (const KeptKey& k : keys) n += k.key.size() + kEntryBytes;
  return n;
}

namespace {

template <typename... Args>
std::string Format(const char* fmt, Args... args) {
  const int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, fmt, args...);
  return s;
}

}  // namespace

void Failovers::NoteServer(const std::string& server) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!servers_.insert(server).second) return;
  // First seen after a promotion: not known to replicate the new master.
  if (!made_master_.empty() && server != made_master_) {
    awaiting_.insert(server);
    kept_since_.emplace(server, promoted_ns_);
    generation_.fetch_add(1, std::memory_order_release);
  }
}

bool Failovers::IsServer(const std::string& server) const {
  std::lock_guard<std::mutex> lock(mu_);
  return servers_.count(server) != 0;
}

bool Failovers::SettledLocked(const std::string& server) const {
  return overflowed_.count(server) != 0 || (server == made_master_ && awaiting_.empty());
}

bool Failovers::Keeps(const std::string& server) const {
  std::lock_guard<std::mutex> lock(mu_);
  return !SettledLocked(server);
}

bool Failovers::KeptAtLocked(const std::string& server, uint64_t at_ns) const {
  if (SettledLocked(server)) return false;
  // Written before its writes were kept (capture's workers pass a record on
  // after a promotion another one saw: a test read such a key back).
  const auto k = kept_since_.find(server);
  return k == kept_since_.end() || at_ns > k->second;
}

bool Failovers::Note(const std::string& server, uint16_t db, std::string_view key, uint64_t at_ns,
                     bool unknown_db) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!KeptAtLocked(server, at_ns)) return false;
  // Already demoted, after this write: its read-back went out without it.
  if (const Demotion* d = DemotedAfterLocked(server, at_ns)) {
    readbacks_.fetch_add(1, std::memory_order_relaxed);
    if (Change* c = ListedLocked(server, d->demoted_ns)) ++c->readbacks;  // (told live without it)
    return true;
  }
  KeptKeys& keys = written_[server];
  // (A key kept already costs nothing more: checked first, a hot key
  // written again near the cap overflowed the server for nothing.)
  if (!keys.Insert(db, key, unknown_db)) return false;
  if (key_bytes_ + key.size() + kEntryBytes > kMaxKeyBytes) {
    overflowed_.insert(server);
    key_bytes_ -= std::min(key_bytes_, keys.Bytes() - key.size() - kEntryBytes);
    written_.erase(server);
    generation_.fetch_add(1, std::memory_order_release);
    return false;
  }
  key_bytes_ += key.size() + kEntryBytes;
  return false;
}

void Failovers::Unknowable(const std::string& server, uint64_t at_ns) {
  std::string told;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!KeptAtLocked(server, at_ns)) return;
    if (const Demotion* d = DemotedAfterLocked(server, at_ns)) {
      // Its demotion was told already (capture's workers): say it again.
      if (Change* c = ListedLocked(server, d->demoted_ns)) c->overflowed = true;
      told = server +
             " took a database-wide write (FLUSHDB, SWAPDB…, a script that declares no keys) between the "
             "promotion and its demotion, seen only now: resynchronise (a consistency check)";
    } else {
      overflowed_.insert(server);
      Keys keys;
      ForgetLocked(server, &keys);
      generation_.fetch_add(1, std::memory_order_release);
    }
  }
  if (!told.empty() && on_change_) on_change_(told);
}

const Failovers::Demotion* Failovers::DemotedAfterLocked(const std::string& server, uint64_t at_ns) const {
  const auto d = demoted_.find(server);
  if (d == demoted_.end() || at_ns <= d->second.kept_since_ns || at_ns > d->second.demoted_ns) return nullptr;
  return &d->second;
}

Failovers::Change* Failovers::ListedLocked(const std::string& server, uint64_t at_ns) {
  for (auto it = changes_.rbegin(); it != changes_.rend(); ++it) {
    if (it->server == server && it->at_ns == at_ns) return &*it;
  }
  return nullptr;
}

void Failovers::ForgetLocked(const std::string& server, Keys* keys) {
  const auto it = written_.find(server);
  if (it == written_.end()) return;
  key_bytes_ -= std::min(key_bytes_, it->second.Bytes());
  for (auto& k : it->second.keys) keys->insert(std::move(k));
  written_.erase(it);
}

void Failovers::DropLocked(const std::string& server, uint64_t at_ns) {
  if (const auto it = written_.find(server); it != written_.end()) {
    key_bytes_ -= std::min(key_bytes_, it->second.Bytes());
    written_.erase(it);
  }
  overflowed_.erase(server);
  kept_since_[server] = at_ns;
}

Failovers::Keys Failovers::RoleChange(const std::string& server, std::string_view named_master,
                                      uint64_t at_ns, bool answered, bool coordinated) {
  // The master as the servers are named ("[::1]:6379" for "::1 6379"); a
  // host name stays as given (no lookup here) until the replica's link
  // tells which server it is (ReplicaLink): till then its replicas are not
  // known to replicate it, and more is kept and read back than need be.
  // Printable: the name came off the wire and is printed (a review forged a
  // line of decode's stderr with escape sequences in a REPLICAOF host).
  // (Room for any host name, 255 bytes, and its port: a review's 252-byte
  // name, cut, never matched its server.)
  std::string master = Printable(named_master, 512);
  bool by_name = !master.empty();
  if (const size_t colon = master.rfind(':'); colon != std::string::npos) {
    const Result<dataplane::IpAddress> ip = dataplane::IpAddress::Parse(master.substr(0, colon));
    uint16_t port = 0;
    const std::string_view digits = std::string_view(master).substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ip.ok() && ec == std::errc() && end == digits.data() + digits.size()) {
      master = dataplane::Endpoint{*ip, port}.ToString();
      by_name = false;
    }
  }
  Keys lost;
  std::string told;
  {
    std::lock_guard<std::mutex> lock(mu_);
    servers_.insert(server);
    if (by_name) {
      named_since_[server] = at_ns;
    } else {
      named_since_.erase(server);
    }
    const bool again = master.empty() && made_master_ == server;
    const bool overflowed = !again && overflowed_.erase(server) != 0;
    if (again) {
      // A master told REPLICAOF NO ONE again (Redis answers +OK): nothing
      // changes (a review: its kept keys were forgotten).
    } else if (master.empty()) {
      ForgetLocked(server, &lost);
      lost.clear();  // its writes stand
      // The others' writes count from now, those kept already from before.
      // So do the previous master's since its own promotion, unless this
      // server replicated it: then it has them (a review: a server promoted
      // that never replicated the one promoted before it, which was then
      // made its replica, lost that one's writes, unflagged).
      const std::string previous = std::exchange(made_master_, server);
      if (!previous.empty()) {
        const auto m = master_of_.find(server);
        if (m != master_of_.end() && m->second == previous) DropLocked(previous, at_ns);
      }
      promoted_ns_ = at_ns;
      demoted_.erase(server);
      master_of_.erase(server);
      kept_since_[server] = at_ns;
      for (const std::string& other : servers_) kept_since_.emplace(other, at_ns);
      // Its own writes are kept too, until every other server replicates
      // it: one that does not may be promoted next.
      awaiting_.clear();
      for (const std::string& other : servers_) {
        const auto m = master_of_.find(other);
        if (other != server && (m == master_of_.end() || m->second != server)) awaiting_.insert(other);
      }
      recording_.store(true, std::memory_order_release);
    } else {
      ForgetLocked(server, &lost);
      master_of_[server] = master;
      if (made_master_ == server) made_master_.clear();
      // Its writes since they were kept are gone (capture's workers may see
      // some only now: Note reads them back at once).
      if (const auto k = kept_since_.find(server); k != kept_since_.end()) {
        demoted_[server] = {k->second, at_ns};
        kept_since_.erase(k);
      }
      if (!made_master_.empty() && master == made_master_ && awaiting_.erase(server) != 0 &&
          awaiting_.empty()) {
        DropLocked(made_master_, at_ns);  // every other server replicates it: its writes are safe
      }
      // A host name: the replica's link may have told already which server
      // it is.
      if (const auto l = links_.find(server); by_name && l != links_.end()) {
        ResolveLocked(server, l->second.first, l->second.second);
      }
    }
    generation_.fetch_add(1, std::memory_order_release);
    role_changes_.fetch_add(1, std::memory_order_relaxed);
    readbacks_.fetch_add(lost.size(), std::memory_order_relaxed);
    Change c{server,   std::string(master), at_ns, lost.size(), overflowed && !master.empty(),
             answered, coordinated};
    if (on_change_) {
      std::vector<Change> all = changes_;
      all.push_back(c);
      std::stable_sort(all.begin(), all.end(),
                       [](const auto& a, const auto& b) { return a.at_ns < b.at_ns; });
      for (size_t i = all.size(); i-- > 0;) {
        if (all[i].server == c.server && all[i].at_ns == c.at_ns) {
          told = Describe(all, i, tool_);
          break;
        }
      }
    }
    if (changes_.size() < kKeep) {
      changes_.push_back(std::move(c));
    } else {
      ++dropped_;
    }
  }
  if (!told.empty()) on_change_(told);
  return lost;
}

void Failovers::ReplicaLink(const std::string& replica, const std::string& master, uint64_t at_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  // (Capture's workers may pass the link on before the REPLICAOF: kept for
  // it. One per replica, as many as servers could plausibly be.)
  const auto l = links_.find(replica);
  if (l != links_.end()) {
    if (l->second.second > at_ns) return;
    l->second = {master, at_ns};
  } else if (links_.size() < kMaxLinks) {
    links_.emplace(replica, std::make_pair(master, at_ns));
  }
  if (named_since_.count(replica) != 0) ResolveLocked(replica, master, at_ns);
}

void Failovers::ResolveLocked(const std::string& replica, const std::string& master, uint64_t at_ns) {
  // Only a host name is resolved so (an address named is the address): the
  // same port, and the link made after the REPLICAOF that named it.
  const auto named = named_since_.find(replica);
  const auto m = master_of_.find(replica);
  if (named == named_since_.end() || at_ns < named->second || m == master_of_.end()) return;
  const size_t a = m->second.rfind(':'), b = master.rfind(':');
  if (a == std::string::npos || b == std::string::npos ||
      std::string_view(m->second).substr(a) != std::string_view(master).substr(b)) {
    return;
  }
  named_since_.erase(named);
  m->second = master;
  if (!made_master_.empty() && master == made_master_ && awaiting_.erase(replica) != 0 && awaiting_.empty()) {
    DropLocked(made_master_, at_ns);  // as RoleChange: every other server replicates it
    generation_.fetch_add(1, std::memory_order_release);
  }
}

std::string Failovers::Describe(const std::vector<Change>& all, size_t i, std::string_view tool) {
  const Change& c = all[i];
  // What made the change: a REPLICAOF, or FAILOVER's coordinated switch
  // (the old master's PSYNC FAILOVER answered by the new one).
  const std::string how = c.coordinated ? std::string("FAILOVER, coordinated")
                                        : std::string(c.master.empty() ? "REPLICAOF NO ONE " : "REPLICAOF ") +
                                              (c.answered ? "answered" : "sent with its reply silenced");
  if (c.master.empty()) {
    return Format("%s was made a master at %s (%s)", c.server.c_str(), CaptureTime(c.at_ns).c_str(),
                  how.c_str());
  }
  // The latest promotion of another server before it, after this server's
  // own previous change.
  const Change* promoted = nullptr;
  for (size_t j = 0; j < i; ++j) {
    if (all[j].server == c.server) promoted = nullptr;
    if (all[j].server != c.server && all[j].master.empty()) promoted = &all[j];
  }
  if (promoted != nullptr && c.readbacks == 0 && !c.overflowed) {
    // (A replica pointed at the new master: it took no writes.)
    return Format(
        "%s was made a replica of %s at %s (%s), %.1f s after %s was made a master; it wrote "
        "nothing seen here in between",
        c.server.c_str(), c.master.c_str(), CaptureTime(c.at_ns).c_str(), how.c_str(),
        static_cast<double>(c.at_ns - promoted->at_ns) / 1e9, promoted->server.c_str());
  }
  if (promoted != nullptr) {
    const std::string keys =
        c.overflowed ? "a database-wide write (FLUSHDB, SWAPDB…, a script that declares no keys), or more "
                       "keys than " +
                           std::string(tool) + " keeps, was among them: resynchronise (a consistency check)"
                     : std::to_string(c.readbacks) + " key(s) written there then are read back (flagged)";
    return Format(
        "%s was made a replica of %s at %s (%s), %.1f s after %s was made a master: Redis threw "
        "away the writes %s took in between; %s",
        c.server.c_str(), c.master.c_str(), CaptureTime(c.at_ns).c_str(), how.c_str(),
        static_cast<double>(c.at_ns - promoted->at_ns) / 1e9, promoted->server.c_str(), c.server.c_str(),
        keys.c_str());
  }
  return Format(
      "%s was made a replica of %s at %s (%s): it replaced its dataset with the master's, over a "
      "link of its own that a capture of its port does not see; what it held that the master lacked is "
      "gone from the source, unflagged here: resynchronise the replica (a consistency check, or a copy of "
      "the source)",
      c.server.c_str(), c.master.c_str(), CaptureTime(c.at_ns).c_str(), how.c_str());
}

void Failovers::Report(size_t lines) const {
  std::vector<Change> all;
  uint64_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all = changes_;
    dropped = dropped_;
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.at_ns < b.at_ns; });
  // The latest ones: in a long capture, the failover that matters is late.
  const size_t first = all.size() > lines ? all.size() - lines : 0;
  if (first + dropped > 0)
    std::fprintf(stderr, "kvferryctl %s: %llu earlier REPLICAOF(s) not listed\n", tool_.c_str(),
                 static_cast<unsigned long long>(first + dropped));
  for (size_t i = first; i < all.size(); ++i)
    std::fprintf(stderr, "kvferryctl %s: %s\n", tool_.c_str(), Describe(all, i, tool_).c_str());
}

void FailoverWire::Emit(const RecordView& r, uint64_t id) {
  next_->Emit(r, id);
  if (!failovers_->recording()) return;  // no promotion yet: no write of a master can be lost
  if (const uint64_t g = failovers_->generation(); g != generation_) [[unlikely]] {
    generation_ = g;
    keeps_ = failovers_->Keeps(server_);
  }
  if (!keeps_) return;
  if (r.op == RecordOp::kHold) return;
  if (!resp::RecordHasKey(r)) {
    // A FLUSHDB, SWAPDB…, or a script that declares no keys, the failover
    // may throw away: no key to read back undoes it (a review: the old
    // master's FLUSHALL emptied the replica; a second, its EVAL … 0).
    failovers_->Unknowable(server_, r.capture_ns);
  } else {
    const bool unknown_db = (r.flags & kUnknownDb) != 0;
    if (failovers_->Note(server_, r.db, r.key, r.capture_ns, unknown_db))
      ReadBack(r.db, r.key, r.capture_ns, unknown_db);
  }
}

void FailoverWire::OnReplicaLink(const resp::ReplicaLink& link, uint64_t reply_ns) {
  // The replica as the servers are named: the address its link came from,
  // or the one it announced (replica-announce-ip) if that is a server seen
  // and the first is not (a review: an announced address that names no
  // server lost the old master's demotion).
  std::string replica = dataplane::Endpoint{client_ip_, link.listening_port}.ToString();
  if (!link.announced_ip.empty() && !failovers_->IsServer(replica)) {
    if (const Result<dataplane::IpAddress> a = dataplane::IpAddress::Parse(link.announced_ip); a.ok()) {
      std::string announced = dataplane::Endpoint{*a, link.listening_port}.ToString();
      if (failovers_->IsServer(announced)) replica = std::move(announced);
    }
  }
  if (link.failover) {
    // FAILOVER (Redis 6.2+): the old master hands over by a PSYNC FAILOVER
    // to the replica it chose, which became a master on answering it; the
    // sender is its replica now. Nothing was lost (the old master paused
    // its writes until the new one had them all), and no REPLICAOF shows.
    failovers_->RoleChange(server_, "", reply_ns, true, true);
    if (failovers_->IsServer(replica)) {
      for (const Failovers::KeptKey& k : failovers_->RoleChange(replica, server_, reply_ns, true, true))
        ReadBack(k.db, k.key, reply_ns, k.unknown_db);
    }
    return;
  }
  failovers_->ReplicaLink(replica, server_, reply_ns);
}

void FailoverWire::OnRoleChange(std::string_view master, uint64_t reply_ns, bool answered) {
  const Failovers::Keys lost = failovers_->RoleChange(server_, master, reply_ns, answered);
  // What it took since another server was made master is gone from the
  // source: read back, after the writes that made them.
  for (const Failovers::KeptKey& k : lost) ReadBack(k.db, k.key, reply_ns, k.unknown_db);
}

void FailoverWire::ReadBack(uint16_t db, std::string_view key, uint64_t at_ns, bool unknown_db) {
  static const resp::CommandSpec* const replicaof = resp::LookupCommandName("replicaof");
  RecordView v;
  v.capture_ns = at_ns;
  v.request_ns = at_ns;
  v.db = db;
  v.op = RecordOp::kReadback;
  v.flags = static_cast<uint16_t>(unknown_db ? kNeedsReadback | kUnknownDb : kNeedsReadback);
  v.source = replicaof != nullptr ? resp::SourceIdOf(*replicaof) : 0;
  v.key = key;
  next_->Emit(v, connection_id_);
}

}  // namespace kvf::ctl
