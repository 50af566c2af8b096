// Lookup and key extraction over the generated command table.
#include "resp/command_table.h"

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace kvf::resp {

namespace {

inline char Lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// Open-addressing hash table over the generated table: FNV-1a of the
// lower-cased name, linear probing, at most half full. Built once.
class Index {
 public:
  struct Entry {
    const CommandSpec* spec;
    bool has_subcommands;
  };

  Index() {
    size_t cap = 16;
    while (cap < kCommandTableSize * 4) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    entries_.resize(kCommandTableSize);
    for (size_t i = 0; i < kCommandTableSize; ++i) {
      entries_[i] = Entry{&kCommandTable[i], false};
      const std::string_view name = kCommandTable[i].name;
      const uint32_t h = Hash(name);
      size_t at = h & mask_;
      while (slots_[at].index != 0) at = (at + 1) & mask_;
      slots_[at] = Slot{h, static_cast<uint32_t>(i + 1), static_cast<uint32_t>(name.size())};
    }
    for (size_t i = 0; i < kCommandTableSize; ++i) {
      const std::string_view name = kCommandTable[i].name;
      const size_t bar = name.find('|');
      if (bar == std::string_view::npos) continue;
      if (const Entry* parent = Find(name.substr(0, bar), Hash(name.substr(0, bar)))) {
        entries_[static_cast<size_t>(parent->spec - kCommandTable)].has_subcommands = true;
      }
    }
  }
  static uint32_t Hash(std::string_view lower) {
    uint32_t h = 2166136261u;
    for (char c : lower) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    return h;
  }
  const Entry* Find(std::string_view lower, uint32_t h) const {
    for (size_t at = h & mask_;; at = (at + 1) & mask_) {
      const Slot& s = slots_[at];
      if (s.index == 0) return nullptr;
      if (s.hash == h && s.len == lower.size() &&
          std::memcmp(kCommandTable[s.index - 1].name, lower.data(), lower.size()) == 0) {
        return &entries_[s.index - 1];
      }
    }
  }
  const Entry* Find(std::string_view lower) const { return Find(lower, Hash(lower)); }

 private:
  struct Slot {
    uint32_t hash = 0;
    uint32_t index = 0;  // table index + 1; 0 = empty
    uint32_t len = 0;    // name length (no strlen on lookups)
  };
  std::vector<Slot> slots_;
  std::vector<Entry> entries_;
  size_t mask_ = 0;
};

const Index& TheIndex() {
  static const Index index;
  return index;
}

// Specs registered at run time (RegisterExtraSpec): looked up only for
// names the generated table lacks, so a table without extras costs nothing.
// Node-based: an entry's address survives later inserts (LastHit keeps it).
std::unordered_map<std::string, Index::Entry>& Extras() {
  static std::unordered_map<std::string, Index::Entry> extras;
  return extras;
}
bool g_have_extras = false;
// Names with learnt subcommands (for a learnt parent registered after
// them); a learnt parent's entry then says so itself, and a generated
// command (its index entry is fixed) that gained one is in the second set,
// which lookups read without building a string.
std::unordered_set<std::string>& NamesWithLearntSubcommands() {
  static std::unordered_set<std::string> names;
  return names;
}
std::unordered_set<const CommandSpec*>& GeneratedWithLearntSubcommands() {
  static std::unordered_set<const CommandSpec*> specs;
  return specs;
}

const Index::Entry* FindAny(std::string_view lower) {
  if (const Index::Entry* e = TheIndex().Find(lower)) return e;
  if (!g_have_extras) return nullptr;
  const auto it = Extras().find(std::string(lower));
  return it == Extras().end() ? nullptr : &it->second;
}

// Longest command name is well below this; longer names are unknown.
constexpr size_t kMaxNameLen = 64;

bool ParseInt(std::string_view s, long long* out) {
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, *out);
  return r.ec == std::errc() && r.ptr == end;
}

}  // namespace

size_t TableIndex(const CommandSpec* spec) {
  // Addresses compared as integers: a spec from elsewhere is not an element
  // of the table, and pointer arithmetic across arrays is undefined.
  const auto at = reinterpret_cast<uintptr_t>(spec);
  const auto begin = reinterpret_cast<uintptr_t>(kCommandTable);
  if (at < begin || at >= begin + kCommandTableSize * sizeof(CommandSpec)) return kCommandTableSize;
  return (at - begin) / sizeof(CommandSpec);
}

