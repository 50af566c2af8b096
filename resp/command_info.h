// Commands a source server knows and the generated table does not (a
// module's, such as JSON.SET or BF.ADD, or a newer Redis's), learnt from its
// own `COMMAND` reply as `redis-cli --json COMMAND` prints it. Once
// registered, LookupCommand finds them like any other: a write becomes an
// ordered record whose written keys are read back (convert.cc's default).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "resp/command_table.h"

namespace kvf::resp {

// One command (or "parent|sub" subcommand) with the storage its spec points into.
struct OwnedCommandSpec {
  std::string name;  // lower case
  int arity = 0;
  uint32_t flags = 0;
  int first_key = 0, last_key = 0, key_step = 0;
  // keywords[i] is key_specs[i]'s begin keyword ("" for none); the spec's own
  // pointer is set when the command is registered (and its storage fixed).
  std::vector<KeySpec> key_specs;
  std::vector<std::string> keywords;
  std::vector<OwnedCommandSpec> subcommands;
};

// Caps on what one file may declare (it is read from disk).
inline constexpr size_t kMaxCommandInfoBytes = 16u << 20;
inline constexpr size_t kMaxInfoCommands = 8192;  // entries, subcommands included
inline constexpr size_t kMaxInfoKeySpecs = 32;    // per command

// Parses `redis-cli --json COMMAND` (or `COMMAND INFO name…`) output, RESP3
// (default) or RESP2 (-2) shaped. Unknown flag names are ignored (a newer
// server's); a malformed entry makes the whole text an error naming it.
Result<std::vector<OwnedCommandSpec>> ParseCommandInfoJson(std::string_view json);

struct CommandInfoLoad {
  size_t added = 0;  // commands and subcommands the table lacked, now known
  size_t known = 0;  // already in the generated table: left as generated
};

// Registers the commands (and subcommands) the table lacks. Lookups must
// not run on other threads meanwhile: call it before decoding starts.
CommandInfoLoad RegisterCommands(std::vector<OwnedCommandSpec> commands);

// Reads and registers a file of `redis-cli --json COMMAND` output.
Result<CommandInfoLoad> LoadCommandInfoFile(const std::string& path);

}  // namespace kvf::resp
