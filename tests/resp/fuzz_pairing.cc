// Fuzz target for pairing + conversion: the input is a sequence of events
// [op][len][bytes…]; op bit 0 = direction, bit 1 = a gap before the data,
// bit 2 = close and reopen. Oracle: no crash, bounded pending state, bounded
// ambiguity tracker and script cache, no record is ever a command that can
// carry a password (AUTH, HELLO, MIGRATE), and no record is an EVALSHA (it is
// shipped as EVAL or read back). Records are recycled through a RecordPool.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "resp/ambiguity.h"
#include "resp/command_table.h"
#include "resp/connection.h"
#include "resp/script_cache.h"

namespace {

class CheckingSink : public kvf::resp::RecordSink {
 public:
  explicit CheckingSink(kvf::resp::RecordPool* pool) : pool_(pool) {}
  void Emit(kvf::ChangeRecord&& r, uint64_t) override {
    ++count;
    if (!r.args.empty() &&
        (kvf::resp::EqualsIgnoreCase(r.args[0], "auth") || kvf::resp::EqualsIgnoreCase(r.args[0], "hello") ||
         kvf::resp::EqualsIgnoreCase(r.args[0], "migrate") ||
         kvf::resp::EqualsIgnoreCase(r.args[0], "evalsha"))) {
      std::abort();
    }
    if (r.op == kvf::RecordOp::kReadback && !r.args.empty()) std::abort();  // recycled args must not leak
    pool_->Give(std::move(r));
  }
  uint64_t count = 0;

 private:
  kvf::resp::RecordPool* pool_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kvf::resp::RecordPool pool(64);
  CheckingSink sink(&pool);
  kvf::resp::AmbiguityTracker tracker(&sink, {.window_ns = 5000, .max_keys = 8, .max_held = 16});
  kvf::resp::ScriptCache scripts({.max_scripts = 4, .max_bytes = 256});
  kvf::resp::ConnectionOptions o;
  o.scripts = &scripts;
  o.pool = &pool;
  o.max_pending_requests = 64;
  o.max_pending_bytes = 1 << 16;
  o.request_limits.max_message_bytes = 1 << 16;
  o.reply_limits.max_message_bytes = 1 << 16;
  o.joined_mid_stream = size > 0 && (data[0] & 0x80);
  auto conn = std::make_unique<kvf::resp::Connection>(&tracker, o);
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
      conn = std::make_unique<kvf::resp::Connection>(&tracker, o);
    }
    ts += 1000 * (op >> 3);
    conn->OnData(dir, kvf::ByteSpan(data + i, len), ts);
    i += len;
    if (tracker.held() > 16 || tracker.tracked_keys() > 8 || scripts.size() > 4 || scripts.bytes() > 256) {
      std::abort();
    }
  }
  conn->OnClose(kvf::resp::CloseReason::kCaptureEnd);
  tracker.Flush();
  return 0;
}
