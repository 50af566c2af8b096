// `kvferryctl decode`: offline, single-threaded and deterministic. Reads a
// pcap, reassembles the connections to the given Redis servers, pairs
// requests with replies and prints the change records (json), the commands a
// replica would apply (resp, for `redis-cli --pipe`), or counts (stats).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/record_batch.h"
#include "ctl/command.h"
#include "ctl/db_resolver.h"
#include "ctl/failover.h"
#include "ctl/notes.h"
#include "ctl/record_json.h"
#include "ctl/wire_options.h"
#include "dataplane/decode.h"
#include "dataplane/flow_table.h"
#include "dataplane/pcap_source.h"
#include "resp/ambiguity.h"
#include "resp/expiry.h"
#include "resp/prior.h"
#include "resp/connection.h"
#include "resp/convert.h"
#include "resp/script_cache.h"

namespace {

using namespace kvf;
namespace dp = kvf::dataplane;

// Ctrl-C or SIGTERM: decode stops reading frames and ends as at the end of
// the capture, so that every record written is whole (a review's json and
// resp output ended in half a record, a broken command for `redis-cli
// --pipe`). A second one quits at once.
std::atomic<bool> g_decode_interrupted{false};

void OnDecodeSignal(int) {
  if (!g_decode_interrupted.exchange(true)) return;
  static constexpr char kQuit[] = "\nkvferryctl decode: interrupted again: quitting, the output cut short\n";
  (void)!write(STDERR_FILENO, kQuit, sizeof(kQuit) - 1);
  _exit(130);
}

// Prints records as they leave the ambiguity window; assigns the dense seq.
class Printer : public resp::RecordSink {
 public:
  explicit Printer(const std::string& format)
      : format_(format == "json"   ? Format::kJson
                : format == "resp" ? Format::kResp
                                   : Format::kStats) {}

  void Emit(const RecordView& r, uint64_t) override {
    const uint64_t seq = ++seq_;
    Count(r.flags, r.op, r.args.empty() ? std::string_view() : r.args[0], r.source);
    if (format_ == Format::kJson) PrintJson(r, seq);
    if (format_ == Format::kResp) PrintResp(r);
  }
  // Counting needs three fields: read them from the batch in place.
  void EmitBatch(const RecordBatch& batch, size_t begin, size_t end) override {
    if (format_ != Format::kStats) return resp::RecordSink::EmitBatch(batch, begin, end);
    seq_ += end - begin;
    for (size_t i = begin; i < end; ++i)
      Count(batch.flags(i), batch.op(i), batch.first_arg(i), batch.source(i));
  }
  uint64_t records() const { return records_; }
  static char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
  // Command names are short: an inline loop beats a call per record. `a` is
  // upper case; `b` as the client sent it (redis-benchmark sends lpush).
  static bool SameName(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i] != Upper(b[i])) return false;
    }
    return true;
  }
  uint64_t flagged() const { return flagged_; }
  uint64_t unknown_db() const { return unknown_db_; }
  // Database-wide records (FLUSHDB, FLUSHALL, SWAPDB, FUNCTION …) flagged
  // for read-back: they name no key.
  uint64_t database_doubts() const { return database_doubts_; }
  // Records that only ask for keys to be read back from the source.
  uint64_t readbacks() const { return readbacks_; }
  // Records per command the replica runs (an INCR's is a SET), and how many
  // of them were flagged.
  struct CommandCount {
    uint64_t records = 0;
    uint64_t flagged = 0;
  };
  const std::map<std::string, CommandCount, std::less<>>& per_command() const { return per_command_; }
  const std::array<uint64_t, 8>& per_op() const { return per_op_; }
  // Records per captured command (an INCR's SET counts for INCR), and how
  // many of them were flagged, by command name.
  std::map<std::string, CommandCount, std::less<>> PerSource() const {
    std::map<std::string, CommandCount, std::less<>> out;
    for (size_t id = 1; id < per_source_.size(); ++id) {
      if (per_source_[id].records == 0) continue;
      const resp::CommandSpec* spec = resp::SourceSpec(static_cast<uint8_t>(id));
      if (spec != nullptr) out[std::string(resp::CommandName(*spec))] = per_source_[id];
    }
    return out;
  }

 private:
  // `name` is the command (first argument), empty for a read-back.
  void Count(uint16_t flags, RecordOp op, std::string_view name, uint8_t source) {
    ++records_;
    // In a transaction, or creating the key, is a fact, not a doubt: not
    // counted as flagged.
    const bool flagged = (flags & ~kFactFlags) != 0;
    if (flagged) {
      ++flagged_;
      if ((flags & kUnknownDb) != 0) ++unknown_db_;
    }
    if (op == RecordOp::kReadback) ++readbacks_;
    if (op == RecordOp::kDatabase && (flags & kNeedsReadback) != 0) ++database_doubts_;
    ++per_op_[static_cast<size_t>(op) & 7];
    ++per_source_[source].records;
    per_source_[source].flagged += flagged;
    if (!name.empty()) {
      if (last_command_ == per_command_.end() || !SameName(last_command_->first, name)) {
        upper_.assign(name);
        for (char& c : upper_) c = Upper(c);
        last_command_ = per_command_.find(upper_);
        if (last_command_ == per_command_.end())
          last_command_ = per_command_.emplace(upper_, CommandCount{}).first;
      }
      ++last_command_->second.records;
      last_command_->second.flagged += flagged;
    }
  }
  void PrintJson(const RecordView& r, uint64_t seq) {
    line_.clear();
    ctl::AppendJsonRecord(&line_, r, seq);
    std::fwrite(line_.data(), 1, line_.size(), stdout);
  }
  void PrintResp(const RecordView& r) {
    if (r.op == RecordOp::kReadback || r.args.empty()) return;  // offline: no source to read from
    if (r.op != RecordOp::kDatabase || r.args[0] != "FLUSHALL") {
      if (r.db != db_) {
        const std::string db = std::to_string(r.db);
        const std::string_view select[] = {"SELECT", db};
        WriteCommand(select);
        db_ = r.db;
      }
    }
    WriteCommand(r.args);
  }
  void WriteCommand(std::span<const std::string_view> args) {
    out_.clear();
    out_ += '*';
    out_ += std::to_string(args.size());
    out_ += "\r\n";
    for (std::string_view a : args) {
      out_ += '$';
      out_ += std::to_string(a.size());
      out_ += "\r\n";
      out_ += a;
      out_ += "\r\n";
    }
    std::fwrite(out_.data(), 1, out_.size(), stdout);
  }

  enum class Format : uint8_t { kJson, kResp, kStats };
  Format format_;
  std::string out_;
  std::string line_;   // a json line, reused
  std::string upper_;  // a command name in upper case, reused
  uint64_t seq_ = 0, records_ = 0, flagged_ = 0, unknown_db_ = 0, readbacks_ = 0, database_doubts_ = 0;
  // The db the resp output last selected: none at first, so that its first
  // record selects its own (a review piped it into `redis-cli -n 5 --pipe`,
  // and the db-0 records before the first SELECT went to db 5).
  uint32_t db_ = UINT32_MAX;
  std::map<std::string, CommandCount, std::less<>> per_command_;
  std::map<std::string, CommandCount, std::less<>>::iterator last_command_ = per_command_.end();
  std::array<uint64_t, 8> per_op_{};
  std::array<CommandCount, 256> per_source_{};
};