bool RegisterExtraSpec(const CommandSpec* spec) {
  const std::string name = spec->name;
  if (name.empty() || name.size() > kMaxNameLen || TheIndex().Find(name) != nullptr) return false;
  auto [it, added] = Extras().emplace(name, Index::Entry{spec, false});
  if (!added) it->second.spec = spec;  // the later definition wins
  g_have_extras = true;
  if (NamesWithLearntSubcommands().count(name) != 0) it->second.has_subcommands = true;
  const size_t bar = name.find('|');
  if (bar != std::string::npos) {
    const std::string parent = name.substr(0, bar);
    NamesWithLearntSubcommands().insert(parent);
    if (const Index::Entry* generated = TheIndex().Find(parent)) {
      GeneratedWithLearntSubcommands().insert(generated->spec);
    } else if (const auto learnt = Extras().find(parent); learnt != Extras().end()) {
      learnt->second.has_subcommands = true;
    }
  }
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool ContainsIgnoreCase(std::string_view text, std::string_view word) {
  if (word.empty() || word.size() > text.size()) return false;
  const char first = Lower(word[0]);
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    if (Lower(text[i]) != first) continue;  // most bytes of a script body
    if (EqualsIgnoreCase(text.substr(i, word.size()), word)) return true;
  }
  return false;
}

const CommandSpec* LookupCommandName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLen) return nullptr;
  char buf[kMaxNameLen];
  for (size_t i = 0; i < name.size(); ++i) buf[i] = Lower(name[i]);
  const auto* e = FindAny(std::string_view(buf, name.size()));
  return e == nullptr ? nullptr : e->spec;
}

std::string_view CommandName(const CommandSpec& spec) {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v(kCommandTableSize);
    for (size_t i = 0; i < kCommandTableSize; ++i) v[i] = kCommandTable[i].name;
    return v;
  }();
  const size_t i = TableIndex(&spec);
  return i < names.size() ? names[i] : std::string_view(spec.name);  // a spec from outside the table
}

const CommandSpec* LookupCommand(std::span<const std::string_view> argv) {
  if (argv.empty() || argv[0].empty() || argv[0].size() > kMaxNameLen) return nullptr;
  // Pipelines repeat one command: remember the last name as sent (any case)
  // and its entry, per thread.
  struct LastHit {
    size_t len = 0;
    char raw[kMaxNameLen];
    const Index::Entry* top = nullptr;
  };
  thread_local LastHit hit;
  char buf[kMaxNameLen];
  size_t n = argv[0].size();
  const Index::Entry* top;
  // Names are a few bytes: an inline loop beats a memcmp call.
  bool same = n == hit.len;
  for (size_t i = 0; same && i < n; ++i) same = argv[0][i] == hit.raw[i];
  if (same) {
    top = hit.top;
  } else {
    for (size_t i = 0; i < n; ++i) buf[i] = Lower(argv[0][i]);
    top = FindAny(std::string_view(buf, n));
    if (top == nullptr) return nullptr;
    hit.len = n;
    std::memcpy(hit.raw, argv[0].data(), n);
    hit.top = top;
  }
  const bool has_subcommands =
      top->has_subcommands || (g_have_extras && GeneratedWithLearntSubcommands().count(top->spec) != 0);
  if (!has_subcommands || argv.size() < 2 || n + argv[1].size() + 1 > kMaxNameLen) return top->spec;
  for (size_t i = 0; i < n; ++i) buf[i] = Lower(argv[0][i]);
  buf[n++] = '|';
  for (char c : argv[1]) buf[n++] = Lower(c);
  const auto* sub = FindAny(std::string_view(buf, n));
  return sub != nullptr ? sub->spec : top->spec;
}

