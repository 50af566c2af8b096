// Fuzz target for pairing + conversion: the input is a sequence of events
// [op][len][bytes…]; op bit 0 = direction, bit 1 = a gap before the data,
// bit 2 = close and reopen. Oracle: no crash, bounded pending state, bounded
// ambiguity tracker and script cache, no record is ever a command that can
// carry a password (AUTH, HELLO, MIGRATE), and no record is an EVALSHA (it is
// shipped as EVAL or read back). The records pass through the ambiguity
// tracker, whose output must be its input in the same order, byte for byte,
// with at most the ambiguity flags added; the connection's kHold markers
// alternate HOLD and RELEASE, end released at every close, and never leave
// the tracker.
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string_view>

#include "resp/ambiguity.h"
#include "resp/expiry.h"
#include "resp/client_list.h"
#include "resp/command_table.h"
#include "resp/connection.h"
#include "resp/script_cache.h"

namespace {

bool IsForbidden(std::string_view name) {
  return kvf::resp::EqualsIgnoreCase(name, "auth") || kvf::resp::EqualsIgnoreCase(name, "hello") ||
         kvf::resp::EqualsIgnoreCase(name, "migrate") || kvf::resp::EqualsIgnoreCase(name, "evalsha");
}

// Between the connection and the tracker: checks each record and remembers
// an owning copy of it.
class Tee : public kvf::resp::RecordSink {
 public:
  Tee(kvf::resp::RecordSink* next, std::deque<kvf::ChangeRecord>* expected)
      : next_(next), expected_(expected) {}
  void Emit(const kvf::RecordView& r, uint64_t id) override {
    if (r.op == kvf::RecordOp::kHold) {
      // The tracker takes it: it never comes out. A RELEASE ends a hold; a
      // HOLD starts one, or moves it to another write (the one before was
      // answered while a later one waits), never to the same one.
      if (r.args.size() != 1 || (r.args[0] != "HOLD") == (r.args[0] != "RELEASE")) std::abort();
      const bool is_hold = r.args[0] == "HOLD";
      if (is_hold ? hold && r.request_ns == hold_from_ : !hold) std::abort();
      hold = is_hold;
      hold_from_ = is_hold ? r.request_ns : 0;
      next_->Emit(r, id);
      return;
    }
    if (!r.args.empty() && IsForbidden(r.args[0])) std::abort();
    if (r.op == kvf::RecordOp::kReadback && !r.args.empty()) std::abort();
    expected_->push_back(r.ToRecord());
    next_->Emit(r, id);
  }
  bool hold = false;  // announced (kHold) and not released

 private:
  uint64_t hold_from_ = 0;  // the held write's request time
  kvf::resp::RecordSink* next_;
  std::deque<kvf::ChangeRecord>* expected_;
};

// After the tracker and the stages behind it: every record must be the
// oldest one not yet seen, or one those stages add right after a record of
// its key (a restored expiry; a read-back in the other db of a SWAPDB).
class CheckingSink : public kvf::resp::RecordSink {
 public:
  explicit CheckingSink(std::deque<kvf::ChangeRecord>* expected) : expected_(expected) {}
  void Emit(const kvf::RecordView& r, uint64_t) override {
    kvf::ChangeRecord got = r.ToRecord();
    // SET … KEEPTTL with its restored expiry in place: SET … PXAT.
    if (!expected_->empty() && got.args.size() == 5 && got.args[0] == "SET" && got.args[3] == "PXAT") {
      const kvf::ChangeRecord& want = expected_->front();
      if (want.args.size() == 4 && want.args[0] == "SET" && want.args[3] == "KEEPTTL" &&
          want.args[1] == got.args[1] && want.args[2] == got.args[2]) {
        got.args = want.args;
        ++folded;
      }
    }
    if (expected_->empty() || !Matches(got, expected_->front())) {
      const bool restore = got.op == kvf::RecordOp::kIdempotent && got.args.size() == 3 &&
                           got.args[0] == "PEXPIREAT" && got.key == last_key_ && got.args[1] == got.key;
      const bool swap_readback =
          got.op == kvf::RecordOp::kReadback && got.args.empty() && got.flags == kvf::kNeedsReadback;
      if (!restore && !swap_readback) std::abort();
      ++added;
      return;
    }
    last_key_ = got.key;
    expected_->pop_front();
  }
  uint64_t added = 0;
  uint64_t folded = 0;

