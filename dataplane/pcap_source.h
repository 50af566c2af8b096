// The pcap capture backend: offline files and live interfaces (libpcap),
// delivering Packet bursts through PacketSource. Classic pcap files are
// memory-mapped and read in place (zero copy); pcapng files and live captures
// go through libpcap, whose frames are copied into a burst arena owned by the
// source because libpcap reuses its buffer on every read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "dataplane/packet.h"

typedef struct pcap pcap_t;
struct pcap_pkthdr;

namespace kvf::dataplane {

struct PcapLiveOptions {
  std::string iface;
  // Whole frames: a loopback frame reaches 65,549 bytes (a 64 KiB MTU plus
  // headers), a GRO'd or offloaded one more; a cut frame is a gap. 262,144 is
  // libpcap's largest, what `tcpdump -s 0` asks for.
  int snaplen = 262144;
  bool promiscuous = true;
  int poll_timeout_ms = 50;  // RxBurst returns 0 after this long without frames
  int kernel_buffer_bytes = 64 << 20;
  std::string bpf_filter;  // optional kernel filter, e.g. "tcp port 6379"
};

class PcapSource final : public PacketSource {
 public:
  // Bytes of the burst arena: a burst ends early when it is full.
  // It holds 64 frames at the default snap length.
  static constexpr size_t kArenaBytes = 16 << 20;
  // Largest record accepted from a file (libpcap's own limit).
  static constexpr size_t kMaxFrameBytes = 262144;
  // Window of a classic file read without mapping: 1 MiB stays in the
  // second-level cache, and holds the largest record.
  static constexpr size_t kWindowBytes = 1u << 20;
  static_assert(kWindowBytes >= 16 + kMaxFrameBytes);

  // A classic pcap or pcapng file; "-" reads one from standard input
  // (`tcpdump -w - | kvferryctl decode --pcap -`). A classic file is mapped
  // (`map`: frames stay valid as long as the source, see mapped_file()) or
  // read through one reused window (frames valid until the next RxBurst;
  // cheaper where first touching mapped pages is dear, as under a
  // hypervisor's shadow paging).
  static Result<std::unique_ptr<PcapSource>> OpenOffline(const std::string& path, bool map = true);
  static Result<std::unique_ptr<PcapSource>> OpenLive(const PcapLiveOptions& options);
  ~PcapSource() override;

  size_t RxBurst(std::span<Packet> out) override;
  bool Exhausted() const override { return exhausted_; }
  CaptureStats Stats() const override;
  std::string Describe() const override { return description_; }
  // Link type of the capture's frames (every Packet carries it too).
  LinkType link_type() const { return link_; }
  // Frees what reading needs (the window and file, or libpcap's handle and
  // arena) once a file source is done: frames handed out become invalid. A
  // mapped file stays mapped (mapped_file() frames stay valid). For decoding
  // many files in turn.
  void ReleaseBuffers();
  // Testing: each read() of the window asks for at most `bytes`, so records
  // straddle the window's edge even in small files.
  void set_read_cap_for_testing(size_t bytes) { read_cap_ = bytes > 0 ? bytes : 1; }
  // Set when libpcap reported a read error; the source is then exhausted.
  Status error() const override { return error_; }
  // A classic pcap file is read in place: its whole mapping, valid as long
  // as the source (frame data handed out lies in it). Empty otherwise.
  ByteSpan mapped_file() const {
    return map_ != nullptr && !streamed_ ? ByteSpan(map_, map_len_) : ByteSpan();
  }

 private:
  PcapSource(pcap_t* handle, bool live, std::string description);
  // Reads a classic pcap file, mapped or through the window; nullptr when
  // `path` is not one (pcapng).
  static Result<std::unique_ptr<PcapSource>> OpenClassic(const std::string& path, bool map);
  // Classic records from map_ (the mapping, or the window).
  size_t RxBurstMapped(std::span<Packet> out);
  // Window: moves the unread tail to the front and reads on; false on error.
  bool Refill();
  // Makes the next kPopulateChunk bytes of the mapping present in one call.
  void Populate();
  static constexpr size_t kPopulateChunk = 8u << 20;
  static void OnFrame(unsigned char* user, const ::pcap_pkthdr* h, const unsigned char* bytes);

  // Offline through libpcap from a pipe or a device (standard input, a
  // FIFO that `tcpdump -U -w -` fills): a burst ends when no further frame
  // has arrived yet, instead of waiting for a whole burst; a burst with
  // nothing to give returns empty after kPipeWaitMs.
  bool NextFrameNotYetThere() const;
  static constexpr int kPipeWaitMs = 200;

  pcap_t* handle_;
  bool live_;
  bool piped_ = false;
  bool nano_;          // timestamps are in nanoseconds (else microseconds)
  size_t max_caplen_;  // the capture's snap length, bounded by the arena
  int poll_timeout_ms_ = 0;
  LinkType link_ = LinkType::kEthernet;
  // Mapped classic pcap file (handle_ is null then).
  const uint8_t* map_ = nullptr;
  size_t map_len_ = 0;
  size_t map_pos_ = 0;
  size_t populated_ = 0;      // bytes of the mapping made present (Populate)
  bool map_swapped_ = false;  // file written on a host of the other byte order
  // Read through a window instead (map_ is window_.data(), map_len_ the
  // bytes in it, window_off_ the file offset of its first byte).
  bool streamed_ = false;
  int fd_ = -1;
  bool eof_ = false;
  std::unique_ptr<uint8_t[]> window_;  // kWindowBytes, not zero-filled
  uint64_t window_off_ = 0;
  size_t read_cap_ = SIZE_MAX;
  std::string description_;
  bool exhausted_ = false;
  Status error_;
  std::unique_ptr<uint8_t[]> arena_;
  size_t arena_size_ = 0;
  size_t arena_used_ = 0;
  std::span<Packet> burst_out_;
  size_t burst_n_ = 0;
  CaptureStats stats_;
};

}  // namespace kvf::dataplane
