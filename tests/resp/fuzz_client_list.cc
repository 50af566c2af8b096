// Fuzz target for CLIENT LIST parsing (resp/client_list.h), whose text comes
// from the network (capture --resolve-db): any bytes give entries within the
// caps, each with a db in range, and never a crash.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "resp/client_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  kvf::resp::ClientListLimits limits;
  limits.max_entries = 64;
  limits.max_line_bytes = 512;
  const kvf::resp::ClientList list = kvf::resp::ParseClientList(text, limits);
  if (list.entries.size() > limits.max_entries) std::abort();
  // Every line is an entry or skipped: never more of both than lines.
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  if (list.entries.size() + list.skipped_lines > lines + 1) std::abort();
  return 0;
}
