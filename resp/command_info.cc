// `redis-cli --json COMMAND` output to command specs (see command_info.h).
// Each entry is [name, arity, flags, first key, last key, step, ACL
// categories, tips, key specs, subcommands]; RESP3 prints key specs and their
// parts as objects, RESP2 (-2) as flat [field, value, …] arrays.
#include "resp/command_info.h"

#include <cctype>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>

namespace kvf::resp {

namespace {

using Json = nlohmann::json;

// A field of an object, or of a flat [field, value, …] array; null if absent.
const Json* Field(const Json& j, std::string_view name) {
  if (j.is_object()) {
    const auto it = j.find(std::string(name));
    return it == j.end() ? nullptr : &*it;
  }
  if (!j.is_array()) return nullptr;
  for (size_t i = 0; i + 1 < j.size(); i += 2) {
    if (j[i].is_string() && j[i].get_ref<const std::string&>() == name) return &j[i + 1];
  }
  return nullptr;
}

bool Int(const Json* j, int* out) {
  if (j == nullptr || !j->is_number_integer()) return false;
  const int64_t v = j->get<int64_t>();
  if (v < -(1 << 20) || v > (1 << 20)) return false;
  *out = static_cast<int>(v);
  return true;
}

using FlagNames = std::pair<std::string_view, uint32_t>;
constexpr FlagNames kCommandFlagNames[] = {
    {"write", kCmdWrite},
    {"readonly", kCmdReadonly},
    {"denyoom", kCmdDenyoom},
    {"admin", kCmdAdmin},
    {"pubsub", kCmdPubsub},
    {"noscript", kCmdNoscript},
    {"blocking", kCmdBlocking},
    {"loading", kCmdLoading},
    {"stale", kCmdStale},
    {"skip_monitor", kCmdSkipMonitor},
    {"skip_slowlog", kCmdSkipSlowlog},
    {"fast", kCmdFast},
    {"no_auth", kCmdNoAuth},
    {"may_replicate", kCmdMayReplicate},
    {"movablekeys", kCmdMovablekeys},
    {"no_multi", kCmdNoMulti},
    {"no_mandatory_keys", kCmdNoMandatoryKeys},
    {"allow_busy", kCmdAllowBusy},
};
constexpr FlagNames kKeyFlagNames[] = {
    {"RO", kKeyRo},
    {"RW", kKeyRw},
    {"OW", kKeyOw},
    {"RM", kKeyRm},
    {"access", kKeyAccess},
    {"update", kKeyUpdate},
    {"insert", kKeyInsert},
    {"delete", kKeyDelete},
    {"not_key", kKeyNotKey},
    {"incomplete", kKeyIncomplete},
    {"variable_flags", kKeyVariableFlags},
};

// Flags given as an array of names (RESP3 sets print as arrays too); names
// not in `names` (a newer server's) are ignored.
bool Flags(const Json* j, std::span<const FlagNames> names, uint32_t* out) {
  if (j == nullptr || !j->is_array()) return false;
  *out = 0;
  for (const Json& f : *j) {
    if (!f.is_string()) return false;
    for (const auto& [name, bit] : names) {
      if (name == f.get_ref<const std::string&>()) *out |= bit;
    }
  }
  return true;
}

// A key spec part ({type, spec}): its type, and its spec (null if absent).
bool TypeAndSpec(const Json& part, std::string_view* type, const Json** spec) {
  const Json* t = Field(part, "type");
  if (t == nullptr || !t->is_string()) return false;
  *type = t->get_ref<const std::string&>();
  *spec = Field(part, "spec");
  return true;
}

Status KeySpecOf(const Json& j, OwnedCommandSpec* cmd) {
  KeySpec ks{};
  std::string keyword;
  if (!Flags(Field(j, "flags"), kKeyFlagNames, &ks.flags)) return InvalidArgument("key spec without flags");
  const Json* begin = Field(j, "begin_search");
  const Json* find = Field(j, "find_keys");
  if (begin == nullptr || find == nullptr) return InvalidArgument("key spec without begin_search/find_keys");
  std::string_view bt, ft;
  const Json *bspec = nullptr, *fspec = nullptr;
  if (!TypeAndSpec(*begin, &bt, &bspec) || !TypeAndSpec(*find, &ft, &fspec)) {
    return InvalidArgument("begin_search or find_keys without a type");
  }
  ks.begin = KeyBegin::kUnknown;
  if (bt == "index") {
    if (bspec == nullptr || !Int(Field(*bspec, "index"), &ks.begin_arg) || ks.begin_arg < 0) {
      return InvalidArgument("bad index");
    }
    ks.begin = KeyBegin::kIndex;
  } else if (bt == "keyword") {
    const Json* kw = bspec == nullptr ? nullptr : Field(*bspec, "keyword");
    if (kw == nullptr || !kw->is_string() || kw->get_ref<const std::string&>().size() > 64 ||
        !Int(Field(*bspec, "startfrom"), &ks.begin_arg)) {
      return InvalidArgument("bad keyword search");
    }
    keyword = kw->get<std::string>();
    ks.begin = KeyBegin::kKeyword;
  }
  ks.find = KeyFind::kUnknown;
  if (ft == "range") {
    if (fspec == nullptr || !Int(Field(*fspec, "lastkey"), &ks.a) || !Int(Field(*fspec, "keystep"), &ks.b) ||
        !Int(Field(*fspec, "limit"), &ks.c) || ks.b < 0 || ks.c < 0) {
      return InvalidArgument("bad range");
    }
    ks.find = KeyFind::kRange;
  } else if (ft == "keynum") {
    if (fspec == nullptr || !Int(Field(*fspec, "keynumidx"), &ks.a) ||
        !Int(Field(*fspec, "firstkey"), &ks.b) || !Int(Field(*fspec, "keystep"), &ks.c) || ks.a < 0 ||
        ks.b < 0 || ks.c < 0) {
      return InvalidArgument("bad keynum");
    }
    ks.find = KeyFind::kKeynum;
  }
  if (ks.begin == KeyBegin::kUnknown) ks.find = KeyFind::kUnknown;
  cmd->key_specs.push_back(ks);
  cmd->keywords.push_back(std::move(keyword));
  return Status::Ok();
}

Status EntryOf(const Json& j, int depth, size_t* count, OwnedCommandSpec* cmd) {
  if (++*count > kMaxInfoCommands)
    return ResourceExhausted("more than " + std::to_string(kMaxInfoCommands) + " commands");
  if (!j.is_array() || j.size() < 6 || !j[0].is_string())
    return InvalidArgument("an entry is not [name, arity, …]");
  cmd->name = j[0].get<std::string>();
  const std::string where = "command '" + cmd->name.substr(0, 64) + "': ";
  if (cmd->name.empty() || cmd->name.size() > 64) return InvalidArgument(where + "bad name");
  for (char& c : cmd->name) {
    if (c <= ' ' || c > '~') return InvalidArgument(where + "bad name");
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!Int(&j[1], &cmd->arity) || cmd->arity == 0 || !Flags(&j[2], kCommandFlagNames, &cmd->flags) ||
      !Int(&j[3], &cmd->first_key) || !Int(&j[4], &cmd->last_key) || !Int(&j[5], &cmd->key_step)) {
    return InvalidArgument(where + "bad arity, flags or key positions");
  }
  if (j.size() > 8) {
    if (!j[8].is_array()) return InvalidArgument(where + "key specs are not a list");
    if (j[8].size() > kMaxInfoKeySpecs) return InvalidArgument(where + "too many key specs");
    for (const Json& ks : j[8]) {
      Status s = KeySpecOf(ks, cmd);
      if (!s.ok()) return InvalidArgument(where + s.message());
    }
  }
  if (j.size() > 9 && !j[9].is_null()) {
    if (!j[9].is_array()) return InvalidArgument(where + "subcommands are not a list");
    if (depth > 0 && !j[9].empty()) return InvalidArgument(where + "subcommands of a subcommand");
    for (const Json& sub : j[9]) {
      OwnedCommandSpec s;
      Status st = EntryOf(sub, depth + 1, count, &s);
      if (!st.ok()) return st;
      if (s.name.rfind(cmd->name + "|", 0) != 0)
        return InvalidArgument(where + "subcommand '" + s.name + "'");
      cmd->subcommands.push_back(std::move(s));
    }
  }
  return Status::Ok();
}

// Registered specs and their storage, to the end of the process.
struct Registered {
  OwnedCommandSpec owned;
  CommandSpec spec;
};
std::deque<Registered>& Storage() {
  static std::deque<Registered> storage;
  return storage;
}

void Register(OwnedCommandSpec cmd, CommandInfoLoad* load) {
  std::vector<OwnedCommandSpec> subs = std::move(cmd.subcommands);
  cmd.subcommands.clear();
  if (LookupCommandName(cmd.name) != nullptr && TableIndex(LookupCommandName(cmd.name)) < kCommandTableSize) {
    ++load->known;
  } else {
    Registered& r = Storage().emplace_back();  // never moves again
    r.owned = std::move(cmd);
    r.owned.keywords.resize(r.owned.key_specs.size());  // (as parsed: one each)
    for (size_t k = 0; k < r.owned.key_specs.size(); ++k) {
      KeySpec& ks = r.owned.key_specs[k];
      ks.keyword = ks.begin == KeyBegin::kKeyword ? r.owned.keywords[k].c_str() : nullptr;
    }
    r.spec = CommandSpec{r.owned.name.c_str(),     r.owned.arity,           r.owned.flags,
                         r.owned.first_key,        r.owned.last_key,        r.owned.key_step,
                         r.owned.key_specs.data(), r.owned.key_specs.size()};
    if (RegisterExtraSpec(&r.spec)) ++load->added;
  }
  for (OwnedCommandSpec& s : subs) Register(std::move(s), load);
}

}  // namespace

Result<std::vector<OwnedCommandSpec>> ParseCommandInfoJson(std::string_view text) {
  if (text.size() > kMaxCommandInfoBytes) return ResourceExhausted("command info larger than 16 MiB");
  const Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("not JSON (expected `redis-cli --json COMMAND` output)");
  if (!j.is_array())
    return InvalidArgument("not a list of commands (expected `redis-cli --json COMMAND` output)");
  std::vector<OwnedCommandSpec> out;
  size_t count = 0;
  for (const Json& e : j) {
    if (e.is_null()) continue;  // COMMAND INFO of a name the server does not know
    OwnedCommandSpec cmd;
    KVF_RETURN_IF_ERROR(EntryOf(e, 0, &count, &cmd));
    out.push_back(std::move(cmd));
  }
  return out;
}

CommandInfoLoad RegisterCommands(std::vector<OwnedCommandSpec> commands) {
  CommandInfoLoad load;
  for (OwnedCommandSpec& c : commands) Register(std::move(c), &load);
  return load;
}

Result<CommandInfoLoad> LoadCommandInfoFile(const std::string& path) {
  auto text = ReadFileUpTo(path, kMaxCommandInfoBytes);
  if (!text.ok()) return text.status();
  auto parsed = ParseCommandInfoJson(*text);
  if (!parsed.ok()) return Status(parsed.status().code(), path + ": " + parsed.status().message());
  return RegisterCommands(std::move(*parsed));
}

}  // namespace kvf::resp
