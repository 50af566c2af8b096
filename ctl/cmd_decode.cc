// `kvferryctl decode`: offline, single-threaded and deterministic. Reads a
// pcap, reassembles the connections to the given Redis servers, pairs
// requests with replies and prints the change records (json), the commands a
// replica would apply (resp, for `redis-cli --pipe`), or counts (stats).
#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ctl/command.h"
#include "dataplane/decode.h"
#include "dataplane/flow_table.h"
#include "dataplane/pcap_source.h"
#include "resp/ambiguity.h"
#include "resp/connection.h"
#include "resp/script_cache.h"

namespace {

using namespace kvf;
namespace dp = kvf::dataplane;

// Prints records as they leave the ambiguity window; assigns the dense seq.
class Printer : public resp::RecordSink {
 public:
  // Records are given back to `pool` once printed.
  Printer(std::string format, resp::RecordPool* pool) : format_(std::move(format)), pool_(pool) {}

  void Emit(ChangeRecord&& r, uint64_t) override {
    r.seq = ++seq_;
    ++records_;
    if (r.flags != 0) ++flagged_;
    ++per_op_[static_cast<size_t>(r.op) & 7];
    if (!r.args.empty()) {
      if (last_command_ == per_command_.end() || !SameName(last_command_->first, r.args[0])) {
        last_command_ = per_command_.find(std::string_view(r.args[0]));
        if (last_command_ == per_command_.end()) last_command_ = per_command_.emplace(r.args[0], 0).first;
      }
      ++last_command_->second;
    }
    if (format_ == "json") PrintJson(r);
    if (format_ == "resp") PrintResp(r);
    pool_->Give(std::move(r));
  }
  uint64_t records() const { return records_; }
  // Command names are short: an inline loop beats a memcmp call per record.
  static bool SameName(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }
  uint64_t flagged() const { return flagged_; }
  uint64_t readbacks_skipped() const { return readbacks_skipped_; }
  const std::map<std::string, uint64_t, std::less<>>& per_command() const { return per_command_; }
  const std::array<uint64_t, 8>& per_op() const { return per_op_; }

 private:
  void PrintJson(const ChangeRecord& r) {
    nlohmann::json j;
    j["seq"] = r.seq;
    j["capture_ns"] = r.capture_ns;
    j["hlc"] = r.hlc.packed();
    j["db"] = r.db;
    j["op"] = std::string(RecordOpName(r.op));
    j["key"] = r.key;
    j["args"] = r.args;
    std::vector<std::string> flags;
    if (r.HasFlag(kNeedsReadback)) flags.push_back("needs_readback");
    if (r.HasFlag(kAfterGap)) flags.push_back("after_gap");
    if (r.HasFlag(kAmbiguousOrder)) flags.push_back("ambiguous_order");
    if (r.HasFlag(kInTransaction)) flags.push_back("in_transaction");
    if (r.HasFlag(kUnknownDb)) flags.push_back("unknown_db");
    j["flags"] = flags;
    // Values are binary: invalid UTF-8 is replaced for display.
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  }
  void PrintResp(const ChangeRecord& r) {
    if (r.op == RecordOp::kReadback || r.args.empty()) {
      ++readbacks_skipped_;  // offline: there is no source to read from
      return;
    }
    if (r.op != RecordOp::kDatabase || r.args[0] != "FLUSHALL") {
      if (r.db != db_) {
        WriteCommand({"SELECT", std::to_string(r.db)});
        db_ = r.db;
      }
    }
    WriteCommand(r.args);
  }
  static void WriteCommand(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) {
      out += "$" + std::to_string(a.size()) + "\r\n";
      out += a;
      out += "\r\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  }

  std::string format_;
  resp::RecordPool* pool_;
  uint64_t seq_ = 0, records_ = 0, flagged_ = 0, readbacks_skipped_ = 0;
  uint16_t db_ = 0;
  std::map<std::string, uint64_t, std::less<>> per_command_;
  std::map<std::string, uint64_t, std::less<>>::iterator last_command_ = per_command_.end();
  std::array<uint64_t, 8> per_op_{};
};

// One resp::Connection per reassembled flow; shifts capture times.
class FlowConsumer : public dp::StreamConsumer {
 public:
  FlowConsumer(resp::RecordSink* sink, resp::ConnectionOptions o, int64_t shift_ns,
               resp::ConnectionStats* totals)
      : conn_(sink, o), shift_ns_(shift_ns), totals_(totals) {}
  void OnData(dp::Direction dir, ByteSpan bytes, uint64_t ts) override {
    conn_.OnData(static_cast<resp::Direction>(dir), bytes,
                 static_cast<uint64_t>(static_cast<int64_t>(ts) + shift_ns_));
  }
  void OnGap(dp::Direction dir, uint64_t missing) override {
    conn_.OnGap(static_cast<resp::Direction>(dir), missing);
  }
  void OnClose(dp::CloseReason) override {
    conn_.OnClose(resp::CloseReason::kFin);
    *totals_ += conn_.stats();
  }

