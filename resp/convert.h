// Turns one acknowledged Redis write (request argv + the server's reply) into
// change records, idempotent where the reply carries the result (DESIGN.md
// decision 2). The per-command rules are listed in docs/resp.md.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "resp/command_table.h"
#include "resp/parser.h"
#include "resp/sink.h"

namespace kvf::resp {

struct ConvertContext {
  uint16_t db = 0;
  uint64_t capture_ns = 0;  // of the reply
  uint64_t request_ns =
      0;  // of the request (0: not known; RecordView::kUnansweredRequest); the write ran in between
  uint16_t flags = 0;  // RecordFlags every record gets (kInTransaction, kAfterGap, …)
  uint64_t connection_id = 0;
  // A library was held back (it calls MIGRATE, or came serialised by
  // FUNCTION RESTORE): FCALLs, which may run it, are read back, not shipped.
  bool functions_held_back = false;
  // An FCALL: what its function's library names of FLUSHDB, FLUSHALL,
  // SWAPDB, SELECT (RecordView::fcall_db_names).
  uint8_t fcall_db_names = 0;
};

enum class ConvertOutcome : uint8_t {
  kRecorded,  // zero or more records emitted; the reply fits the command
  kNoEffect,  // the reply says nothing changed (SETNX 0, EXPIRE 0, nil pop, …)
  kBadShape,  // the reply does not fit the command: pairing is suspect;
              // read-back records were emitted for the written keys instead
};

// `reply` is the reply subtree (root first) and is not an error. `spec` is
// the command's spec (a write, a script call, or PFCOUNT).
ConvertOutcome ConvertWrite(const CommandSpec& spec, std::span<const std::string_view> argv,
                            std::span<const Node> reply, const ConvertContext& ctx, RecordSink* sink);

// For a write whose reply is unknown (lost in a gap, CLIENT REPLY OFF, out of
// sync): one kReadback record per written key; a keyless write becomes a
// kDatabase record. Returns the number of records emitted.
// The written keys of `argv`, a write's request cut short by lost bytes,
// that lie in what came (no arity check; a key-less write reads back
// nothing and is never shipped): read-back records. Returns their count.
size_t ReadbackKeysOfCut(const CommandSpec& spec, std::span<const std::string_view> argv,
                         const ConvertContext& ctx, RecordSink* sink);
size_t ReadbackWrite(const CommandSpec& spec, std::span<const std::string_view> argv,
                     const ConvertContext& ctx, RecordSink* sink);

// True for commands that may write although COMMAND INFO has no write flag
// (EVAL, EVALSHA, FCALL).
bool IsScriptCall(const CommandSpec& spec);

// A db index as commands name it (SELECT, SWAPDB, MOVE, COPY … DB): decimal
// digits only, at most 65535.
bool ParseDb(std::string_view s, uint16_t* out);

// Whether `r` is of a key. An empty `key` stands both for none (a script
// that declares no keys, a database-wide write) and for the empty key "",
// which Redis allows: the command tells them apart (a review: edits of ""
// from before the capture went unflagged). Cheap unless `key` is empty.
bool RecordHasKey(const RecordView& r);
// A command whose reply the converter reads as a write's: flagged write, a
// script call, or PFCOUNT (which may update its HyperLogLog's cache).
bool ConvertsAsWrite(const CommandSpec& spec);
// A script body or function library that names MIGRATE, or may call it
// without naming it (a command name that is not a plain string literal,
// `redis` used other than as `redis.field`, the globals or a compiler
// reached): never shipped (a password may be in it or in its arguments;
// replayed, it would act on a third server); its keys are read back instead.
// So is one naming a command the source renamed (renames.h), by either
// name: a replica, without the renames, would run it otherwise.
bool ScriptCallsMigrate(std::string_view code);
// A small id for each command that may produce records (ConvertsAsWrite;
// DEBUG POPULATE; REPLICAOF and SLAVEOF, whose failover read-backs decode
// adds), carried by its records (RecordView::source) so that
// decode can count flagged records per captured command; 0 for any other
// (and past 255 commands, which no Redis has). Thread-safe.
namespace detail {
extern const uint8_t* const g_source_ids;  // by kCommandTable index
uint8_t SourceIdOfOther(const CommandSpec& spec);
}  // namespace detail
inline uint8_t SourceIdOf(const CommandSpec& spec) {
  // Once per write converted: a table's spec is looked up inline (addresses
  // compared as integers, as TableIndex does).
  const uintptr_t at = reinterpret_cast<uintptr_t>(&spec) - reinterpret_cast<uintptr_t>(kCommandTable);
  if (at < kCommandTableSize * sizeof(CommandSpec)) [[likely]]
    return detail::g_source_ids[at / sizeof(CommandSpec)];
  return detail::SourceIdOfOther(spec);
}
// The command an id stands for; nullptr for 0 or an id not given out.
const CommandSpec* SourceSpec(uint8_t id);
// FCALL (a write: FCALL_RO is not one).
bool IsFcall(const CommandSpec& spec);
// FUNCTION LOAD or FUNCTION RESTORE: a library arrives.
bool IsLibraryLoad(std::span<const std::string_view> argv);
// The names a library's code registers with literal names, read as Lua
// tokens (comments and strings are not code): `register_function('f', …)`,
// `register_function[[f]]`, and the table forms `register_function{…,
// function_name = 'f', …}` and `({…})`. A name given through a variable is
// not found: `complete`, if given, says whether every registration was
// named by a literal (false too for code that does not lex).
std::vector<std::string> RegisteredFunctionNames(std::string_view library, bool* complete = nullptr);
// An EVAL (an EVALSHA made EVAL) or FUNCTION LOAD whose code may call
// MIGRATE (ScriptCallsMigrate), or a FUNCTION RESTORE (its code cannot be read).
bool CallsMigrate(std::span<const std::string_view> argv);
// FLUSHDB, FLUSHALL, SWAPDB: the writes a kDatabase record orders against
// every key of the dbs they touch.
bool IsDatabaseWide(const CommandSpec& spec);
// EVAL_RO, EVALSHA_RO, FCALL_RO: read-only script calls (their errors are
// any text the script returned).
bool IsReadOnlyScriptCall(const CommandSpec& spec);

// True when a write answered with `error` may still have changed its keys,
// which are then read back: a script is not rolled back (unless NOSCRIPT
// says it never ran), and a MIGRATE of several keys deletes those the
// target took before one failed (Redis 7.0 migrateCommand).
bool MayHaveWrittenDespite(const CommandSpec& spec, std::string_view error);

}  // namespace kvf::resp
