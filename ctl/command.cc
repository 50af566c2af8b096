// Storage for the subcommand registry.
#include "ctl/command.h"

namespace kvf::ctl {

std::map<std::string, CommandInfo>& Commands() {
  static std::map<std::string, CommandInfo> commands;
  return commands;
}

}  // namespace kvf::ctl
