// Fuzz target for the redis.conf rename reader (resp/renames.h), which reads
// a file a user gives: any bytes are refused or applied, and every name the
// renames then change reads as a command the table knows or as none.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "resp/command_table.h"
#include "resp/renames.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvf::resp::ClearCommandRenames();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto load = kvf::resp::ApplyRedisConfRenames(text, "fuzz.conf");
  if (load.ok()) Check(load->renames <= size / 16 + 1);
  // Every word of the input, looked up as a request's command name.
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find_first_of(" \t\r\n\"'", at), text.size());
    const std::string_view word = text.substr(at, end - at);
    at = end + 1;
    const auto name = kvf::resp::SourceCommandName(word);
    if (!name) continue;
    const std::string_view argv[] = {*name};
    const bool gone = name->ends_with(" (renamed)");
    Check(gone == (kvf::resp::LookupCommand(argv) == nullptr));
  }
  return 0;
}
