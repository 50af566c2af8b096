#include "resp/renames.h"

#include <algorithm>
#include <unordered_map>

#include "resp/command_table.h"
#include "resp/parser.h"

namespace kvf::resp {

namespace detail {
bool g_have_renames = false;
uint64_t g_renames_generation = 0;
}  // namespace detail

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  return out;
}

// The source's command names where they differ from the table's, keyed by
// the lower-case name. Node-based maps: views of their values stay valid.
struct Renames {
  // A new name -> the command's own name, upper case.
  std::unordered_map<std::string, std::string> added;
  // A table name the server no longer has -> the name no command has.
  std::unordered_map<std::string, std::string> gone;
  size_t longest = 0;
  std::vector<std::string> names;  // the keys of both, for RenamedNames
};

Renames& TheRenames() {
  static Renames renames;
  return renames;
}

// The command `lower` names on the source now, upper case; "" for none.
std::string CurrentCommand(const Renames& r, const std::string& lower) {
  if (const auto it = r.added.find(lower); it != r.added.end()) return it->second;
  if (r.gone.count(lower) != 0 || LookupCommandName(lower) == nullptr) return "";
  return Upper(lower);
}

}  // namespace

std::string ServerCommandName(std::string_view own) {
  const Renames& r = TheRenames();
  const std::string upper = Upper(own);
  for (const auto& [name, command] : r.added) {
    if (command == upper) return name;
  }
  if (r.gone.count(Lower(own)) != 0) return "";
  return std::string(own);
}

Status AddCommandRename(std::string_view old_name, std::string_view new_name) {
  Renames& r = TheRenames();
  const std::string old_lower = Lower(old_name);
  if (old_lower.find('|') != std::string::npos || new_name.find('|') != std::string_view::npos)
    return InvalidArgument("rename-command renames commands, not subcommands: '" + std::string(old_name) +
                           "'");
  const std::string command = CurrentCommand(r, old_lower);
  if (command.empty())
    return InvalidArgument("rename-command: no such command '" + std::string(old_name) +
                           "' (already renamed, or unknown to the Redis " + kCommandTableRedisVersion +
                           " table; a module's needs --command-info first)");
  const std::string new_lower = Lower(new_name);
  // (The old name is removed first, as redis-server does: a command may be
  // renamed to the name it has.)
  if (!new_name.empty() && new_lower != old_lower && !CurrentCommand(r, new_lower).empty())
    return InvalidArgument("rename-command: the new name '" + std::string(new_name) + "' of '" +
                           std::string(old_name) + "' names another command already");
  if (const auto it = r.added.find(old_lower); it != r.added.end()) {
    r.added.erase(it);
  } else {
    r.gone.emplace(old_lower, command + " (renamed)");
  }
  if (!new_name.empty()) {
    r.gone.erase(new_lower);
    if (new_lower != Lower(command)) r.added.emplace(new_lower, command);  // (else the table's again)
    r.longest = std::max(r.longest, new_lower.size());
  }
  r.longest = std::max(r.longest, old_lower.size());
  r.names.clear();
  for (const auto& [name, command] : r.added) r.names.push_back(name);
  for (const auto& [name, unknown] : r.gone) r.names.push_back(name);
  detail::g_have_renames = true;
  ++detail::g_renames_generation;
  return Status::Ok();
}

void ClearCommandRenames() {
  TheRenames() = Renames{};
  detail::g_have_renames = false;
  ++detail::g_renames_generation;
}

std::optional<std::string_view> SourceCommandName(std::string_view sent) {
  const Renames& r = TheRenames();
  if (sent.size() > r.longest) return std::nullopt;
  thread_local std::string lower;
  lower.assign(sent);
  for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  if (const auto it = r.added.find(lower); it != r.added.end()) return std::string_view(it->second);
  if (const auto it = r.gone.find(lower); it != r.gone.end()) return std::string_view(it->second);
  return std::nullopt;
}

std::span<const std::string_view> WithSourceCommandName(std::span<const std::string_view> args,
                                                        std::vector<std::string_view>* scratch) {
  if (args.empty()) return args;
  const std::optional<std::string_view> name = SourceCommandName(args[0]);
  if (!name) return args;
  scratch->assign(args.begin(), args.end());
  (*scratch)[0] = *name;
  return *scratch;
}

const std::vector<std::string>& RenamedNames() {
  return TheRenames().names;
}

Result<RenameLoad> LoadRenamesFromRedisConf(const std::string& path) {
  auto text = ReadFileUpTo(path, kMaxRedisConfBytes);
  if (!text.ok()) return text.status();
  return ApplyRedisConfRenames(*text, path);
}

Result<RenameLoad> ApplyRedisConfRenames(std::string_view text, const std::string& name) {
  RenameLoad load;
  size_t line_no = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    ++line_no;
    // As redis-server reads its config: blanks and CR trimmed at both ends,
    // '#' lines skipped, the rest split like an inline command.
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t' || line.front() == '\r'))
      line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    const std::string_view directive = line.substr(0, line.find_first_of(" \t"));
    const bool rename = EqualsIgnoreCase(directive, "rename-command");
    if (EqualsIgnoreCase(directive, "include")) ++load.includes;
    if (!rename) continue;
    Parser split(Parser::Mode::kRequest);
    const std::string request = std::string(line) + "\r\n";
    split.Feed(std::string_view(request));
    const auto where = [&] { return name + ":" + std::to_string(line_no) + ": "; };
    if (split.Next() != ParseStatus::kMessage)
      return InvalidArgument(where() + "cannot split the line (unbalanced quotes?)");
    const std::span<const std::string_view> args = split.args();
    if (args.size() != 3) return InvalidArgument(where() + "rename-command takes two names");
    if (Status s = AddCommandRename(args[1], args[2]); !s.ok())
      return Status(s.code(), where() + s.message());
    ++load.renames;
  }
  return load;
}

}  // namespace kvf::resp