 private:
  static bool Matches(kvf::ChangeRecord got, const kvf::ChangeRecord& want) {
    constexpr uint16_t kAdded = kvf::kAmbiguousOrder | kvf::kNeedsReadback;
    if ((got.flags & ~kAdded) != (want.flags & ~kAdded) || (got.flags & want.flags) != want.flags)
      return false;
    got.flags = want.flags;
    return got == want;
  }
  std::deque<kvf::ChangeRecord>* expected_;
  std::string last_key_;
};

// CLIENT LIST replies the connection pairs: parsed as capture does.
class ClientLists : public kvf::resp::ClientListObserver {
 public:
  void OnClientList(std::string_view text, uint64_t request_ns, uint64_t reply_ns) override {
    if (reply_ns < request_ns) std::abort();
    const kvf::resp::ClientList list = kvf::resp::ParseClientList(text, {.max_entries = 8});
    if (list.entries.size() > 8) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::deque<kvf::ChangeRecord> expected;
  CheckingSink sink(&expected);
  const kvf::resp::AmbiguityOptions ao{
      .window_ns = 5000, .max_keys = 8, .max_held = 16, .max_held_bytes = 600};
  kvf::resp::SwapReadbacks swaps(&sink, ao);
  kvf::resp::ExpiryKeeper expiries(&swaps, {.max_keys = 4});
  kvf::resp::AmbiguityTracker tracker(&expiries, ao);
  Tee tee(&tracker, &expected);
  kvf::resp::ScriptCache scripts({.max_scripts = 4, .max_bytes = 256});
  ClientLists lists;
  kvf::resp::ConnectionOptions o;
  o.scripts = &scripts;
  o.client_lists = &lists;
  o.max_pending_requests = 64;
  o.max_pending_bytes = 1 << 16;
  o.announce_holds = true;
  // Small, so that elided bulks (values too large to hold) are explored.
  o.request_limits.max_message_bytes = 700;
  o.reply_limits.max_message_bytes = 700;
  // And requests past the element limit (their tails skipped), replies past it.
  o.request_limits.max_elements = o.reply_limits.max_elements = 12;
  o.joined_mid_stream = size > 0 && (data[0] & 0x80);
  auto conn = std::make_unique<kvf::resp::Connection>(&tee, o);
  uint64_t ts = 1'000'000'000;
  size_t i = 0;
  while (i + 2 <= size) {
    const uint8_t op = data[i];
    size_t len = data[i + 1];
    i += 2;
    len = std::min(len, size - i);
    const auto dir = (op & 1) ? kvf::resp::Direction::kServerToClient : kvf::resp::Direction::kClientToServer;
    if (op & 2) conn->OnGap(dir, len);
    if (op & 4) {
      conn->OnClose(kvf::resp::CloseReason::kFin);
      if (tee.hold) std::abort();  // nothing waits after a close
      conn = std::make_unique<kvf::resp::Connection>(&tee, o);
    }
    // Now and then a FIN of that direction (the server's: what follows never runs).
    if ((op & 0x78) == 0x70) conn->OnFin(dir);
    ts += 1000 * (op >> 3);
    conn->OnData(dir, kvf::ByteSpan(data + i, len), ts);
    i += len;
    // Now and then the server's answer on the db (capture --resolve-db):
    // taken only when the db is unknown, and then it is the db.
    if ((op & 0x78) == 0x78 && i > 0) {
      const bool unknown = !conn->db_known();
      const uint16_t db = data[i - 1] & 15;
      const uint64_t asked = ts - (data[i - 1] & 0x80 ? 5000 : 0);
      if (conn->ProveDb(db, asked, asked + (data[i - 1] & 0x40 ? 2000 : 0)) &&
          (!unknown || !conn->db_known() || conn->db() != db))
        std::abort();
    }
    if (tracker.held() > 16 || tracker.held_bytes() > 600 || tracker.tracked_keys() > 8 ||
        scripts.size() > 4 || scripts.bytes() > 256 || expected.size() > 17) {
      std::abort();
    }
  }
  conn->OnClose(kvf::resp::CloseReason::kCaptureEnd);
  if (tee.hold) std::abort();
  tracker.Flush();
  if (!expected.empty()) std::abort();
  if (sink.added + sink.folded != expiries.stats().restored + swaps.added() || expiries.tracked_keys() > 4)
    std::abort();
  return 0;
}
