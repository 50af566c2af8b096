// The source server's `rename-command`s. A hardened redis.conf renames
// FLUSHALL, CONFIG or DEBUG (`rename-command FLUSHALL ADMIN_FLUSHALL_7f3a`) or
// disables them (`rename-command FLUSHALL ""`). Clients then send the new
// name, which the command table does not know, and the old name is unknown
// to the server. Taught the renames, a connection reads each request under
// the command's own name (the name a replica's table knows, upper case), so
// that a renamed FLUSHALL is replicated as a FLUSHALL, and an old name as a
// command no table has. Renames are set up before decoding starts; lookups
// must not run on other threads meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kvf::resp {

namespace detail {
extern bool g_have_renames;
extern uint64_t g_renames_generation;
}  // namespace detail

// Grows with every change of the renames: what was judged of a script body
// under the old ones (ScriptCallsMigrate's memo) is judged again.
inline uint64_t RenamesGeneration() {
  return detail::g_renames_generation;
}

// Whether any rename was set: one load per request when none was.
inline bool HaveCommandRenames() {
  return detail::g_have_renames;
}

// Applies one `rename-command old new` as redis-server applies its config
// lines, in order: `old` must name a command the server has at that point
// (not a subcommand), `new` ("" disables it) one it does not have.
Status AddCommandRename(std::string_view old_name, std::string_view new_name);

// Forgets every rename (tests, which share a process).
void ClearCommandRenames();

// The name to read a request's command under when the renames change it:
// the command's own name for a new name, or for an old name the server no
// longer knows a name that no command has ("FLUSHALL (renamed)"). nullopt:
// the name as sent. Views into storage that lives to the end of the process.
std::optional<std::string_view> SourceCommandName(std::string_view sent);

// `args` with its first element read as SourceCommandName says, copied into
// `scratch` when it changes; `args` itself otherwise.
std::span<const std::string_view> WithSourceCommandName(std::span<const std::string_view> args,
                                                        std::vector<std::string_view>* scratch);

// The name the source knows command `own` by (any case): its new name, lower
// case, when renamed; "" when disabled; `own` as given otherwise.
std::string ServerCommandName(std::string_view own);

// Every name the renames touch, lower case: the new names, and the old ones
// the source no longer knows. A script naming one runs differently on a
// replica without the renames (records carry the commands' own names).
const std::vector<std::string>& RenamedNames();

struct RenameLoad {
  size_t renames = 0;   // rename-command lines applied
  size_t includes = 0;  // include lines, not followed (their files must be given too)
};

// Caps on a configuration file read from disk.
inline constexpr size_t kMaxRedisConfBytes = 16u << 20;

// Applies the `rename-command` lines of a redis.conf, split into arguments as
// redis-server splits them (quotes, \xHH escapes). Other directives are left
// alone. An error names the file and line.
Result<RenameLoad> LoadRenamesFromRedisConf(const std::string& path);
// The same for a config's text; errors name `name` and the line.
Result<RenameLoad> ApplyRedisConfRenames(std::string_view text, const std::string& name);

}  // namespace kvf::resp
