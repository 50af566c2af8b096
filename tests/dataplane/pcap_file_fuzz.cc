// Fuzz target over the capture file reader (PcapSource::OpenOffline): the
// input is a whole file. It is read twice, mapped and through the reused
// window, in bursts of varied sizes; both readings must hand out the same
// frames (bytes, wire lengths, timestamps, link type) and end the same way
// (the same error, or none); the window is filled by short reads (a size
// taken from the input's last byte), so records straddle its edge. Each frame is then decoded for its link
// type, so cut and garbled frames reach every link-layer decoder.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "dataplane/decode.h"
#include "dataplane/pcap_source.h"

namespace {

using namespace kvf::dataplane;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Reading {
  bool opened = false;
  std::string error;
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint64_t> meta;  // ts, wire length, link type per frame
};

Reading Read(const std::string& path, bool map, size_t read_cap) {
  Reading r;
  auto src = PcapSource::OpenOffline(path, map);
  if (!src.ok()) {
    r.error = src.status().ToString();
    return r;
  }
  r.opened = true;
  // Short reads, so that records straddle the window's edge in small inputs.
  (*src)->set_read_cap_for_testing(read_cap);
  Packet burst[7];
  size_t want = 1;
  while (!(*src)->Exhausted()) {
    const size_t n = (*src)->RxBurst(std::span<Packet>(burst, want));
    want = want % 7 + 1;
    for (size_t i = 0; i < n; ++i) {
      const Packet& p = burst[i];
      Check(p.len <= PcapSource::kMaxFrameBytes);
      r.frames.emplace_back(p.data, p.data + p.len);
      r.meta.insert(r.meta.end(), {p.ts_ns, p.wire_len, static_cast<uint64_t>(p.link)});
      TcpSegment seg;
      if (DecodeFrame(p.link, p.data, p.len, p.ts_ns, &seg) == DecodeStatus::kOk) {
        Check(seg.payload_len <= p.len &&
              (seg.payload_len == 0 ||
               (seg.payload >= p.data && seg.payload + seg.payload_len <= p.data + p.len)));
      }
    }
  }
  r.error = (*src)->error().ToString();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One in-memory file, rewritten for every input; opened by path as a
  // capture file is.
  static const int fd = memfd_create("kvf-pcap-fuzz", 0);
  Check(fd >= 0);
  Check(ftruncate(fd, 0) == 0);
  size_t done = 0;
  while (done < size) {
    const ssize_t w = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    Check(w > 0);
    done += static_cast<size_t>(w);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  const Reading mapped = Read(path, true, SIZE_MAX);
  const Reading window = Read(path, false, size > 0 ? 1 + data[size - 1] % 211 : 1);
  Check(mapped.opened == window.opened);
  Check(mapped.error == window.error);
  Check(mapped.frames == window.frames);
  Check(mapped.meta == window.meta);
  return 0;
}
