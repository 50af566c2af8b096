#include "ctl/wire_options.h"

#include <cstdio>

#include "resp/command_info.h"

namespace kvf::ctl {

void WireOptions::AddTo(CLI::App& app) {
  app.add_option("--command-info", command_info,
                 "the source's commands as `redis-cli --json COMMAND` prints them, so that its modules' "
                 "commands (JSON.SET, BF.ADD…) are understood and replicated");
  app.add_option("--reorder-window-ms", reorder_ms,
                 "how long a segment waits for the other direction's bytes its ACK covers, for a mirror "
                 "that delays one direction (then they are a gap); 0: never waits")
      ->check(CLI::Range(0.0, 1000.0));
}

bool WireOptions::Apply(const char* tool, dataplane::FlowTableConfig* cfg) const {
  cfg->peer_hold_ns = static_cast<uint64_t>(reorder_ms * 1e6);
  if (command_info.empty()) return true;
  auto load = resp::LoadCommandInfoFile(command_info);
  if (!load.ok()) {
    std::fprintf(stderr, "kvferryctl %s: --command-info %s\n", tool, load.status().message().c_str());
    return false;
  }
  std::fprintf(stderr, "kvferryctl %s: %zu commands learnt from %s (%zu already known)\n", tool, load->added,
               command_info.c_str(), load->known);
  return true;
}

}  // namespace kvf::ctl
