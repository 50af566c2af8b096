// The kvferryctl subcommand registry. A subcommand is a function taking the
// arguments after its name and returning the process exit code; it registers
// itself at static-initialisation time with KVF_CTL_COMMAND.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kvf::ctl {

using CommandFn = std::function<int(const std::vector<std::string>& args)>;

struct CommandInfo {
  std::string summary;  // one line for `kvferryctl help`
  CommandFn run;
};

std::map<std::string, CommandInfo>& Commands();

struct CommandRegistration {
  CommandRegistration(const std::string& name, std::string summary, CommandFn fn) {
    Commands()[name] = CommandInfo{std::move(summary), std::move(fn)};
  }
};

}  // namespace kvf::ctl

#define KVF_CTL_CONCAT_(a, b) a##b
#define KVF_CTL_CONCAT(a, b) KVF_CTL_CONCAT_(a, b)
#define KVF_CTL_COMMAND(name, summary, fn) \
  static ::kvf::ctl::CommandRegistration KVF_CTL_CONCAT(kvf_ctl_reg_, __LINE__)(name, summary, fn)
