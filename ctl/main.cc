// kvferryctl: the operator's tool. Dispatches to registered subcommands.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "core/heap.h"
#include "ctl/command.h"

namespace {

void PrintUsage() {
  std::printf("usage: kvferryctl <command> [options]\n\ncommands:\n");
  for (const auto& [name, info] : kvf::ctl::Commands()) {
    std::printf("  %-12s %s\n", name.c_str(), info.summary.c_str());
  }
  std::printf("\n`kvferryctl <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  kvf::KeepFreedHeapMemory();
  if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "-h") {
    PrintUsage();
    return argc < 2 ? 2 : 0;
  }
  auto& commands = kvf::ctl::Commands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "kvferryctl: unknown command '%s'\n", argv[1]);
    PrintUsage();
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvferryctl %s: %s\n", argv[1], e.what());
    return 1;
  }
}