// One resp::Connection per reassembled flow; shifts capture times.
class FlowConsumer : public dp::StreamConsumer {
 public:
  // CLIENT LIST replies the connection pairs go on `dbs`, whose answers
  // (read through `reader`) settle its db if it is unknown.
  FlowConsumer(resp::RecordSink* sink, resp::ConnectionOptions o, const dp::FlowInfo& info, int64_t shift_ns,
               resp::ConnectionStats* totals, ctl::ConnectionNames* names, ctl::DbAnswerBoard* dbs,
               ctl::DbBoardReader* reader, ctl::Failovers* failovers)
      : conn_(sink, WithWire(o)),
        shift_ns_(shift_ns),
        totals_(totals),
        names_(names),
        wire_(dbs, info.server, info.client, failovers, sink, o.connection_id),
        settler_(info.server, info.client, nullptr),
        reader_(reader),
        failovers_(failovers) {}
  void OnData(dp::Direction dir, ByteSpan bytes, uint64_t ts) override {
    const uint64_t at = static_cast<uint64_t>(static_cast<int64_t>(ts) + shift_ns_);
    Tap();
    conn_.OnData(static_cast<resp::Direction>(dir), bytes, at);
    if (!conn_.db_known()) settler_.Check(conn_, *reader_, at);
  }
  void OnGap(dp::Direction dir, uint64_t missing) override {
    conn_.OnGap(static_cast<resp::Direction>(dir), missing);
  }
  void OnFin(dp::Direction dir, uint64_t peer_acked) override {
    Tap();
    conn_.OnFin(static_cast<resp::Direction>(dir), peer_acked);
  }
  void OnClose(dp::CloseReason reason) override { OnCloseAt(reason, 0); }
  void OnCloseAt(dp::CloseReason, uint64_t last_seen_ns) override {
    Tap();
    conn_.OnClose(
        resp::CloseReason::kFin,
        last_seen_ns == 0 ? 0 : static_cast<uint64_t>(static_cast<int64_t>(last_seen_ns) + shift_ns_));
    *totals_ += conn_.stats();
    names_->Add(conn_);
  }

 private:
  // Once a server was made a master, this connection's records pass the
  // wire, which keeps their keys (not before: a call per record).
  void Tap() {
    if (failovers_->recording() && !tapped_) [[unlikely]] {
      conn_.set_sink(&wire_);
      tapped_ = true;
    }
  }
  // (wire_ is not constructed yet: only its address is taken.)
  resp::ConnectionOptions WithWire(resp::ConnectionOptions o) {
    o.client_lists = &wire_;
    return o;
  }

  resp::Connection conn_;
  int64_t shift_ns_;
  resp::ConnectionStats* totals_;
  ctl::ConnectionNames* names_;
  // After the members every chunk uses. conn_ points to wire_ but calls it
  // only from OnData, never from its destructor.
  ctl::FailoverWire wire_;
  ctl::DbSettler settler_;
  ctl::DbBoardReader* reader_;
  ctl::Failovers* failovers_;
  bool tapped_ = false;
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
          resp::OutcomeObserver* observer)
      : sink_(sink), shift_ns_(shift_ns), totals_(totals), observer_(observer) {}
  std::unique_ptr<dp::StreamConsumer> NewFlow(const dp::FlowInfo& info) override {
    resp::ConnectionOptions o;
    o.connection_id = ++next_id_;
    o.server_key = std::hash<std::string>{}(info.server.ToString());
    o.joined_mid_stream = info.joined_mid_stream;
    o.observer = observer_;
    o.scripts = &scripts_;
    o.announce_holds = true;  // the tracker takes them
    if (servers_seen_.size() < kServersNamed) servers_seen_.insert(info.server.ToString());
    return std::make_unique<FlowConsumer>(sink_, o, info, shift_ns_, totals_, &names_, &dbs_, &dbs_reader_,
                                          &failovers_);
  }

 private:
  resp::RecordSink* sink_;
  int64_t shift_ns_;
  resp::ConnectionStats* totals_;
  resp::OutcomeObserver* observer_;

 public:
  // Unknown commands the server accepted, and nodes -MOVED went to, from
  // every connection (a few names).
  ctl::ConnectionNames names_;
  // The server endpoints connections went to (the first few).
  static constexpr size_t kServersNamed = 8;
  std::set<std::string> servers_seen_;
  ctl::Failovers failovers_{"decode"};

 private:
  // One script cache for all flows: a script loaded on one connection is
  // often run from another (offline, all servers share it; SHA-1 names the
  // body, so a shared cache can never substitute a wrong script).
  resp::ScriptCache scripts_;
  // CLIENT LIST replies in the capture: which db each listed connection had
  // selected (all flows are read on one thread).
  ctl::DbAnswerBoard dbs_;
  ctl::DbBoardReader dbs_reader_{&dbs_};
  uint64_t next_id_ = 0;
};

// A bounded hand-over of batches from one producer thread to one consumer
// thread. At most `max_batches` exist (in flight + free), so memory stays
// bounded and a fast producer waits for a slow consumer. Batches are
// recycled with their capacity. Wake-ups cost a system call each, so the
// other side is only signalled when it sleeps.
template <typename Batch>
class Pipe {
 public:
  explicit Pipe(size_t max_batches) : max_batches_(max_batches) {}

