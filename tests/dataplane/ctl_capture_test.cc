// `kvferryctl capture --pcap`: the operator's view of a capture file with a
// known loss: the json totals name the flows, the delivered payload and the
// exact gap. Skips when kvferryctl has not been built in this build tree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/dataplane/pcap_writer.h"

namespace {

namespace tb = kvf::testing;

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

// The built kvferryctl: $KVF_BINARY_DIR/ctl/kvferryctl when set, else next to
// this binary's build tree (<build>/tests/dataplane/../../ctl).
std::string CtlPath() {
  std::string bin_dir;
  if (const char* env = std::getenv("KVF_BINARY_DIR"); env != nullptr) {
    bin_dir = env;
  } else {
    char self[4096];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) return "";
    const std::string exe(self, static_cast<size_t>(n));
    bin_dir = exe.substr(0, exe.rfind('/')) + "/../..";
  }
  return bin_dir + "/ctl/kvferryctl";
}

TEST(CtlCaptureTest, OfflineJsonTotalsShowFlowsAndExactGaps) {
  const std::string ctl = CtlPath();
  if (access(ctl.c_str(), X_OK) != 0) GTEST_SKIP() << "kvferryctl not built at " << ctl;

  std::vector<tb::TimedFrame> frames;
  uint64_t ts = 1'700'000'000'000'000'000ull;
  auto add = [&](uint16_t cport, bool c2s, uint32_t seq, uint8_t flags, std::string payload) {
    frames.push_back(tb::ClientServerFrame(cport, c2s, seq, flags, std::move(payload), ts));
    ts += 400'000'000;  // 0.4 s apart: the file spans several capture seconds
  };
  for (uint16_t port : {41000, 41001}) {
    add(port, true, 99, tb::kTcpSyn, "");
    add(port, false, 499, tb::kTcpSyn | tb::kTcpAck, "");
    add(port, true, 100, tb::kTcpAck, "0123456789");
    if (port == 41001) add(port, true, 117, tb::kTcpAck, "HIJ");  // 110..116 never captured
    add(port, true, port == 41001 ? 120 : 110, tb::kTcpFin | tb::kTcpAck, "");
    add(port, false, 500, tb::kTcpFin | tb::kTcpAck, "");
  }
  {
    tb::TcpSpec other;  // a connection to another service: ignored
    other.sport = 5555;
    other.dport = 7000;
    other.payload = "elsewhere";
    frames.push_back({tb::TcpFrame("10.0.0.1", "10.0.0.2", other), ts});
  }
  const std::string path =
      std::string(::testing::TempDir()) + "kvf_ctl_capture_" + std::to_string(getpid()) + ".pcap";
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err)) << err;

  const std::string out = Shell(ctl + " capture --pcap " + path + " --server 10.0.0.2:6379 --format json");
  std::remove(path.c_str());
  const size_t last = out.rfind("{\"at\":\"total\"");
  ASSERT_NE(last, std::string::npos) << out;
  const nlohmann::json total = nlohmann::json::parse(out.substr(last));
  const nlohmann::json& t = total["totals"];
  EXPECT_EQ(t["frames_received"], frames.size());
  EXPECT_EQ(t["flows_created"], 2);
  EXPECT_EQ(t["flows_closed_fin"], 2);
  EXPECT_EQ(t["payload_bytes_delivered"], 10 + 10 + 3);
  EXPECT_EQ(t["gaps"], 1);
  EXPECT_EQ(t["gap_bytes"], 7);
  EXPECT_EQ(t["segments_not_for_server"], 1);
  EXPECT_EQ(t["decode_failures"], 0);
  // One line per capture second before the total.
  size_t lines = 0;
  for (char c : out) lines += c == '\n';
  EXPECT_GE(lines, 4u);
}

// A capture file cut in the middle of a record (a copy interrupted, a disk
// full): decode prints the records read before the damage, names the damage
// on stderr and exits non-zero, on one thread and on three.
TEST(CtlCaptureTest, DecodeOfATruncatedPcapReportsTheDamage) {
  const std::string ctl = CtlPath();
  if (access(ctl.c_str(), X_OK) != 0) GTEST_SKIP() << "kvferryctl not built at " << ctl;
  std::vector<tb::TimedFrame> frames;
  uint64_t ts = 1'700'000'000'000'000'000ull;
  auto add = [&](bool c2s, uint32_t seq, uint8_t flags, std::string payload) {
    frames.push_back(tb::ClientServerFrame(41000, c2s, seq, flags, std::move(payload), ts += 1000));
  };
  add(true, 99, tb::kTcpSyn, "");
  add(false, 499, tb::kTcpSyn | tb::kTcpAck, "");
  const std::string set1 = "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n";
  const std::string set2 = "*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$1\r\nv\r\n";
  add(true, 100, tb::kTcpAck, set1);
  add(false, 500, tb::kTcpAck, "+OK\r\n");
  add(true, 100 + static_cast<uint32_t>(set1.size()), tb::kTcpAck, set2);
  add(false, 505, tb::kTcpAck, "+OK\r\n");
  const std::string path =
      std::string(::testing::TempDir()) + "kvf_ctl_truncated_" + std::to_string(getpid()) + ".pcap";
  std::string err;
  ASSERT_TRUE(tb::WritePcap(path, frames, &err)) << err;
  // Cut the file 20 bytes into the last frame's data.
  FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fclose(f);
  const long cut = size - static_cast<long>(frames.back().bytes.size()) + 20;
  ASSERT_EQ(truncate(path.c_str(), cut), 0);
  for (const char* threads : {"1", "3"}) {
    const std::string cmd = ctl + " decode --pcap " + path +
                            " --server 10.0.0.2:6379 --format json --threads " + threads +
                            " 2>&1; echo \"rc=$?\"";
    const std::string out = Shell(cmd);
    EXPECT_NE(out.find("\"key\":\"k1\""), std::string::npos) << out;  // the record before the damage
    // SET k2's reply was in the cut frame: its outcome is unknown, so k2 is read back.
    EXPECT_NE(out.find("\"key\":\"k2\",\"op\":\"readback\""), std::string::npos) << out;
    EXPECT_NE(out.find("truncated record"), std::string::npos) << out;
    EXPECT_NE(out.find("rc=1"), std::string::npos) << out;
  }
  std::remove(path.c_str());
}

}  // namespace
