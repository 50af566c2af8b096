// `kvferryctl log dump|verify|stats --dir D [--from SEQ] [--format json]`:
// offline inspection of a log directory. Read-only: safe on a live log
// (it may then see a partly written tail). verify exits 1 on any damage.
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ctl/command.h"
#include "ctl/notes.h"
#include "ctl/record_json.h"
#include "logstore/cursors.h"
#include "logstore/log.h"
#include "logstore/verify.h"

namespace {

using kvf::ctl::Printable;
using kvf::logstore::DropReport;
using Json = nlohmann::json;

struct LogArgs {
  std::string action;
  std::string dir;
  uint64_t from = 1;
  bool from_given = false;
  bool json = false;
};

void Usage(std::FILE* out = stderr) {
  std::fprintf(out,
               "usage: kvferryctl log dump|verify|stats --dir D [--from SEQ] [--format text|json]\n"
               "  dump    print records from --from on (json: one object per line)\n"
               "  verify  check every record of every segment; exit 1 on damage or gaps\n"
               "  stats   segments, seq range, disk use and cursors (headers + last segment only)\n");
}

bool Parse(const std::vector<std::string>& args, LogArgs* out) {
  if (args.empty()) return false;
  out->action = args[0];
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--dir" && has_value && out->dir.empty()) {
      out->dir = args[++i];
    } else if (a == "--from" && has_value && !out->from_given) {
      // Digits only: strtoull took "-1" (as 2^64-1), "" and overflows.
      const std::string& v = args[++i];
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out->from);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size() || out->from == 0) {
        std::fprintf(stderr, "kvferryctl log: --from %s: expected a sequence number (1 or more)\n",
                     v.c_str());
        return false;
      }
      out->from_given = true;
    } else if (a == "--format" && has_value) {
      const std::string f = args[++i];
      if (f != "json" && f != "text") {
        std::fprintf(stderr, "kvferryctl log: --format %s: expected text or json\n", f.c_str());
        return false;
      }
      out->json = f == "json";
    } else {
      std::fprintf(stderr, "kvferryctl log: %s: %s\n", a.c_str(),
                   (a == "--dir" && !out->dir.empty()) || (a == "--from" && out->from_given) ? "given twice"
                   : a.rfind("--", 0) == 0 && !has_value                                     ? "needs a value"
                                                         : "unknown argument");
      return false;
    }
  }
  // (verify and stats read the whole log: a review's --from was taken and ignored.)
  if (out->from_given && out->action != "dump") {
    std::fprintf(stderr, "kvferryctl log: --from is for dump\n");
    return false;
  }
  return !out->dir.empty() && (out->action == "dump" || out->action == "verify" || out->action == "stats");
}

Json DropJson(const DropReport& d) {
  return Json{{"segment", d.segment},     {"offset", d.offset},     {"bytes", d.bytes},
              {"first_seq", d.first_seq}, {"last_seq", d.last_seq}, {"reason", d.reason},
              {"torn_tail", d.torn_tail}};
}

class PrintingReporter : public kvf::logstore::Reporter {
 public:
  explicit PrintingReporter(bool json) : json_(json) {}
  void Dropped(const DropReport& d) override {
    ++count;
    if (json_) {
      std::fprintf(stderr, "%s\n", Json{{"dropped", DropJson(d)}}.dump().c_str());
    } else {
      std::fprintf(stderr, "dropped: segment %llu offset %llu bytes %llu seqs %llu..%llu: %s\n",
                   static_cast<unsigned long long>(d.segment), static_cast<unsigned long long>(d.offset),
                   static_cast<unsigned long long>(d.bytes), static_cast<unsigned long long>(d.first_seq),
                   static_cast<unsigned long long>(d.last_seq), d.reason.c_str());
    }
  }
  int count = 0;

 private:
  bool json_;
};