 private:
  resp::Connection conn_;
  int64_t shift_ns_;
  resp::ConnectionStats* totals_;
};

// Per-command outcome counts for --format stats.
class Outcomes : public resp::OutcomeObserver {
 public:
  // `command` points into the static command table: the pointer is the key.
  void OnOutcome(std::string_view command, resp::Outcome o) override {
    if (command.data() != last_name_) {
      last_name_ = command.data();
      last_ = counts_.find(command);
      if (last_ == counts_.end()) last_ = counts_.emplace(std::string(command), Row{}).first;
    }
    ++last_->second[static_cast<size_t>(o)];
  }
  using Row = std::array<uint64_t, static_cast<size_t>(resp::Outcome::kCount)>;
  const std::map<std::string, Row, std::less<>>& counts() const { return counts_; }

 private:
  std::map<std::string, Row, std::less<>> counts_;
  const char* last_name_ = nullptr;
  std::map<std::string, Row, std::less<>>::iterator last_;
};

class Factory : public dp::StreamConsumerFactory {
 public:
  Factory(resp::RecordSink* sink, int64_t shift_ns, resp::ConnectionStats* totals,
          resp::OutcomeObserver* observer, resp::RecordPool* pool)
      : sink_(sink), shift_ns_(shift_ns), totals_(totals), observer_(observer), pool_(pool) {}
  std::unique_ptr<dp::StreamConsumer> NewFlow(const dp::FlowInfo& info) override {
    resp::ConnectionOptions o;
    o.connection_id = ++next_id_;
    o.joined_mid_stream = info.joined_mid_stream;
    o.observer = observer_;
    o.scripts = &scripts_;
    o.pool = pool_;
    return std::make_unique<FlowConsumer>(sink_, o, shift_ns_, totals_);
  }

