// Runs a shell command for a test and hands back its exit status and
// standard output (stderr goes where the command line sends it).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace kvf::testing {

struct ShellResult {
  int code = -1;  // exit status; -1 when it could not run or was killed
  std::string out;
};

inline ShellResult RunShell(const std::string& cmd) {
  ShellResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace kvf::testing
