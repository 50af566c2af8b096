// Fuzz target for the command-info loader (resp/command_info.h), which reads
// a file a user gives (`redis-cli --json COMMAND` output): any bytes are
// refused or parsed within the caps, and every parsed spec is one that key
// extraction can evaluate over any argv without reading out of bounds.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "resp/command_info.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void Exercise(kvf::resp::OwnedCommandSpec& c, std::span<const std::string_view> argv, int depth) {
  Check(!c.name.empty() && c.name.size() <= 64 && c.key_specs.size() <= kvf::resp::kMaxInfoKeySpecs);
  Check(c.keywords.size() == c.key_specs.size());
  for (char ch : c.name) Check(ch > ' ' && ch <= '~' && !(ch >= 'A' && ch <= 'Z'));
  for (size_t k = 0; k < c.key_specs.size(); ++k) {
    c.key_specs[k].keyword = c.keywords[k].c_str();
  }
  const kvf::resp::CommandSpec spec{c.name.c_str(),     c.arity,           c.flags,
                                    c.first_key,        c.last_key,        c.key_step,
                                    c.key_specs.data(), c.key_specs.size()};
  std::vector<kvf::resp::KeyRef> keys;
  kvf::resp::FindKeys(spec, argv, &keys);
  for (const kvf::resp::KeyRef& k : keys) Check(k.arg < argv.size());
  Check(depth == 0 || c.subcommands.empty());
  for (auto& sub : c.subcommands) Exercise(sub, argv, depth + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = kvf::resp::ParseCommandInfoJson(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  static const std::vector<std::string_view> argvs[] = {
      {"cmd"},
      {"cmd", "k1", "2", "k2", "k3", "STREAMS", "s1", "s2", "0", "0"},
      {"cmd", "3", "a", "b", "c", "STORE", "dst", "INTO", "x"},
  };
  for (auto& c : *parsed) {
    for (const auto& argv : argvs) Exercise(c, argv, 0);
  }
  return 0;
}