namespace {

// The key SORT … STORE dst writes, read as redis 7.0 reads the options
// (sortCommandGeneric): left to right, LIMIT taking two arguments and BY,
// GET and STORE one each, the last STORE winning. -1: none. A backward
// search for "store" took a key or pattern named "store" for the keyword.
int SortStoreKey(std::span<const std::string_view> argv) {
  int key = -1;
  const int argc = static_cast<int>(argv.size());
  for (int i = 2; i < argc; ++i) {
    const int left = argc - i - 1;
    if (EqualsIgnoreCase(argv[i], "limit") && left >= 2) {
      i += 2;
    } else if (EqualsIgnoreCase(argv[i], "store") && left >= 1) {
      key = ++i;
    } else if ((EqualsIgnoreCase(argv[i], "by") || EqualsIgnoreCase(argv[i], "get")) && left >= 1) {
      ++i;
    }
    // (ASC, DESC, ALPHA take none; anything else is a syntax error, and
    // the command then wrote nothing.)
  }
  return key;
}

// The key GEORADIUS / GEORADIUSBYMEMBER … STORE|STOREDIST dst writes, as
// redis 7.0 reads the options (georadiusGeneric): from `first` on, COUNT
// taking one argument, STORE and STOREDIST one each, the last winning.
// Their key specs find the first keyword instead, and take a key named
// "store" for it.
int GeoRadiusStoreKey(std::span<const std::string_view> argv, int first) {
  int key = -1;
  const int argc = static_cast<int>(argv.size());
  for (int i = first; i < argc; ++i) {
    if (i + 1 >= argc) break;
    if (EqualsIgnoreCase(argv[i], "count")) {
      ++i;
    } else if (EqualsIgnoreCase(argv[i], "store") || EqualsIgnoreCase(argv[i], "storedist")) {
      key = ++i;
    }
  }
  return key;
}

// The keys MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw]
// [AUTH2 user pw] [KEYS k…] moves, as redis 7.0 reads the options
// (migrateCommand): from argument 6 on, COPY and REPLACE alone, AUTH taking
// one argument and AUTH2 two, KEYS every argument after it (the key then
// ""); anything else, or KEYS after a key, is refused and moves nothing.
// Its key specs search KEYS backwards: a key named "keys" hid the keys
// before it, and an AUTH2 user named "keys" made the password a key that
// was read back, into the log (a review).
void MigrateKeys(std::span<const std::string_view> argv, uint16_t flags, std::vector<KeyRef>* out) {
  const size_t argc = argv.size();
  if (argc < 6) return;
  for (size_t i = 6; i < argc; ++i) {
    const size_t more = argc - 1 - i;
    if (EqualsIgnoreCase(argv[i], "copy") || EqualsIgnoreCase(argv[i], "replace")) continue;
    if (EqualsIgnoreCase(argv[i], "auth") && more >= 1) {
      i += 1;
    } else if (EqualsIgnoreCase(argv[i], "auth2") && more >= 2) {
      i += 2;
    } else if (EqualsIgnoreCase(argv[i], "keys") && argv[3].empty()) {
      for (size_t k = i + 1; k < argc; ++k) out->push_back({static_cast<uint32_t>(k), flags});
      return;
    } else {
      return;
    }
  }
  out->push_back({3, flags});
}

// A keyword key spec searched forward: the argument after the first
// `ks.keyword` from `ks.begin_arg` on, or -1.
int AfterKeyword(std::span<const std::string_view> argv, const KeySpec& ks) {
  for (size_t i = static_cast<size_t>(ks.begin_arg); i < argv.size(); ++i) {
    if (EqualsIgnoreCase(argv[i], ks.keyword)) return static_cast<int>(i) + 1;
  }
  return -1;
}

}  // namespace