  // Producer: an empty batch to fill.
  std::unique_ptr<Batch> Take() {
    std::unique_lock<std::mutex> lock(mu_);
    if (free_.empty() && made_ < max_batches_) {
      ++made_;
      return std::make_unique<Batch>();
    }
    producer_waiting_ = true;
    free_cv_.wait(lock, [&] { return !free_.empty(); });
    producer_waiting_ = false;
    std::unique_ptr<Batch> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  // Producer: like Take, but gives up (null) after `wait` without a batch.
  std::unique_ptr<Batch> TakeFor(std::chrono::microseconds wait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (free_.empty() && made_ < max_batches_) {
      ++made_;
      return std::make_unique<Batch>();
    }
    producer_waiting_ = true;
    const bool got = free_cv_.wait_for(lock, wait, [&] { return !free_.empty(); });
    producer_waiting_ = false;
    if (!got) return nullptr;
    std::unique_ptr<Batch> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void Push(std::unique_ptr<Batch> b) {
    std::lock_guard<std::mutex> lock(mu_);
    ready_.push_back(std::move(b));
    if (consumer_waiting_) ready_cv_.notify_one();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    if (consumer_waiting_) ready_cv_.notify_one();
  }

  // Consumer: the next batch if one is ready, else null (never waits).
  std::unique_ptr<Batch> TryPop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_.empty()) return nullptr;
    std::unique_ptr<Batch> b = std::move(ready_.front());
    ready_.pop_front();
    return b;
  }
  // Consumer: the next batch, or null once closed and drained.
  std::unique_ptr<Batch> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    consumer_waiting_ = true;
    ready_cv_.wait(lock, [&] { return !ready_.empty() || closed_; });
    consumer_waiting_ = false;
    if (ready_.empty()) return nullptr;
    std::unique_ptr<Batch> b = std::move(ready_.front());
    ready_.pop_front();
    return b;
  }
  void Recycle(std::unique_ptr<Batch> b) {
    b->Clear();
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
    if (producer_waiting_) free_cv_.notify_one();
  }

 private:
  const size_t max_batches_;
  size_t made_ = 0;
  std::mutex mu_;
  std::condition_variable ready_cv_, free_cv_;
  std::deque<std::unique_ptr<Batch>> ready_;
  std::vector<std::unique_ptr<Batch>> free_;
  bool closed_ = false;
  bool consumer_waiting_ = false;  // both guarded by mu_
  bool producer_waiting_ = false;
};

// Records on their way to the output thread (--threads 2 and 3). A batch
// remembers where the one-thread loop would have advanced the ambiguity
// window, and to what time, so the output thread makes the same calls in the
// same order: the output is identical.
struct RecordBatchWithAdvances {
  RecordBatch records;
  // Advance calls, in order (`before`: the number of records before it).
  std::vector<resp::WindowAdvance> advances;
  void Clear() {
    records.Clear();
    advances.clear();
  }
};

class RecordPipe : public resp::RecordSink {
 public:
  RecordPipe() : pipe_(16), cur_(pipe_.Take()) {}

  // Producer side.
  void Emit(const RecordView& r, uint64_t connection_id) override {
    cur_->records.Add(r, connection_id);
    if (cur_->records.bytes() > kMaxBatchBytes) Hand();
  }
  // Where the one-thread loop advances the window. Batches are handed over
  // once large enough (a burst of 256 frames may hold few records).
  void Advance(uint64_t now_ns, uint64_t request_lag_ns) {
    cur_->advances.push_back({cur_->records.size(), now_ns, request_lag_ns});
    if (cur_->records.size() >= kBatchRecords || cur_->advances.size() >= kBatchRecords) Hand();
  }
  void Close() {
    Hand();
    pipe_.Close();
  }

  // Consumer side: feeds everything to `tracker` until the producer closes.
  void Drain(resp::AmbiguityTracker* tracker) {
    while (std::unique_ptr<RecordBatchWithAdvances> b = pipe_.Pop()) Feed(std::move(b), tracker);
  }
  // Consumer side: feeds the batches ready now, without waiting for more.
  // True if there was any.
  bool DrainReady(resp::AmbiguityTracker* tracker) {
    bool any = false;
    while (std::unique_ptr<RecordBatchWithAdvances> b = pipe_.TryPop()) {
      Feed(std::move(b), tracker);
      any = true;
    }
    return any;
  }

 private:
  static constexpr size_t kMaxBatchBytes = 4u << 20;
  static constexpr size_t kBatchRecords = 2048;

  void Hand() {
    if (cur_->records.empty() && cur_->advances.empty()) return;
    pipe_.Push(std::move(cur_));
    cur_ = pipe_.Take();
  }
  // The tracker keeps the records where they are and gives back an empty
  // batch with capacity.
  void Feed(std::unique_ptr<RecordBatchWithAdvances> b, resp::AmbiguityTracker* tracker) {
    tracker->TakeBatch(&b->records, b->advances);
    b->Clear();
    pipe_.Recycle(std::move(b));
  }

  Pipe<RecordBatchWithAdvances> pipe_;
  std::unique_ptr<RecordBatchWithAdvances> cur_;  // producer thread only
};

// Reassembled stream events on their way from the packet thread to the
// RESP thread (--threads 3), with their bytes copied into one arena.
struct FlowEvent {
  enum class Kind : uint8_t { kNew, kData, kGap, kFin, kClose, kAdvance };
  Kind kind;
  dp::Direction dir;
  bool joined_mid_stream;  // kNew
  uint64_t flow;
  uint64_t ts;  // kData: capture time; kAdvance: the window's now; kClose: the last segment's
  // kData: bytes in the arena; kGap: missing bytes; kNew: index in
  // new_flows; kFin: the other direction's offset it acknowledged;
  // kAdvance: the flow table's RequestLagNs.
  uint64_t offset;
  uint64_t len;
  const uint8_t* data;  // kData: the bytes, when they lie in the mapped file (no copy)
};
struct FlowEventBatch {
  std::vector<FlowEvent> events;
  std::string bytes;
  std::vector<dp::FlowInfo> new_flows;  // kNew: offset indexes it
  void Clear() {
    events.clear();
    bytes.clear();
    new_flows.clear();
  }
};

class FlowEventPipe : public dp::StreamConsumerFactory {
 public:
  FlowEventPipe() : pipe_(16), cur_(pipe_.Take()) {}

  // Producer side (the FlowTable's thread).
  std::unique_ptr<dp::StreamConsumer> NewFlow(const dp::FlowInfo& info) override {
    const uint64_t id = ++next_flow_;
    cur_->new_flows.push_back(info);
    Add(FlowEvent{FlowEvent::Kind::kNew, dp::Direction::kClientToServer, info.joined_mid_stream, id, 0,
                  cur_->new_flows.size() - 1, 0, nullptr});
    return std::make_unique<Forwarder>(this, id);
  }
  void Advance(uint64_t now_ns, uint64_t request_lag_ns) {
    Add(FlowEvent{FlowEvent::Kind::kAdvance, dp::Direction::kClientToServer, false, 0, now_ns, request_lag_ns,
                  0, nullptr});
  }
  // While every batch is in flight, the producer calls `work` (and waits a
  // little between calls) instead of sleeping until one comes back: the
  // thread that fills this pipe may be the one that must drain the pipe the
  // consumer fills (--threads 2), so it must not block on it.
  void WhileFull(std::function<bool()> work) { while_full_ = std::move(work); }
  // Bytes that stay valid until the consumer is done (the mapped file):
  // data inside them is passed by address instead of copied.
  void AddStable(ByteSpan bytes) {
    if (!bytes.empty()) stable_.push_back(bytes);
  }
  void Close() {
    Hand();
    pipe_.Close();
  }