int Dump(kvf::logstore::FileSystem* fs, const LogArgs& a) {
  PrintingReporter rep(a.json);
  auto reader = kvf::logstore::LogReader::OpenDir(fs, a.dir, a.from, &rep);
  if (!reader.ok()) {
    std::fprintf(stderr, "kvferryctl log dump: %s\n", reader.status().ToString().c_str());
    return 1;
  }
  kvf::ChangeRecord r;
  // Records missing between two that were read (a segment deleted, damage
  // the reader skipped): said, and the exit status says so too (a review's
  // dump of a log missing a segment jumped 5,268 seqs and exited 0).
  uint64_t prev = 0, missing = 0, stretches = 0;
  std::string line;
  std::vector<std::string_view> views;
  while ((*reader)->Next(&r)) {
    if (prev == 0 && a.from_given && r.seq > a.from) {
      // The records asked for are not in the log (a segment gone, or
      // trimmed away): missing too.
      std::fprintf(stderr,
                   "kvferryctl log dump: seqs %llu..%llu are missing (the first record from --from on)\n",
                   static_cast<unsigned long long>(a.from), static_cast<unsigned long long>(r.seq - 1));
      missing += r.seq - a.from;
      ++stretches;
    }
    if (prev != 0 && r.seq != prev + 1) {
      std::fprintf(stderr, "kvferryctl log dump: seqs %llu..%llu are missing\n",
                   static_cast<unsigned long long>(prev + 1), static_cast<unsigned long long>(r.seq - 1));
      missing += r.seq > prev ? r.seq - prev - 1 : 0;
      ++stretches;
    }
    prev = r.seq;
    if (a.json) {
      // As decode prints records: exact bytes (key_b64, args_b64) where they
      // are not UTF-8, flags by name (a review: k\xff and k\xfe both came out
      // "k\ufffd"), and the origin site.
      line.clear();
      kvf::ctl::AppendJsonRecord(&line, kvf::RecordView::Of(r, &views), r.seq, /*with_origin=*/true);
      std::fputs(line.c_str(), stdout);
    } else {
      std::string text = std::to_string(r.seq) + " hlc=" + std::to_string(r.hlc.physical_ms()) + "." +
                         std::to_string(r.hlc.logical()) + " origin=" + std::to_string(r.origin) +
                         " db=" + std::to_string(r.db) + " " + std::string(kvf::RecordOpName(r.op)) +
                         " key=" + Printable(r.key);
      for (const auto& arg : r.args) text += " " + Printable(arg);
      std::printf("%s\n", text.c_str());
    }
  }
  if (!(*reader)->status().ok()) {
    std::fprintf(stderr, "kvferryctl log dump: %s\n", (*reader)->status().ToString().c_str());
    return 1;
  }
  if (missing > 0 || rep.count > 0) {
    std::fprintf(stderr,
                 "kvferryctl log dump: incomplete: %llu record(s) missing in %llu stretch(es), %d damaged "
                 "stretch(es) skipped; `kvferryctl log verify --dir %s` tells where\n",
                 static_cast<unsigned long long>(missing), static_cast<unsigned long long>(stretches),
                 rep.count, a.dir.c_str());
    return 1;
  }
  return 0;
}

