// `kvferryctl version`: what this build is and which optional parts it has.
#include <cstdio>

#include "core/checksum.h"
#include "ctl/command.h"
#include "kvf_build_info.h"

namespace {

int RunVersion(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "kvferryctl version: takes no arguments (%s)\n", args[0].c_str());
    return 2;
  }
  std::printf("kvferry %s\n", KVF_VERSION);
  std::printf("crc32c: %s\n", kvf::Crc32cHardwareAvailable() ? "sse4.2" : "portable");
  std::printf("xdp backend: %s\n", KVF_HAVE_BPF ? "yes" : "no");
  std::printf("dpdk backend: %s\n", KVF_HAVE_DPDK ? "yes" : "no");
  return 0;
}

}  // namespace

KVF_CTL_COMMAND("version", "print the version and which capture backends are built", RunVersion);