bool FindKeys(const CommandSpec& spec, std::span<const std::string_view> argv, std::vector<KeyRef>* out) {
  bool ok = true;
  const int argc = static_cast<int>(argv.size());
  static const CommandSpec* const georadius = LookupCommandName("georadius");
  static const CommandSpec* const georadius_member = LookupCommandName("georadiusbymember");
  static const CommandSpec* const migrate = LookupCommandName("migrate");
  if (&spec == migrate && spec.num_specs == 2) {
    MigrateKeys(argv, spec.specs[0].flags, out);
    return true;
  }
  if ((&spec == georadius || &spec == georadius_member) && spec.num_specs == 3 && argc >= 2) {
    // The source key, then the one STORE or STOREDIST names (if any).
    out->push_back({1, spec.specs[0].flags});
    const int dst = GeoRadiusStoreKey(argv, &spec == georadius ? 6 : 5);
    if (dst >= 0) out->push_back({static_cast<uint32_t>(dst), spec.specs[1].flags});
    return true;
  }
  for (size_t s = 0; s < spec.num_specs; ++s) {
    const KeySpec& ks = spec.specs[s];
    int begin = -1;
    if (ks.begin == KeyBegin::kIndex) {
      begin = ks.begin_arg;
    } else if (ks.begin == KeyBegin::kKeyword) {
      if (ks.begin_arg >= 0) {
        begin = AfterKeyword(argv, ks);
      } else {
        for (int i = argc + ks.begin_arg; i > 0; --i) {
          if (EqualsIgnoreCase(argv[i], ks.keyword)) {
            begin = i + 1;
            break;
          }
        }
      }
      if (begin < 0) continue;  // keyword absent: this spec finds no key
    } else if (std::strcmp(spec.name, "sort") == 0 && (ks.flags & kKeyOw)) {
      // SORT … STORE dst: the one key spec Redis leaves "unknown".
      const int dst = SortStoreKey(argv);
      if (dst >= 0) out->push_back({static_cast<uint32_t>(dst), ks.flags});
      continue;
    } else {
      if (!(ks.flags & kKeyRo)) ok = false;  // SORT's BY/GET patterns are not keys
      continue;
    }
    // (A spec learnt at run time may hold anything: nothing below reads
    // outside argv.)
    if (begin < 0 || begin >= argc) continue;
    if (ks.find == KeyFind::kRange) {
      int last;
      if (ks.a >= 0) {
        last = begin + ks.a;
      } else {
        // -1 = last arg, -2 = one before, …; a limit keeps 1/limit of the rest.
        last = ks.c > 0 ? begin + (argc - begin) / ks.c + ks.a : argc + ks.a;
      }
      const int step = ks.b > 0 ? ks.b : 1;
      for (int i = begin; i <= last && i < argc; i += step)
        out->push_back({static_cast<uint32_t>(i), ks.flags});
    } else if (ks.find == KeyFind::kKeynum) {
      const int numidx = begin + ks.a;
      long long num = 0;
      if (numidx < 0 || numidx >= argc || !ParseInt(argv[numidx], &num) || num < 0 || num > argc) {
        ok = false;
        continue;
      }
      const int first = begin + ks.b;
      const int step = ks.c > 0 ? ks.c : 1;
      for (long long k = 0; k < num; ++k) {
        const long long i = first + k * step;
        if (i < 0 || i >= argc) {
          ok = false;
          break;
        }
        out->push_back({static_cast<uint32_t>(i), ks.flags});
      }
    } else {
      ok = false;
    }
  }
  return ok;
}

bool KeysMayLieBeyond(const CommandSpec& spec, std::span<const std::string_view> head) {
  const int argc = static_cast<int>(head.size());
  if (std::strcmp(spec.name, "georadius") == 0 || std::strcmp(spec.name, "georadiusbymember") == 0 ||
      std::strcmp(spec.name, "sort") == 0)
    return true;  // STORE may come later
  for (size_t s = 0; s < spec.num_specs; ++s) {
    const KeySpec& ks = spec.specs[s];
    if (!ks.Writes()) continue;
    int begin = -1;
    if (ks.begin == KeyBegin::kIndex) {
      begin = ks.begin_arg;
    } else if (ks.begin == KeyBegin::kKeyword && ks.begin_arg >= 0) {
      begin = AfterKeyword(head, ks);
    }
    if (begin < 0 || begin >= argc) return true;  // not found (yet), or searched from the end
    if (ks.find == KeyFind::kRange) {
      if (ks.a < 0 || begin + ks.a >= argc) return true;
    } else if (ks.find == KeyFind::kKeynum) {
      const int numidx = begin + ks.a;
      long long num = 0;
      if (numidx < 0 || numidx >= argc || !ParseInt(head[numidx], &num) || num < 0 || num > INT32_MAX)
        return true;
      const long long step = ks.c > 0 ? ks.c : 1;
      if (num > 0 && begin + ks.b + (num - 1) * step >= argc) return true;
    } else {
      return true;
    }
  }
  return false;
}

}  // namespace kvf::resp