  // Consumer side: replays the events into connections made by `factory`,
  // and the advances into `records`, until the producer closes.
  void Drain(dp::StreamConsumerFactory* factory, RecordPipe* records) {
    // Flow ids are dense (1, 2, …): a vector finds a flow's consumer without
    // hashing, one slot per flow of the file.
    std::vector<std::unique_ptr<dp::StreamConsumer>> flows;
    while (std::unique_ptr<FlowEventBatch> b = pipe_.Pop()) {
      for (const FlowEvent& e : b->events) {
        if (e.kind == FlowEvent::Kind::kAdvance) {
          records->Advance(e.ts, e.offset);
          continue;
        }
        if (e.kind == FlowEvent::Kind::kNew) {
          const dp::FlowInfo& info = b->new_flows[e.offset];
          if (flows.size() <= e.flow) flows.resize(e.flow + 1);
          flows[e.flow] = factory->NewFlow(info);
          continue;
        }
        if (e.flow >= flows.size() || flows[e.flow] == nullptr) continue;
        dp::StreamConsumer* flow = flows[e.flow].get();
        switch (e.kind) {
          case FlowEvent::Kind::kData:
            flow->OnData(
                e.dir,
                ByteSpan(
                    e.data != nullptr ? e.data : reinterpret_cast<const uint8_t*>(b->bytes.data()) + e.offset,
                    e.len),
                e.ts);
            break;
          case FlowEvent::Kind::kGap: flow->OnGap(e.dir, e.offset); break;
          case FlowEvent::Kind::kFin: flow->OnFin(e.dir, e.offset); break;
          case FlowEvent::Kind::kClose:
            flow->OnCloseAt(static_cast<dp::CloseReason>(e.len), e.ts);
            flows[e.flow].reset();
            break;
          default: break;
        }
      }
      pipe_.Recycle(std::move(b));
    }
  }

 private:
  static constexpr size_t kMaxBatchBytes = 4u << 20;
  static constexpr size_t kBatchEvents = 4096;

  class Forwarder : public dp::StreamConsumer {
   public:
    Forwarder(FlowEventPipe* pipe, uint64_t id) : pipe_(pipe), id_(id) {}
    void OnData(dp::Direction dir, ByteSpan bytes, uint64_t ts) override {
      // In-order payload comes straight from the frame: when that lies in
      // the mapped file it stays valid, and only its address crosses.
      const auto addr = reinterpret_cast<uintptr_t>(bytes.data());  // unrelated objects: compare addresses
      // Files are read in turn: the newest mapping is the one to look in.
      for (auto it = pipe_->stable_.rbegin(); it != pipe_->stable_.rend(); ++it) {
        const auto file_at = reinterpret_cast<uintptr_t>(it->data());
        if (addr >= file_at && addr + bytes.size() <= file_at + it->size()) {
          pipe_->Add(FlowEvent{FlowEvent::Kind::kData, dir, false, id_, ts, 0, bytes.size(), bytes.data()});
          return;
        }
      }
      FlowEventBatch& b = *pipe_->cur_;
      const uint64_t at = b.bytes.size();
      b.bytes.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      pipe_->Add(FlowEvent{FlowEvent::Kind::kData, dir, false, id_, ts, at, bytes.size(), nullptr});
    }
    void OnGap(dp::Direction dir, uint64_t missing) override {
      pipe_->Add(FlowEvent{FlowEvent::Kind::kGap, dir, false, id_, 0, missing, 0, nullptr});
    }
    void OnFin(dp::Direction dir, uint64_t peer_acked) override {
      pipe_->Add(FlowEvent{FlowEvent::Kind::kFin, dir, false, id_, 0, peer_acked, 0, nullptr});
    }
    void OnClose(dp::CloseReason reason) override { OnCloseAt(reason, 0); }
    void OnCloseAt(dp::CloseReason reason, uint64_t last_seen_ns) override {
      pipe_->Add(FlowEvent{FlowEvent::Kind::kClose, dp::Direction::kClientToServer, false, id_, last_seen_ns,
                           0, static_cast<uint64_t>(reason), nullptr});
    }

   private:
    FlowEventPipe* pipe_;
    uint64_t id_;
  };

  void Add(const FlowEvent& e) {
    cur_->events.push_back(e);
    if (cur_->events.size() >= kBatchEvents || cur_->bytes.size() >= kMaxBatchBytes) Hand();
  }
  void Hand() {
    if (cur_->events.empty()) return;
    pipe_.Push(std::move(cur_));
    if (!while_full_) {
      cur_ = pipe_.Take();
      return;
    }
    while ((cur_ = pipe_.TakeFor(std::chrono::microseconds(0))) == nullptr) {
      if (!while_full_() && (cur_ = pipe_.TakeFor(std::chrono::microseconds(100))) != nullptr) return;
    }
  }

  Pipe<FlowEventBatch> pipe_;
  std::function<bool()> while_full_;     // producer thread only
  std::vector<ByteSpan> stable_;         // mapped files, valid to the end
  std::unique_ptr<FlowEventBatch> cur_;  // producer thread only
  uint64_t next_flow_ = 0;
};

// The last capture timestamp of the file (for --rebase-time).
Result<uint64_t> LastTimestamp(const std::string& path) {
  auto src = dp::PcapSource::OpenOffline(path, /*map=*/false);
  if (!src.ok()) return src.status();
  std::vector<dp::Packet> burst(256);
  uint64_t last = 0;
  while (!(*src)->Exhausted()) {
    const size_t n = (*src)->RxBurst(burst);
    for (size_t i = 0; i < n; ++i) last = std::max(last, burst[i].ts_ns);
  }
  return last;
}

