#include "ctl/notes.h"

#include <algorithm>
#include <cstdio>

#include "resp/command_table.h"

namespace kvf::ctl {

std::string Printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

void ConnectionNames::Add(const resp::Connection& conn) {
  std::lock_guard<std::mutex> lock(mu_);
  more_ = more_ || conn.more_unknown_command_names();
  for (const std::string& target : conn.redirect_targets()) {
    if (redirects_.size() < kMaxRedirects) redirects_.insert(target);
  }
  for (const std::string& name : conn.unknown_command_names()) {
    if (names_.size() < resp::Connection::kMaxUnknownNames || names_.count(name) != 0) {
      names_.insert(name);
    } else {
      more_ = true;
    }
  }
}

std::vector<std::string> ConnectionNames::Notes(const resp::ConnectionStats& totals,
                                                const std::vector<dataplane::Endpoint>& servers) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> notes;
  auto n = [](uint64_t v) { return std::to_string(v); };
  // A note that is its count and a text.
  auto count_note = [&](uint64_t count, std::string_view text) {
    if (count > 0) notes.push_back(n(count) + std::string(text));
  };
  if (totals.unknown_commands > 0) {
    // (Names are kept only of requests paired for sure: Connection::Handle.)
    std::string names;
    for (const std::string& name : names_) names += (names.empty() ? "" : ", ") + name;
    if (!names.empty()) names = " (" + names + (more_ ? ", …)" : ")");
    notes.push_back(n(totals.unknown_commands) + " request(s) of commands the Redis " +
                    resp::kCommandTableRedisVersion + " command table does not know" + names +
                    " were answered without an error: module commands (--command-info), or commands the "
                    "source's redis.conf renames (--redis-conf, --rename-command)? Their writes are not "
                    "replicated");
  }
  if (totals.script_unknown > 0) {
    notes.push_back(n(totals.script_unknown) +
                    " EVALSHA(s) ran scripts the capture never saw loaded (SCRIPT LOAD or EVAL before the "
                    "capture, or on a connection it missed): a replica cannot run them, so their keys are "
                    "read back instead" +
                    (totals.script_unknown_keyless == 0
                         ? std::string()
                         : "; " + n(totals.script_unknown_keyless) +
                               " of them declared no keys, and what they wrote is not replicated at all (a "
                               "consistency check finds it)"));
  }
  count_note(totals.scripts_not_shipped,
             " script call(s) or function librarie(s) name MIGRATE or a command the source renamed, or "
             "call commands they do not name with a plain string (or are FUNCTION RESTOREs, whose "
             "code cannot be read, or FCALLs after such a library), and were not shipped (a MIGRATE's "
             "password may be in them; replayed, it would act on a third server): the keys they declare "
             "are read back, and what they wrote to keys they do not declare (a job queue's job keys, "
             "BullMQ's among them) is not replicated: a consistency check finds it");
  count_note(totals.fcall_unknown_keyless,
             " FCALL(s) that declared no keys ran functions no FUNCTION LOAD in the capture registered "
             "(loaded before it?): they were shipped, but only a replica that has their library runs "
             "them (copy it: FUNCTION DUMP on the source, FUNCTION RESTORE on each replica); where it "
             "does not, what they wrote is not replicated, and no record names a key to read back");
  count_note(totals.scripts_failed_may_flush,
             " script call(s) that may flush or swap dbs (their code names FLUSHDB, FLUSHALL or SWAPDB) "
             "failed: whether they did so before failing the wire does not say, so they were not shipped "
             "and their declared keys are read back; check the dbs they ran in (a consistency check)");
  count_note(totals.libraries_held_back,
             " function librar(ies) the server loaded were not shipped (FUNCTION LOAD of code that names "
             "MIGRATE or a command the source renamed, or a FUNCTION RESTORE, whose code cannot be read: "
             "a MIGRATE's password may be in them): replicas lack them until you copy them (FUNCTION DUMP "
             "on the source, FUNCTION RESTORE on each replica) once you know they hold no secret; until a "
             "FUNCTION FLUSH, FCALLs are read back instead of shipped");
  // (A review found large SETs lost this way with nothing said.)
  count_note(totals.parse_errors,
             " RESP parse error(s): bytes that are not RESP, a length past the parser's limits on a "
             "connection the capture joined or that lost bytes, or a reply of more than 4,194,304 "
             "elements that had to be read (in a transaction, a write's); what lay up to the next message "
             "was skipped (a write in it is not replicated) and the writes after it are flagged");
  // (A review's MSET of 2.2 M pairs was lost with nothing said.)
  count_note(totals.oversized_lost,
             " write(s) too large to replicate were not: a key too large to hold (past 64 MiB), a "
             "key-less write (FUNCTION LOAD, RESTORE…) whose payload was, or keys among more than "
             "4,194,304 arguments (an MSET or DEL of millions); no record names their keys, only a "
             "consistency check repairs them");
  // (Two reviews: an inline client on a connection joined mid-stream lost
  // every write, and nothing but `--format stats` said a word.)
  count_note(totals.unpaired_replies,
             " reply(ies) had no request to pair with: answers to requests sent before the capture "
             "began (on connections it joined mid-stream), to requests it did not see (an inline "
             "client, such as telnet or nc, on such a connection; bytes lost to a gap), or the elements "
             "of a reply it could not parse (see the parse errors): a write among requests not seen is "
             "not replicated, and no record names its key");
  count_note(totals.overflows,
             " time(s) a connection had more requests waiting for their replies than are held "
             "(1,048,576, or 64 MiB with their arguments): its replies could not be paired from there "
             "until it was back in step, and its writes were read back");
  if (totals.keyless_unconfirmed > 0)
    notes.push_back(resp::KeylessUnconfirmedNote(totals.keyless_unconfirmed));
  // (A review: 28,368 keys evicted under allkeys-lru, nothing said.)
  count_note(totals.oom_refused,
             " write(s) were refused -OOM: the source reached its maxmemory, where an eviction "
             "policy also removes keys on its own, which nothing on the wire shows: the replica keeps "
             "them until a consistency check");
  count_note(totals.shutdowns,
             " SHUTDOWN(s) the source never answered (or sent with the reply silenced, and no "
             "reply after): it most likely exited. Restarted, it holds only its last save (RDB or "
             "AOF), or nothing, which the wire does not show: what it lost stays on the replica "
             "until a consistency check");
  count_note(totals.lua_debug_sessions,
             " EVAL(s) under SCRIPT DEBUG (a Lua debugging session, maybe): nothing of their "
             "connections from there is shipped, their writes' keys are read back (the script's "
             "declared keys, and those of `redis` commands typed at the debugger); what a script "
             "wrote beyond them (kept under SCRIPT DEBUG SYNC, discarded under YES) differs until a "
             "consistency check");
  if (totals.redirected > 0) {
    // A Redis Cluster: what -MOVED or -ASK sent elsewhere ran on the node
    // named, which only a capture of that node shows (a review: decode of
    // one node said nothing of the twelve writes redirected away).
    std::string elsewhere;
    size_t named = 0;
    for (const std::string& target : redirects_) {
      const Result<dataplane::Endpoint> ep = dataplane::Endpoint::Parse(target);
      const bool given = ep.ok() && std::any_of(servers.begin(), servers.end(),
                                                [&](const dataplane::Endpoint& s) { return s.Matches(*ep); });
      if (given || ++named > 8) continue;
      elsewhere += (elsewhere.empty() ? "" : ", ") + target;
    }
    if (!elsewhere.empty()) {
      notes.push_back(
          n(totals.redirected) +
          " request(s) were answered -MOVED or -ASK (a Redis Cluster): they run on the node named, "
          "and " +
          elsewhere + (named > 8 ? ", …" : "") + (named == 1 ? " is" : " are") +
          " not among --server: give every node of the cluster (its writes are missing from this "
          "output)");
    }
  }
  if (totals.tls_connections > 0) {
    notes.push_back(n(totals.tls_connections) +
                    " connection(s) carried TLS: encrypted traffic cannot be decoded from a capture, and was "
                    "ignored");
  }
  return notes;
}

}  // namespace kvf::ctl