int VerifyOrStats(kvf::logstore::FileSystem* fs, const LogArgs& a) {
  const bool full = a.action == "verify";
  auto sum = kvf::logstore::InspectLog(fs, a.dir, full);
  if (!sum.ok()) {
    std::fprintf(stderr, "kvferryctl log %s: %s\n", a.action.c_str(), sum.status().ToString().c_str());
    return 1;
  }
  kvf::logstore::CursorStore cursors(fs, a.dir);
  const kvf::Status cs = cursors.Load();
  // A cursor is the last seq its destination acknowledged: the log must
  // hold what comes after it, and cannot have acknowledged what it never
  // held (a review's verify said OK with one cursor 3,406 records before the
  // oldest and another 994,943 past the newest).
  uint64_t next = sum->last_seq + 1;  // the seq the log would give next
  if (sum->last_seq == 0) {
    next = 1;
    for (const auto& seg : sum->segments)
      if (seg.header_ok && seg.first_seq > 0) next = std::max(next, seg.first_seq);
  }
  const uint64_t oldest = sum->first_seq != 0 ? sum->first_seq : next;
  std::vector<std::string> cursor_problems;
  if (cs.ok()) {
    for (const auto& [dest, seq] : cursors.Snapshot()) {
      if (seq + 1 < oldest) {
        cursor_problems.push_back("cursor " + Printable(dest) + " acknowledged seq " + std::to_string(seq) +
                                  ", but the log starts at " + std::to_string(oldest) + ": seqs " +
                                  std::to_string(seq + 1) + ".." + std::to_string(oldest - 1) +
                                  " it was never acknowledged are gone");
      } else if (seq >= next) {
        cursor_problems.push_back("cursor " + Printable(dest) + " acknowledged seq " + std::to_string(seq) +
                                  ", past the log's last (" + std::to_string(next - 1) +
                                  "): records it acknowledged are gone");
      }
    }
  }
  const bool ok = sum->ok() && cs.ok() && cursor_problems.empty();
  if (a.json) {
    Json j{{"segments", sum->segments.size()},      {"records", sum->records},
           {"first_seq", sum->first_seq},           {"last_seq", sum->last_seq},
           {"recycled_files", sum->recycled_files}, {"disk_bytes", sum->disk_bytes}};
    j["cursor_problems"] = cursor_problems;
    if (full) {
      j["ok"] = ok;
      j["contiguous_to"] = sum->contiguous_to;
      j["damage"] = Json::array();
      for (const auto& d : sum->damage) j["damage"].push_back(DropJson(d));
      j["gaps"] = Json::array();
      for (const auto& g : sum->gaps)
        j["gaps"].push_back(Json{{"first_seq", g.first}, {"last_seq", g.second}});
    }
    Json segs = Json::array();
    for (const auto& s : sum->segments) {
      Json sj{{"number", s.number},         {"header_ok", s.header_ok},   {"first_seq", s.first_seq},
              {"created_ms", s.created_ms}, {"file_bytes", s.file_bytes}, {"disk_bytes", s.disk_bytes}};
      if (full) {
        sj["records"] = s.records;
        sj["last_seq"] = s.last_seq;
        sj["end_offset"] = s.end_offset;
      }
      segs.push_back(sj);
    }
    j["segment_list"] = segs;
    j["cursors"] = cs.ok() ? Json(cursors.Snapshot()) : Json(cs.ToString());
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("segments: %zu (%llu recycled files waiting), disk: %llu bytes\n", sum->segments.size(),
                static_cast<unsigned long long>(sum->recycled_files),
                static_cast<unsigned long long>(sum->disk_bytes));
    std::printf("seq: first %llu last %llu, records %llu\n", static_cast<unsigned long long>(sum->first_seq),
                static_cast<unsigned long long>(sum->last_seq),
                static_cast<unsigned long long>(sum->records));
    if (!full) {
      // stats reads headers only (records are counted from the seq range:
      // verify reads them); a bad header it can see, and says. (Segment
      // numbers may skip: recovery recycles an empty last segment.)
      for (const auto& seg : sum->segments) {
        if (!seg.header_ok)
          std::printf("segment %llu: HEADER BAD\n", static_cast<unsigned long long>(seg.number));
      }
    }
    if (full) {
      std::printf("durable and contiguous up to seq %llu\n",
                  static_cast<unsigned long long>(sum->contiguous_to));
      for (const auto& s : sum->segments) {
        std::printf("  segment %llu: %s, seqs %llu..%llu, %llu records, valid bytes %llu of %llu\n",
                    static_cast<unsigned long long>(s.number), s.header_ok ? "header ok" : "HEADER BAD",
                    static_cast<unsigned long long>(s.first_seq), static_cast<unsigned long long>(s.last_seq),
                    static_cast<unsigned long long>(s.records), static_cast<unsigned long long>(s.end_offset),
                    static_cast<unsigned long long>(s.file_bytes));
      }
      for (const auto& g : sum->gaps) {
        std::printf("GAP: seqs %llu..%llu missing\n", static_cast<unsigned long long>(g.first),
                    static_cast<unsigned long long>(g.second));
      }
      for (const auto& d : sum->damage) {
        std::printf("DAMAGE: segment %llu offset %llu, %llu bytes, seqs %llu..%llu: %s\n",
                    static_cast<unsigned long long>(d.segment), static_cast<unsigned long long>(d.offset),
                    static_cast<unsigned long long>(d.bytes), static_cast<unsigned long long>(d.first_seq),
                    static_cast<unsigned long long>(d.last_seq), d.reason.c_str());
      }
      for (const std::string& p : cursor_problems) std::printf("CURSOR: %s\n", p.c_str());
      std::printf("%s\n", ok ? "OK" : "DAMAGED");
    } else {
      for (const std::string& p : cursor_problems) std::printf("CURSOR: %s\n", p.c_str());
    }
    if (cs.ok()) {
      for (const auto& [dest, seq] : cursors.Snapshot()) {
        std::printf("cursor %s: %llu\n", Printable(dest).c_str(), static_cast<unsigned long long>(seq));
      }
    } else {
      std::printf("cursors: %s\n", cs.ToString().c_str());
    }
  }
  // Cursors that cannot be read, or that the log does not match, are damage
  // too: a destination would resume from nowhere it acknowledged.
  return full && !ok ? 1 : 0;
}

int RunLog(const std::vector<std::string>& args) {
  if (std::any_of(args.begin(), args.end(),
                  [](const std::string& a) { return a == "--help" || a == "-h"; })) {
    Usage(stdout);
    return 0;
  }
  LogArgs a;
  if (!Parse(args, &a)) {
    Usage();
    return 2;
  }
  auto fs = kvf::logstore::NewPosixFileSystem(kvf::logstore::IoBackend::kPosix);
  if (!fs.ok()) {
    std::fprintf(stderr, "kvferryctl log: %s\n", fs.status().ToString().c_str());
    return 1;
  }
  if (a.action == "dump") return Dump(fs->get(), a);
  return VerifyOrStats(fs->get(), a);
}

}  // namespace

KVF_CTL_COMMAND("log", "inspect a change log: dump | verify | stats --dir D [--format json]", RunLog);