 private:
  resp::RecordSink* sink_;
  int64_t shift_ns_;
  resp::ConnectionStats* totals_;
  resp::OutcomeObserver* observer_;
  resp::RecordPool* pool_;
  // One script cache for all flows: a script loaded on one connection is
  // often run from another (offline, all servers share it; SHA-1 names the
  // body, so a shared cache can never substitute a wrong script).
  resp::ScriptCache scripts_;
  uint64_t next_id_ = 0;
};

// The last capture timestamp of the file (for --rebase-time).
Result<uint64_t> LastTimestamp(const std::string& path) {
  auto src = dp::PcapSource::OpenOffline(path);
  if (!src.ok()) return src.status();
  std::vector<dp::Packet> burst(256);
  uint64_t last = 0;
  while (!(*src)->Exhausted()) {
    const size_t n = (*src)->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) last = std::max(last, burst[i].ts_ns);
  }
  return last;
}

int RunDecode(const std::vector<std::string>& args) {
  CLI::App app{"Decode a pcap of Redis traffic into change records"};
  std::string pcap_file, format = "json";
  std::vector<std::string> servers;
  bool rebase = false;
  double window_ms = 1.0;
  app.add_option("--pcap", pcap_file, "capture file (pcap/pcapng, Ethernet)")->required();
  app.add_option("--server", servers, "HOST:PORT of a Redis server (repeatable)")->required();
  app.add_option("--format", format, "json | resp | stats")->check(CLI::IsMember({"json", "resp", "stats"}));
  app.add_flag("--rebase-time", rebase, "shift capture times so that the capture ends now");
  app.add_option("--ambiguity-window-ms", window_ms,
                 "writes to one key from two connections closer than this are flagged");
  std::vector<std::string> argv_rev(args.rbegin(), args.rend());
  try {
    app.parse(argv_rev);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  dp::FlowTableConfig cfg;
  for (const std::string& s : servers) {
    auto ep = dp::Endpoint::Parse(s);
    if (!ep.ok()) {
      std::fprintf(stderr, "kvferryctl decode: --server %s: %s\n", s.c_str(), ep.status().message().c_str());
      return 2;
    }
    cfg.servers.push_back(*ep);
  }
  int64_t shift_ns = 0;
  if (rebase) {
    auto last = LastTimestamp(pcap_file);
    if (!last.ok()) {
      std::fprintf(stderr, "kvferryctl decode: %s\n", last.status().ToString().c_str());
      return 1;
    }
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    shift_ns = now - static_cast<int64_t>(*last);
  }
  auto src = dp::PcapSource::OpenOffline(pcap_file);
  if (!src.ok()) {
    std::fprintf(stderr, "kvferryctl decode: %s\n", src.status().ToString().c_str());
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  resp::RecordPool pool;
  Printer printer(format, &pool);
  resp::AmbiguityOptions ao;
  ao.window_ns = static_cast<uint64_t>(window_ms * 1e6);
  resp::AmbiguityTracker tracker(&printer, ao);
  resp::ConnectionStats totals;
  Outcomes outcomes;
  Factory factory(&tracker, shift_ns, &totals, format == "stats" ? &outcomes : nullptr, &pool);
  dp::FlowTable table(cfg, &factory);
  dp::DecodeCounters dec;
  std::vector<dp::Packet> burst(256);
  uint64_t frames = 0, bytes = 0;
  while (!(*src)->Exhausted()) {
    const size_t n = (*src)->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) {
      const dp::Packet& p = burst[i];
      ++frames;
      bytes += p.len;
      dp::TcpSegment seg;
      const dp::DecodeStatus st = dp::DecodeFrame(p.data, p.len, p.ts_ns, &seg);
      dec.Add(st);
      if (st != dp::DecodeStatus::kOk) continue;
      table.Process(seg);
    }
    if (n > 0) {
      table.Tick(burst[n - 1].ts_ns);
      tracker.Advance(static_cast<uint64_t>(static_cast<int64_t>(burst[n - 1].ts_ns) + shift_ns));
    }
  }
  table.CloseAll(dp::CloseReason::kShutdown);
  tracker.Flush();
  std::fflush(stdout);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (format == "stats") {
    std::printf("frames %llu bytes %llu decoded_segments %llu seconds %.3f\n", (unsigned long long)frames,
                (unsigned long long)bytes, (unsigned long long)dec.decoded(), secs);
    std::printf("throughput commands/s %.0f MB/s %.1f\n",
                secs > 0 ? static_cast<double>(totals.requests) / secs : 0.0,
                secs > 0 ? static_cast<double>(bytes) / secs / 1e6 : 0.0);
    for (const auto& [name, v] : totals.Named())
      std::printf("conn %s %llu\n", name.c_str(), (unsigned long long)v);
    for (const auto& [name, v] : table.stats().Named())
      std::printf("flow %s %llu\n", name.c_str(), (unsigned long long)v);
    std::printf("records %llu flagged %llu ambiguous %llu\n", (unsigned long long)printer.records(),
                (unsigned long long)printer.flagged(), (unsigned long long)tracker.stats().ambiguous);
    for (size_t op = 1; op <= 4; ++op) {
      std::printf("op %s %llu\n", std::string(RecordOpName(static_cast<RecordOp>(op))).c_str(),
                  (unsigned long long)printer.per_op()[op]);
    }
    for (const auto& [c, v] : printer.per_command())
      std::printf("record_command %s %llu\n", c.c_str(), (unsigned long long)v);
    for (const auto& [c, row] : outcomes.counts()) {
      std::printf("command %s", c.c_str());
      for (size_t i = 0; i < row.size(); ++i) {
        std::printf(" %s=%llu", std::string(resp::OutcomeName(static_cast<resp::Outcome>(i))).c_str(),
                    (unsigned long long)row[i]);
      }
      std::printf("\n");
    }
  } else {
    std::fprintf(
        stderr, "kvferryctl decode: %llu records (%llu flagged, %llu read-backs %s), %llu requests, %.3f s\n",
        (unsigned long long)printer.records(), (unsigned long long)printer.flagged(),
        (unsigned long long)printer.readbacks_skipped(),
        format == "resp" ? "not applicable offline" : "listed", (unsigned long long)totals.requests, secs);
  }
  return 0;
}

}  // namespace

KVF_CTL_COMMAND("decode", "decode a pcap of Redis traffic into change records (json | resp | stats)",
                RunDecode);
