// Options `decode` and `capture` share on how a mirror is read: how long a
// segment waits for the other direction (a mirror that delays one), and the
// source's own command list (a module's commands).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/flow_table.h"
#include "resp/ambiguity.h"
#include "resp/expiry.h"

namespace kvf::ctl {

// CLI::Range for milliseconds given as a decimal: NaN and infinities, which
// Range lets through (a window of "nan" held every record to the end), are
// refused too.
CLI::Validator FiniteRange(double lo, double hi);

// A command's option errors as the tool's own usage errors: CLI11's message,
// and exit status 2 (CLI11's own codes run from 100 up); 0 for --help.
int UsageExit(CLI::App& app, const CLI::ParseError& e);

struct WireOptions {
  double reorder_ms = 2.0;
  std::string command_info;
  std::vector<std::pair<std::string, std::string>> renames;  // --rename-command OLD NEW
  std::vector<std::string> redis_confs;                      // their rename-command lines

  void AddTo(CLI::App& app);
  // Sets `cfg`'s hold, loads --command-info and the source's renames,
  // saying on stderr what it learnt. False (with the reason on stderr, prefixed by `tool`) on a bad file.
  bool Apply(const char* tool, dataplane::FlowTableConfig* cfg) const;
};

// Options `decode` and `capture` share on how records are judged: how long
// a write's span may be before the key table checks it, whether field
// writes commute, how far a replica may lag (--ambiguity-window-ms stays
// with each: their ranges differ).
struct JudgeOptions {
  double max_span_ms = 5.0;
  bool fields_commute = false;
  int64_t expiry_lag_ms = resp::ExpiryOptions{}.lag_budget_ms;

  void AddTo(CLI::App& app);
  // After ambiguity->max_request_slack_ns is set: the expiry keeper takes it too.
  void Apply(resp::AmbiguityOptions* ambiguity, resp::ExpiryOptions* expiry) const;
};

}  // namespace kvf::ctl
