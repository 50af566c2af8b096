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

// Help of the options on how records are judged that decode and capture
// share.
inline constexpr const char* kMaxSpanHelp =
    "records are held this long past the window for later writes of their keys; a write answered longer "
    "than this after its request is checked against the keys remembered (kept longer while such writes "
    "come), and flagged when they do not reach back that far";
inline constexpr const char* kFieldsCommuteHelp =
    "do not order writes of different fields of one key (HSET k f v, ZADD k score m, SADD k m) against "
    "each other: far fewer read-backs of hot hashes and sorted sets, but wrong if the key expires between "
    "two of them; for keys without a TTL";
inline constexpr const char* kExpiryLagHelp =
    "how far behind the source the replica may apply records: a PERSIST, or an expiry moved later, of a "
    "key whose old expiry was due within this is read back (the replica may have expired the key already)";

}  // namespace kvf::ctl
