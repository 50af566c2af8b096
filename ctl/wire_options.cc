#include "ctl/wire_options.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "resp/command_info.h"
#include "resp/renames.h"

namespace kvf::ctl {

CLI::Validator FiniteRange(double lo, double hi) {
  char range[96];
  std::snprintf(range, sizeof range, "%.10g to %.10g", lo, hi);
  return CLI::Validator(
      [lo, hi, within = std::string(range)](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return "'" + text + "' is not a number";
        if (!std::isfinite(v) || v < lo || v > hi) return "'" + text + "' is not within " + within;
        return {};
      },
      std::string("FLOAT, ") + range);
}

int UsageExit(CLI::App& app, const CLI::ParseError& e) {
  const int code = app.exit(e);
  return code == 0 ? 0 : 2;
}

void WireOptions::AddTo(CLI::App& app) {
  app.add_option("--command-info", command_info,
                 "the source's commands as `redis-cli --json COMMAND` prints them, so that its modules' "
                 "commands (JSON.SET, BF.ADD…) are understood and replicated");
  app.add_option("--reorder-window-ms", reorder_ms,
                 "how long a segment waits for the other direction's bytes its ACK covers, for a mirror "
                 "that delays one direction (then they are a gap); 0: never waits")
      ->check(FiniteRange(0.0, 1000.0));
  app.add_option("--rename-command", renames,
                 "OLD NEW: the source's redis.conf renames command OLD to NEW (\"\" disables it), so that "
                 "requests naming NEW are read as OLD and replicated under OLD's name; repeat it, in the "
                 "config's order");
  app.add_option("--redis-conf", redis_confs,
                 "the source's redis.conf: its rename-command lines, as --rename-command (other directives "
                 "are not read; give included files too)");
}

bool WireOptions::Apply(const char* tool, dataplane::FlowTableConfig* cfg) const {
  cfg->peer_hold_ns = static_cast<uint64_t>(reorder_ms * 1e6);
  if (!command_info.empty()) {
    auto load = resp::LoadCommandInfoFile(command_info);
    if (!load.ok()) {
      std::fprintf(stderr, "kvferryctl %s: --command-info %s\n", tool, load.status().message().c_str());
      return false;
    }
    std::fprintf(stderr, "kvferryctl %s: %zu commands learnt from %s (%zu already known)\n", tool,
                 load->added, command_info.c_str(), load->known);
  }
  // Renames after the module's commands, which they may rename.
  for (const std::string& conf : redis_confs) {
    auto load = resp::LoadRenamesFromRedisConf(conf);
    if (!load.ok()) {
      std::fprintf(stderr, "kvferryctl %s: --redis-conf %s\n", tool, load.status().message().c_str());
      return false;
    }
    std::fprintf(stderr, "kvferryctl %s: %zu rename-command line(s) read from %s%s\n", tool, load->renames,
                 conf.c_str(),
                 load->includes > 0 ? "; its include lines were not followed: give those files too" : "");
  }
  for (const auto& [old_name, new_name] : renames) {
    if (const Status s = resp::AddCommandRename(old_name, new_name); !s.ok()) {
      std::fprintf(stderr, "kvferryctl %s: --%s\n", tool, s.message().c_str());
      return false;
    }
  }
  return true;
}

void JudgeOptions::AddTo(CLI::App& app) {
  app.add_option(
         "--ambiguity-max-span-ms", max_span_ms,
         "records are held this long past the window for later writes of their keys; a write answered "
         "longer than this after its request is checked against the keys remembered (kept longer "
         "while such writes come), and flagged when they do not reach back that far")
      ->check(FiniteRange(0.001, 3'600'000.0));
  app.add_flag("--ambiguity-fields-commute", fields_commute,
               "do not order writes of different fields of one key (HSET k f v, ZADD k score m, SADD k m) "
               "against each other: far fewer read-backs of hot hashes and sorted sets, but wrong if the key "
               "expires between two of them; for keys without a TTL");
  app.add_option("--expiry-lag-ms", expiry_lag_ms,
                 "how far behind the source the replica may apply records: a PERSIST, or an expiry moved "
                 "later, of a key whose old expiry was due within this is read back (the replica may have "
                 "expired the key already); decode --rebase-time counts at least the time from the record "
                 "to now")
      ->check(CLI::Range(0, 86'400'000));
}

void JudgeOptions::Apply(resp::AmbiguityOptions* ambiguity, resp::ExpiryOptions* expiry) const {
  ambiguity->max_span_ns = static_cast<uint64_t>(max_span_ms * 1e6);
  ambiguity->fields_commute = fields_commute;
  expiry->lag_budget_ms = expiry_lag_ms;
  // (Callers set max_request_slack_ns first.)
  expiry->request_slack_ms = static_cast<int64_t>((ambiguity->max_request_slack_ns + 999'999) / 1'000'000);
}

}  // namespace kvf::ctl
