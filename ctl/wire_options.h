// Options `decode` and `capture` share on how a mirror is read: how long a
// segment waits for the other direction (a mirror that delays one), and the
// source's own command list (a module's commands).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "dataplane/flow_table.h"

namespace kvf::ctl {

struct WireOptions {
  double reorder_ms = 2.0;
  std::string command_info;

  void AddTo(CLI::App& app);
  // Sets `cfg`'s hold and loads --command-info, saying on stderr what it
  // learnt. False (with the reason on stderr, prefixed by `tool`) on a bad file.
  bool Apply(const char* tool, dataplane::FlowTableConfig* cfg) const;
};

}  // namespace kvf::ctl