// The files of one capture in the order they were written, which is the
// order of their first frames (`tcpdump -C/-G` rotation: a shell glob sorts
// cap.pcap10 before cap.pcap2). Ties and empty files keep the order given.
Result<std::vector<std::string>> InCaptureOrder(const std::vector<std::string>& paths) {
  if (paths.size() < 2) return paths;
  std::vector<std::pair<uint64_t, std::string>> keyed;
  for (const std::string& path : paths) {
    // A file that cannot be read (empty: `tcpdump -G` killed as it opened
    // the next; cut inside its header; another link type) goes last, and
    // is reported when its turn comes: the others are still decoded.
    auto src = dp::PcapSource::OpenOffline(path, /*map=*/true);  // touches the first page only
    dp::Packet first[1];
    const size_t n = src.ok() ? (*src)->RxBurst(first) : 0;
    keyed.emplace_back(n == 1 ? first[0].ts_ns : UINT64_MAX, path);
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (auto& k : keyed) out.push_back(std::move(k.second));
  return out;
}

// Bytes of a declared hole that came later than this are not a mirror's
// delay of one direction (--reorder-window-ms goes to 1000 ms).
constexpr uint64_t kMirrorDelayNs = 100'000'000;

int RunDecode(const std::vector<std::string>& args) {
  CLI::App app{"Decode a pcap of Redis traffic into change records", "kvferryctl decode"};
  std::vector<std::string> pcap_args;
  std::string format = "json";
  std::vector<std::string> servers;
  bool rebase = false;
  double window_ms = 1.0;
  ctl::JudgeOptions judge;
  kvf::ctl::WireOptions wire;
  int threads = 1;
  app.add_option("--pcap", pcap_args,
                 "capture file(s) (pcap/pcapng; Ethernet, Linux cooked, bare IP or loopback); several "
                 "files are one capture, read in the order of their first frames (rotated files); - reads "
                 "standard input")
      ->required();
  app.add_option("--server", servers,
                 "HOST:PORT of a Redis server (repeatable; a name is looked up, *:PORT is any address)")
      ->required();
  app.add_option("--format", format, "json | resp | stats")->check(CLI::IsMember({"json", "resp", "stats"}));
  app.add_flag("--rebase-time", rebase, "shift capture times so that the capture ends now");
  wire.AddTo(app);
  app.add_option("--ambiguity-window-ms", window_ms,
                 "writes to one key from two connections closer than this are flagged")
      ->check(kvf::ctl::FiniteRange(0.001, 3'600'000.0));
  judge.AddTo(app);
  app.add_option("--threads", threads,
                 "1: one thread; 2: packets+output | RESP; 3: packets | RESP | output (same output)")
      ->check(CLI::Range(1, 3));
  std::vector<std::string> argv_rev(args.rbegin(), args.rend());
  try {
    app.parse(argv_rev);
  } catch (const CLI::ParseError& e) {
    return kvf::ctl::UsageExit(app, e);
  }
  signal(SIGINT, OnDecodeSignal);
  signal(SIGTERM, OnDecodeSignal);
  dp::FlowTableConfig cfg;
  if (!wire.Apply("decode", &cfg)) return 2;
  for (const std::string& s : servers) {
    auto ep = dp::ResolveServer(s);
    if (!ep.ok()) {
      std::fprintf(stderr, "kvferryctl decode: --server %s: %s\n", s.c_str(), ep.status().message().c_str());
      return 2;
    }
    cfg.servers.insert(cfg.servers.end(), ep->begin(), ep->end());
  }
  // Standard input, a pipe (<(zcat f.gz)) or a device can be read once
  // only: alone (the order of several files is read from them first), and
  // not with --rebase-time (which reads the capture twice).
  for (const std::string& f : pcap_args) {
    struct stat st;
    if (f != "-" && ::stat(f.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::fprintf(stderr, "kvferryctl decode: --pcap %s is a directory\n", f.c_str());
      return 2;
    }
  }
  const bool one_pass = std::any_of(pcap_args.begin(), pcap_args.end(), [](const std::string& f) {
    struct stat st;
    return f == "-" || (::stat(f.c_str(), &st) == 0 && !S_ISREG(st.st_mode));
  });
  if (one_pass && (pcap_args.size() > 1 || rebase)) {
    std::fprintf(stderr,
                 "kvferryctl decode: standard input or a pipe can be read only once: give it as the "
                 "only --pcap, and without --rebase-time\n");
    return 2;
  }
  auto pcap_files = InCaptureOrder(pcap_args);
  if (!pcap_files.ok()) {
    std::fprintf(stderr, "kvferryctl decode: %s\n", pcap_files.status().ToString().c_str());
    return 1;
  }
  int64_t shift_ns = 0;
  uint64_t last_ts = 0;  // with --rebase-time: the capture's last frame
  if (rebase) {
    for (const std::string& f : *pcap_files) {
      auto last = LastTimestamp(f);
      if (last.ok()) last_ts = std::max(last_ts, *last);  // else reported when the file's turn comes
    }
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    shift_ns = now - static_cast<int64_t>(last_ts);
  }
  // The clock starts before the files are opened: mapping them is part of
  // the job. With threads, every file stays open and mapped to the end:
  // payload handed to the RESP thread by address lies in them. One thread
  // reads through a reused window instead: frames are done with before the
  // next read, and first touching mapped pages costs more than copying
  // (under a hypervisor's shadow paging, a sixth of a pipelined decode).
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<dp::PcapSource>> sources;
  std::vector<std::string> open_errors;  // of files that could not be read at all
  // The first file that opens; the others are opened when reached.
  size_t first_file = 0;
  for (; first_file < pcap_files->size(); ++first_file) {
    auto first = dp::PcapSource::OpenOffline((*pcap_files)[first_file], /*map=*/threads > 1);
    if (first.ok()) {
      sources.push_back(std::move(*first));
      break;
    }
    open_errors.push_back(first.status().ToString());
  }
  if (sources.empty()) {
    for (const std::string& e : open_errors) std::fprintf(stderr, "kvferryctl decode: %s\n", e.c_str());
    return 1;
  }
  Printer printer(format);
  resp::AmbiguityOptions ao;
  ao.window_ns = static_cast<uint64_t>(window_ms * 1e6);
  // A mirror's delay of the requests widens the window, up to what the flow
  // table waits for a delayed direction (FlowTable::RequestLagNs).
  ao.max_request_slack_ns = cfg.peer_hold_ns + cfg.peer_hold_ns / 4;
  // Between the tracker and the output, in the order the replica applies
  // records: expiries kept with the writes that keep them.
  resp::ExpiryOptions eo;
  eo.shifted_clock = shift_ns != 0;
  judge.Apply(&ao, &eo);
  // With --rebase-time the capture ends now and its output is applied now:
  // a record is at least that far behind. Without, the output does not
  // depend on when decode runs (the issue: offline, deterministic): a
  // record is as far behind as --expiry-lag-ms says.
  if (rebase) eo.apply_at_ms = (static_cast<int64_t>(last_ts) + shift_ns) / 1'000'000;
  // The keeper's read-backs go through the swaps too.
  resp::SwapReadbacks swaps(&printer, ao);
  // Edits of keys whose prior value the capture never established.
  resp::PriorKeeper priors(&swaps);
  resp::ExpiryKeeper expiries(&priors, eo);
  resp::AmbiguityTracker tracker(&expiries, ao);
  resp::ConnectionStats totals;
  Outcomes outcomes;
  // --threads 1: one loop does everything. 2: RESP (pairing, records) on a
  // second thread; this one reads packets (decode, reassembly) and, between
  // bursts, passes the records that came back through the tracker and the
  // printer: two threads of about equal work, for a two-core machine. 3:
  // packets, RESP and output each on a thread of their own. Every hand-over
  // preserves the order of calls, so the output is the same for every choice.
  std::unique_ptr<RecordPipe> records;
  std::unique_ptr<FlowEventPipe> events;
  if (threads >= 2) {
    records = std::make_unique<RecordPipe>();
    events = std::make_unique<FlowEventPipe>();
  }
  // With two threads this one fills the event pipe and drains the record
  // pipe: while the former is full it drains the latter, so neither side can
  // wait for the other forever.
  if (threads == 2) events->WhileFull([&] { return records->DrainReady(&tracker); });
  // Payload that lies in a mapped file crosses to the RESP thread by address
  // (from pcapng, read through libpcap, it is copied).
  if (events) events->AddStable(sources.front()->mapped_file());
  // One thread: the records of a burst gather in a batch that the tracker
  // then takes whole, as it does the batches that come back from the RESP
  // thread (it holds them without a copy and looks their keys up ahead).
  struct BatchSink : resp::RecordSink {
    void Emit(const RecordView& r, uint64_t connection_id) override { batch.Add(r, connection_id); }
    RecordBatch batch;
  } burst_records;
  resp::RecordSink* records_to = records ? static_cast<resp::RecordSink*>(records.get()) : &burst_records;
  Factory factory(records_to, shift_ns, &totals, format == "stats" ? &outcomes : nullptr);
  dp::FlowTable table(cfg, events ? static_cast<dp::StreamConsumerFactory*>(events.get()) : &factory);
  dp::DecodeCounters dec;
  uint64_t frames = 0, bytes = 0, server_frames_cut = 0;
  auto is_server = [&](const dp::TcpSegment& seg) {
    return std::any_of(cfg.servers.begin(), cfg.servers.end(),
                       [&](const dp::Endpoint& e) { return e.Matches(seg.src) || e.Matches(seg.dst); });
  };
  // The flow table's timeouts and the ambiguity window's clock move at
  // points fixed by the frames alone (every kTickFrames frames, or once
  // capture time moved kTickNs), not at the ends of read bursts, whose sizes
  // depend on how the file is read (a window with one thread, a mapping with
  // several), or on where rotated files end: the output is the same
  // whichever way.
  constexpr uint64_t kTickFrames = 256;
  constexpr uint64_t kTickNs = 1'000'000;
  uint64_t frames_since_tick = 0, last_tick_ns = 0, last_frame_ns = 0;
  auto tick = [&] {
    frames_since_tick = 0;
    last_tick_ns = last_frame_ns;
    table.Tick(last_frame_ns);
    // The ambiguity window's clock: not past data the flow table still
    // holds (out of order, or waiting for the other direction), which
    // comes out later with its own, older time.
    const uint64_t clock = std::min(last_frame_ns, table.OldestPendingNs());
    const uint64_t now = static_cast<uint64_t>(static_cast<int64_t>(clock) + shift_ns);
    if (events) {
      events->Advance(now, table.RequestLagNs());
    } else {
      const resp::WindowAdvance advance[] = {{burst_records.batch.size(), now, table.RequestLagNs()}};
      tracker.TakeBatch(&burst_records.batch, advance);
    }
  };
  auto packet_side = [&] {
    std::vector<dp::Packet> burst(256);
    // The files in turn, each opened when reached: with one thread a done
    // file's window and descriptor go (thousands of rotated files), with
    // threads its mapping stays, since payload in it crossed by address.
    for (size_t k = first_file; k < pcap_files->size(); ++k) {
      if (k > first_file) {
        auto next = dp::PcapSource::OpenOffline((*pcap_files)[k], /*map=*/threads > 1);
        if (!next.ok()) {
          open_errors.push_back(next.status().ToString());
          continue;
        }
        sources.push_back(std::move(*next));
        if (events) events->AddStable(sources.back()->mapped_file());
      }
      dp::PcapSource* src = sources.back().get();
      if (g_decode_interrupted.load(std::memory_order_relaxed)) break;
      while (!src->Exhausted() && !g_decode_interrupted.load(std::memory_order_relaxed)) {
        const size_t n = src->RxBurst(burst);
        for (size_t i = 0; i < n; ++i) {
          const dp::Packet& p = burst[i];
          ++frames;
          bytes += p.len;
          dp::TcpSegment seg;
          const dp::DecodeStatus st = dp::DecodeFrame(p.link, p.data, p.len, p.ts_ns, &seg);
          dec.Add(st);
          if (st == dp::DecodeStatus::kPayloadTruncated && is_server(seg)) ++server_frames_cut;
          if (dp::Reassemblable(st, seg, p.len, p.wire_len)) table.Process(seg);
          last_frame_ns = p.ts_ns;
          if (++frames_since_tick == kTickFrames || last_frame_ns >= last_tick_ns + kTickNs) tick();
        }
        if (threads == 2) records->DrainReady(&tracker);
      }
      src->ReleaseBuffers();
    }
    table.CloseAll(dp::CloseReason::kShutdown);
    if (events) events->Close();
    if (!events) tracker.TakeBatch(&burst_records.batch);
  };
  if (threads == 1) {
    packet_side();
  } else {
    std::thread resp_side([&] {
      events->Drain(&factory, records.get());
      records->Close();
    });
    if (threads == 2) {
      packet_side();
      records->Drain(&tracker);
    } else {
      std::thread packets(packet_side);
      records->Drain(&tracker);
      packets.join();
    }
    resp_side.join();
  }
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
    // Frames not decoded to a TCP segment, by reason (capture's decode_*).
    for (size_t i = 1; i < dec.by_status.size(); ++i) {
      if (dec.by_status[i] == 0) continue;
      std::printf("decode %s %llu\n",
                  std::string(dp::DecodeStatusName(static_cast<dp::DecodeStatus>(i))).c_str(),
                  (unsigned long long)dec.by_status[i]);
    }
    std::printf("records %llu flagged %llu ambiguous %llu unknown_db %llu readbacks %llu\n",
                (unsigned long long)printer.records(), (unsigned long long)printer.flagged(),
                (unsigned long long)tracker.stats().ambiguous, (unsigned long long)printer.unknown_db(),
                (unsigned long long)printer.readbacks());
    std::printf(
        "ambiguity long_spans %llu long_checked %llu late_partner %llu keys_evicted %llu holds_expired "
        "%llu request_slack_us %llu late_unchecked %llu\n",
        (unsigned long long)tracker.stats().long_spans, (unsigned long long)tracker.stats().long_checked,
        (unsigned long long)tracker.stats().late_partner, (unsigned long long)tracker.stats().keys_evicted,
        (unsigned long long)tracker.stats().holds_expired,
        (unsigned long long)(tracker.stats().request_slack_ns / 1000),
        (unsigned long long)tracker.stats().late_unchecked);
    std::printf("expiry restored %llu doubted %llu doubted_all %llu untracked %llu doubted_untracked %llu\n",
                (unsigned long long)expiries.stats().restored, (unsigned long long)expiries.stats().doubted,
                (unsigned long long)expiries.stats().doubted_all,
                (unsigned long long)expiries.stats().untracked,
                (unsigned long long)expiries.stats().doubted_untracked);
    std::printf("prior unknown %llu forgotten %llu untracked %llu\n",
                (unsigned long long)priors.stats().flagged, (unsigned long long)priors.stats().forgotten,
                (unsigned long long)priors.stats().untracked);
    for (size_t op = 1; op <= 4; ++op) {
      std::printf("op %s %llu\n", std::string(RecordOpName(static_cast<RecordOp>(op))).c_str(),
                  (unsigned long long)printer.per_op()[op]);
    }
    for (const auto& [c, v] : printer.per_command())
      std::printf("record_command %s %llu flagged=%llu\n", c.c_str(), (unsigned long long)v.records,
                  (unsigned long long)v.flagged);
    // Per captured command: its outcomes, then the records it gave and how
    // many of those were flagged (after every stage: the window's, the
    // expiry keeper's…).
    auto rows = outcomes.counts();
    const auto by_source = printer.PerSource();
    for (const auto& [c, count] : by_source) rows.try_emplace(c);
    for (const auto& [c, row] : rows) {
      std::printf("command %s", c.c_str());
      for (size_t i = 0; i < row.size(); ++i) {
        std::printf(" %s=%llu", std::string(resp::OutcomeName(static_cast<resp::Outcome>(i))).c_str(),
                    (unsigned long long)row[i]);
      }
      const auto it = by_source.find(c);
      const Printer::CommandCount count = it != by_source.end() ? it->second : Printer::CommandCount{};
      std::printf(" records=%llu flagged=%llu\n", (unsigned long long)count.records,
                  (unsigned long long)count.flagged);
    }
  } else {
    std::fprintf(
        stderr, "kvferryctl decode: %llu records (%llu flagged, %llu read-backs %s), %llu requests, %.3f s\n",
        (unsigned long long)printer.records(), (unsigned long long)printer.flagged(),
        (unsigned long long)printer.readbacks(),
        format == "resp" ? "left out: offline there is no source to read from" : "listed",
        (unsigned long long)totals.requests, secs);
  }
  // What an operator would otherwise puzzle over: nothing matched --server,
  // or the connections were encrypted. A --server that matches none of the
  // capture's TCP traffic is a mistake a script must see (decode | redis-cli
  // --pipe would load nothing): the exit status says so.
  // (Or no frame could be read as TCP at all. Segments that reached the
  // server and opened no flow, keepalives of a quiet period, are no mistake.)
  // A capture without a frame (tcpdump on the wrong interface, or stopped
  // at once) is one too: capture --pcap fails on it as well (a review).
  const bool missed_server = table.stats().flows_created == 0 &&
                             (table.stats().segments_not_for_server > 0 || frames == 0 || dec.decoded() == 0);
  if (frames == 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: the capture holds no frame: was it taken on the right interface?\n");
  } else if (table.stats().flows_created == 0) {
    std::string names;
    for (const dp::Endpoint& e : cfg.servers) names += (names.empty() ? "" : ", ") + e.ToString();
    std::fprintf(stderr,
                 "kvferryctl decode: no connection to %s in the capture (%llu TCP segments were to or from "
                 "other endpoints; check --server)\n",
                 names.c_str(), (unsigned long long)table.stats().segments_not_for_server);
  }
  if (table.stats().flows_created > 0 && table.stats().segments_server_port_elsewhere > 0) {
    // Connections to the server's port at another address: the same server
    // over ::1 or another interface (a review: a client of localhost over
    // IPv6 was skipped without a word), or another server.
    std::string names;
    for (const dp::Endpoint& e : table.server_port_elsewhere())
      names += (names.empty() ? "" : ", ") + e.ToString();
    std::fprintf(stderr,
                 "kvferryctl decode: %llu TCP segment(s) to or from %s%s were not decoded: not a --server "
                 "address; if that is the same server under another address, add it (--server '*:PORT' "
                 "takes every address)\n",
                 (unsigned long long)table.stats().segments_server_port_elsewhere, names.c_str(),
                 table.server_port_elsewhere_more() ? ", …" : "");
  }
  if (factory.servers_seen_.size() > 1) {
    // One stream of records (one keyspace, one ambiguity window): right for
    // one server under several addresses, or a master and its replicas
    // followed across failovers; wrong for several servers.
    std::string names;
    for (const std::string& n : factory.servers_seen_) names += (names.empty() ? "" : ", ") + n;
    std::fprintf(stderr,
                 "kvferryctl decode: connections to %s%s were decoded as one server's: right for one "
                 "server under several addresses, or for a master and its replicas whose failovers the "
                 "capture holds (Sentinel: give every node, so the records follow the master); if these "
                 "are different servers, decode each with its own --server (their records would otherwise "
                 "replay into one dataset)\n",
                 names.c_str(), factory.servers_seen_.size() == Factory::kServersNamed ? ", …" : "");
  }
  {
    // Frames that may have carried the connections but could not be read as
    // TCP: a mirror's fragments (an outer IP packet of VXLAN or ERSPAN
    // fragmented on the way), more tags or tunnels than are peeled, damaged
    // headers. Not ARP, ICMP or other UDP: any capture has those.
    std::string reasons;
    uint64_t n = 0;
    for (size_t i = 1; i < dec.by_status.size(); ++i) {
      const auto st = static_cast<dp::DecodeStatus>(i);
      if (dec.by_status[i] == 0 || st == dp::DecodeStatus::kUnsupportedEthertype ||
          st == dp::DecodeStatus::kUnsupportedTransport || st == dp::DecodeStatus::kPayloadTruncated)
        continue;
      n += dec.by_status[i];
      reasons += (reasons.empty() ? "" : ", ") + std::string(dp::DecodeStatusName(st)) + " " +
                 std::to_string(dec.by_status[i]);
    }
    if (n > 0) {
      std::fprintf(stderr,
                   "kvferryctl decode: %llu frame(s) could not be decoded as TCP (%s): if they carried "
                   "the connections' traffic, that is missing%s\n",
                   (unsigned long long)n, reasons.c_str(),
                   dec.Get(dp::DecodeStatus::kIpv4Fragment) + dec.Get(dp::DecodeStatus::kIpv6Fragment) > 0
                       ? " (IP fragments are not reassembled: a mirror tunnel needs an MTU that fits the "
                         "mirrored frames)"
                       : "");
    }
  }
  if (server_frames_cut > 0) {
    std::fprintf(
        stderr,
        "kvferryctl decode: %llu frames to or from --server were cut short by the capture's snap length: "
        "what each lost is a gap, and a write it cut is read back if its name and keys were captured "
        "(capture with tcpdump -s 0)\n",
        (unsigned long long)server_frames_cut);
  }
  if (table.stats().duplicate_flows > 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: %llu connection(s) were seen twice, under other addresses (a capture "
                 "before and after NAT): each was decoded once\n",
                 (unsigned long long)table.stats().duplicate_flows);
  }
  if (table.stats().closed_flows_seen_again > 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: %llu connection(s) came again whole after they closed, with the same "
                 "sequence numbers (captures of the same traffic merged, whose clocks differ; interfaces "
                 "written out of time order): each was decoded once\n",
                 (unsigned long long)table.stats().closed_flows_seen_again);
  }
  if (table.stats().gaps > 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: the capture misses %llu bytes of the connections in %llu place(s) "
                 "(packets the capture or the mirror dropped: tcpdump says how many it dropped; -B "
                 "131072 gives it a larger buffer): the records around each hole are flagged, and a "
                 "write a hole cut is read back when its name and keys came before it, but a write "
                 "whose request fell wholly in one, or whose keys did, is not seen at all (no record "
                 "names its key; only a consistency check finds it)\n",
                 (unsigned long long)table.stats().gap_bytes, (unsigned long long)table.stats().gaps);
    if (const uint64_t late = table.stats().gap_bytes_came_late;
        late > 0 && table.stats().gap_came_late_max_ns <= kMirrorDelayNs) {
      // Not lost: held too briefly. A mirror that delays one direction
      // (two SPAN sources, a tunnel per direction) brings a request after
      // its reply; past the hold, its bytes are a hole, then a duplicate.
      const double late_ms = static_cast<double>(table.stats().gap_came_late_max_ns) / 1e6;
      std::fprintf(stderr,
                   "kvferryctl decode: %llu of those bytes were in the capture after all, up to %.1f ms "
                   "after their hole was declared: the mirror delays one direction more than "
                   "--reorder-window-ms (%.1f ms) waits; decode again with --reorder-window-ms %.0f\n",
                   (unsigned long long)late, late_ms, static_cast<double>(cfg.peer_hold_ns) / 1e6,
                   std::ceil(static_cast<double>(cfg.peer_hold_ns) / 1e6 + late_ms) + 1);
    } else if (late > 0) {
      // Far later: a retransmission after a loss on the way to the mirror
      // point, which the gap timeout did not wait for; no hold helps.
      std::fprintf(stderr,
                   "kvferryctl decode: %llu of those bytes came later after all, up to %.0f ms after "
                   "their hole was declared: retransmitted after a loss the mirror saw too\n",
                   (unsigned long long)late, static_cast<double>(table.stats().gap_came_late_max_ns) / 1e6);
    }
  }
  if (const uint64_t expired = table.stats().rst_waits_expired; expired > 0) {
    // (Bytes that come after such a close count as segments after close,
    // not as late bytes of a hole: a review found decode blaming drops.)
    std::fprintf(stderr,
                 "kvferryctl decode: %llu connection(s) reset while bytes of the other direction they "
                 "acknowledged were not captured yet, and closed after waiting --reorder-window-ms "
                 "(%.1f ms) for them: if the mirror delays one direction, decode again with a larger "
                 "--reorder-window-ms\n",
                 (unsigned long long)expired, static_cast<double>(cfg.peer_hold_ns) / 1e6);
  }
  for (const std::string& note : factory.names_.Notes(totals, cfg.servers))
    std::fprintf(stderr, "kvferryctl decode: %s\n", note.c_str());
  factory.failovers_.Report(8);
  if (totals.db_proven_by_server > 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: %llu connection(s) had their db settled by CLIENT LIST replies in the "
                 "capture\n",
                 (unsigned long long)totals.db_proven_by_server);
  }
  if (printer.database_doubts() > 0) {
    // A review: two SWAPDBs answered close together were flagged, and the
    // keys they left permuted were named by no other record.
    std::fprintf(stderr,
                 "kvferryctl decode: %llu database-wide record(s) (FLUSHDB, FLUSHALL, SWAPDB, FUNCTION) are "
                 "flagged: they name no key, and every key of the dbs they change may differ on a replica "
                 "(two of them answered close together may have run in either order); verify those dbs "
                 "whole against the source (the libraries, for FUNCTION)\n",
                 (unsigned long long)printer.database_doubts());
  }
  if (printer.unknown_db() > 0) {
    std::fprintf(stderr,
                 "kvferryctl decode: %llu record(s) carry a guessed db (unknown_db): their connections were "
                 "open before the capture started, lost client bytes where a SELECT may have been, or sent "
                 "a SELECT whose answer never came (replies off, or the connection closed first); "
                 "`redis-cli client list`, run every few seconds while tcpdump captures, settles the db of "
                 "each connection active 100 ms before a run; a live capture can ask the server itself "
                 "(capture --resolve-db)\n",
                 (unsigned long long)printer.unknown_db());
  }
  // A damaged file (a truncated or corrupt record) ends that file's read
  // early: what came before it was decoded and printed, the next file (if
  // any) is read as usual (its flows see a gap), and the exit status says so.
  bool damaged = !open_errors.empty();
  for (const std::string& e : open_errors) std::fprintf(stderr, "kvferryctl decode: %s\n", e.c_str());
  for (const auto& src : sources) {
    if (src->error().ok()) continue;
    std::fprintf(stderr, "kvferryctl decode: %s: %s\n", src->Describe().c_str(),
                 src->error().ToString().c_str());
    damaged = true;
  }
  if (g_decode_interrupted.load()) {
    std::fprintf(stderr,
                 "kvferryctl decode: interrupted after %llu frame(s): their records were written whole, the "
                 "connections still open ended as at a capture's end; the rest was not read\n",
                 (unsigned long long)frames);
    return 130;
  }
  if (damaged || missed_server) return 1;
  return 0;
}

}  // namespace

KVF_CTL_COMMAND("decode", "decode a pcap of Redis traffic into change records (json | resp | stats)",
                RunDecode);
