// Fuzz target for pairing + conversion: the input is a sequence of events
// [op][len][bytes…]; op bit 0 = direction, bit 1 = a gap before the data,
// bit 2 = close and reopen. Oracle: no crash, bounded pending state, and no
// record is ever a command that can carry a password (AUTH, HELLO, MIGRATE).
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "resp/ambiguity.h"
#include "resp/command_table.h"
#include "resp/connection.h"

namespace {

class CheckingSink : public kvf::resp::RecordSink {
 public:
  void Emit(kvf::ChangeRecord&& r, uint64_t) override {
    ++count;
    if (r.args.empty()) return;
    if (kvf::resp::EqualsIgnoreCase(r.args[0], "auth") || kvf::resp::EqualsIgnoreCase(r.args[0], "hello") ||
        kvf::resp::EqualsIgnoreCase(r.args[0], "migrate")) {
      std::abort();
    }
  }
  uint64_t count = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckingSink sink;
  kvf::resp::AmbiguityTracker tracker(&sink, {});
  kvf::resp::ConnectionOptions o;
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
  }
  conn->OnClose(kvf::resp::CloseReason::kCaptureEnd);
  tracker.Flush();
  return 0;
}
