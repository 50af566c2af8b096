// The Redis 7 command table: arity, flags and key specs of every command and
// subcommand, generated from a real server (resp/command_table_gen.cc, made by
// resp/tools/gen_command_table.py), plus lookup and key extraction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvf::resp {

// Command flags, as COMMAND INFO names them.
enum CommandFlag : uint32_t {
  kCmdWrite = 1u << 0,
  kCmdReadonly = 1u << 1,
  kCmdDenyoom = 1u << 2,
  kCmdAdmin = 1u << 3,
  kCmdPubsub = 1u << 4,
  kCmdNoscript = 1u << 5,
  kCmdBlocking = 1u << 6,
  kCmdLoading = 1u << 7,
  kCmdStale = 1u << 8,
  kCmdSkipMonitor = 1u << 9,
  kCmdSkipSlowlog = 1u << 10,
  kCmdFast = 1u << 11,
  kCmdNoAuth = 1u << 12,
  kCmdMayReplicate = 1u << 13,
  kCmdMovablekeys = 1u << 14,
  kCmdNoMulti = 1u << 15,
  kCmdNoMandatoryKeys = 1u << 16,
  kCmdAllowBusy = 1u << 17,
};

// Key-spec flags (how a command uses the keys a spec finds).
enum KeySpecFlag : uint32_t {
  kKeyRo = 1u << 0,
  kKeyRw = 1u << 1,
  kKeyOw = 1u << 2,
  kKeyRm = 1u << 3,
  kKeyAccess = 1u << 4,
  kKeyUpdate = 1u << 5,
  kKeyInsert = 1u << 6,
  kKeyDelete = 1u << 7,
  kKeyNotKey = 1u << 8,
  kKeyIncomplete = 1u << 9,
  kKeyVariableFlags = 1u << 10,
};

enum class KeyBegin : uint8_t { kUnknown, kIndex, kKeyword };
enum class KeyFind : uint8_t { kUnknown, kRange, kKeynum };

// One Redis 7 key spec. begin: kIndex -> keys start at argv[begin_arg];
// kKeyword -> search `keyword` from argv[begin_arg] (negative: from the end,
// backwards). find: kRange -> (a = lastkey, b = keystep, c = limit);
// kKeynum -> (a = keynumidx, b = firstkey, c = keystep), relative to begin.
struct KeySpec {
  uint32_t flags;
  KeyBegin begin;
  int begin_arg;
  const char* keyword;
  KeyFind find;
  int a, b, c;

  bool Writes() const { return (flags & kKeyRo) == 0 && (flags & kKeyNotKey) == 0; }
};

struct CommandSpec {
  const char* name;  // lower case; subcommands as "parent|sub"
  int arity;         // Redis convention: negative = at least -arity
  uint32_t flags;    // CommandFlag bits
  int first_key, last_key, key_step;
  const KeySpec* specs;
  size_t num_specs;

  bool Has(CommandFlag f) const { return (flags & f) != 0; }
};

extern const CommandSpec kCommandTable[];
extern const size_t kCommandTableSize;
extern const char kCommandTableRedisVersion[];

// Index of `spec` in kCommandTable, or kCommandTableSize for a spec from
// elsewhere (RegisterExtraSpec, tests).
size_t TableIndex(const CommandSpec* spec);

// Adds a spec the generated table lacks (a module's command, learnt by
// resp/command_info.h, which owns it: it must live to the end of the
// process). A name the table has is left alone: returns false. Lookups must
// not run on other threads meanwhile.
bool RegisterExtraSpec(const CommandSpec* spec);

// Finds the spec for argv (case-insensitive). For container commands
// (CLIENT, CONFIG, XGROUP, …) returns the subcommand's spec when argv[1]
// names one. nullptr for unknown commands or an empty argv.
const CommandSpec* LookupCommand(std::span<const std::string_view> argv);
// The spec's name as a view, without a strlen per call (pointer into the
// static table).
std::string_view CommandName(const CommandSpec& spec);
// Plain lookup by (case-insensitive) name, e.g. "set" or "client|setname".
const CommandSpec* LookupCommandName(std::string_view name);

struct KeyRef {
  uint32_t arg;    // index into argv
  uint32_t flags;  // KeySpecFlag bits of the spec that found it
};

// Appends to `out` every key position of argv according to the spec's key
// specs (clamped to argv; malformed numkeys finds nothing). Returns false if a
// spec could not be evaluated (unknown begin/find type or bad numkeys).
bool FindKeys(const CommandSpec& spec, std::span<const std::string_view> argv, std::vector<KeyRef>* out);
// `head` is the start of a longer command (Parser::tail_elided): may a key it
// writes lie past it? True where a written key's position depends on what is
// missing (a range to the end, a keyword not yet seen, a count past it).
bool KeysMayLieBeyond(const CommandSpec& spec, std::span<const std::string_view> head);

// Case-insensitive ASCII comparison for command names and options.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// Whether `text` contains `word` (letters only), ignoring ASCII case: a
// command named in a script body.
bool ContainsIgnoreCase(std::string_view text, std::string_view word);

}  // namespace kvf::resp
