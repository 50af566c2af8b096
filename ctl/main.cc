// kvferryctl: the operator's tool. Dispatches to registered subcommands.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/heap.h"
#include "ctl/command.h"

namespace {

void PrintUsage(std::FILE* out) {
  std::fprintf(out, "usage: kvferryctl <command> [options]\n\ncommands:\n");
  for (const auto& [name, info] : kvf::ctl::Commands()) {
    std::fprintf(out, "  %-12s %s\n", name.c_str(), info.summary.c_str());
  }
  std::fprintf(out, "\n`kvferryctl <command> --help` describes a command's options.\n");
}

// A mapped file that shrinks under its reader (a capture file truncated by
// another process: `tcpdump -W` reusing the oldest of a ring) raises SIGBUS
// at the next page: a clear error, not a crash without a word (a review).
void OnBusError(int) {
  static const char kMessage[] =
      "kvferryctl: a file being read shrank under it (SIGBUS: a capture file truncated, or rotated over, "
      "by another process?): stopped, the output is incomplete\n";
  (void)!write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  _exit(1);
}

}  // namespace

int main(int argc, char** argv) {
  kvf::KeepFreedHeapMemory();
  signal(SIGBUS, OnBusError);
  if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help" ||
      std::string(argv[1]) == "-h") {
    PrintUsage(argc < 2 ? stderr : stdout);
    if (argc >= 2 && (std::fflush(stdout) != 0 || std::ferror(stdout))) return 1;  // (--help >/dev/full)
    return argc < 2 ? 2 : 0;
  }
  auto& commands = kvf::ctl::Commands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "kvferryctl: unknown command '%s'\n", argv[1]);
    PrintUsage(stderr);
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  int rc = 1;
  try {
    rc = it->second.run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvferryctl %s: %s\n", argv[1], e.what());
  }
  // Output that never reached its file (a full disk, /dev/full, a closed
  // descriptor) is a failure, whatever the command made of its input: a
  // review's `decode --format resp > file` on a full disk kept a third of
  // the records and exited 0, ready to be piped into a replica.
  errno = 0;
  const bool flushed = std::fflush(stdout) == 0;
  if (!flushed || std::ferror(stdout)) {
    std::fprintf(stderr, "kvferryctl %s: writing the output failed%s%s: it is incomplete\n", argv[1],
                 flushed || errno == 0 ? "" : ": ", flushed || errno == 0 ? "" : std::strerror(errno));
    return rc != 0 ? rc : 1;
  }
  return rc;
}
