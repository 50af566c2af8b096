// libpcap backend. Offline reads use pcap_next_ex in a loop; live reads use
// pcap_dispatch, which returns after the poll timeout when idle. Both copy
// each frame into the arena so a whole burst stays valid until the next call.
#include "dataplane/pcap_source.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvf::dataplane {

PcapSource::PcapSource(pcap_t* handle, bool live, std::string description)
    : handle_(handle),
      live_(live),
      nano_(handle != nullptr && pcap_get_tstamp_precision(handle) == PCAP_TSTAMP_PRECISION_NANO),
      max_caplen_(handle != nullptr
                      ? std::clamp<size_t>(static_cast<size_t>(pcap_snapshot(handle)), 64, kArenaBytes / 4)
                      : 0),
      description_(std::move(description)) {
  if (handle != nullptr) {
    LinkTypeFromPcap(pcap_datalink(handle), &link_);  // checked by the Open* that made the handle
    // Not zeroed: a frame is copied in before it is read.
    arena_.reset(new uint8_t[kArenaBytes]);
    arena_size_ = kArenaBytes;
  }
}

namespace {
Status UnsupportedLink(const std::string& what, int linktype) {
  return Unsupported(what + " has link type " + std::to_string(linktype) +
                     "; decoded are Ethernet (1), Linux cooked (113, 276: tcpdump -i any), "
                     "bare IP (12, 101, 228, 229) and BSD loopback (0, 108)");
}
}  // namespace

PcapSource::~PcapSource() {
  if (handle_ != nullptr) pcap_close(handle_);
  if (map_ != nullptr && !streamed_) munmap(const_cast<uint8_t*>(map_), map_len_);
  if (fd_ >= 0) close(fd_);
}

namespace {

// A classic pcap file header's magic (either precision, either byte order)
// and version 2.4: nothing a record header holds (its timestamp would be in
// 2055 or 2103, its fraction 262,146 or 33,555,456).
bool LooksLikeFileHeader(const uint8_t* p) {
  uint32_t magic, version;
  std::memcpy(&magic, p, 4);
  std::memcpy(&version, p + 4, 4);
  const bool known = magic == 0xa1b2c3d4 || magic == 0xa1b23c4d || magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1;
  return known && (version == 0x00040002 || version == 0x04000200);
}

}  // namespace

// Classic pcap: a 24-byte file header (magic, version, zone, sigfigs,
// snaplen, link type) then records of [ts_sec, ts_frac, caplen, len] + frame.
// Magic a1b2c3d4 means microsecond timestamps, a1b23c4d nanoseconds; either
// byte-swapped means the other byte order.
Result<std::unique_ptr<PcapSource>> PcapSource::OpenClassic(const std::string& path, bool map) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    close(fd);
    return Status::FromErrno(e, "fstat " + path);
  }
  if (!S_ISREG(st.st_mode) || static_cast<size_t>(st.st_size) < 24) {
    // A pipe or a device (/dev/stdin, <(zcat f.gz)) cannot be mapped or
    // read at an offset, and a file shorter than a header is no capture:
    // libpcap reads the one and reports the other.
    close(fd);
    return std::unique_ptr<PcapSource>();
  }
  uint8_t header[24];
  const ssize_t got = pread(fd, header, sizeof(header), 0);
  if (got < 0) {
    const int e = errno;
    close(fd);
    return Status::FromErrno(e, "read " + path);
  }
  if (got < static_cast<ssize_t>(sizeof(header))) {
    close(fd);
    return std::unique_ptr<PcapSource>();  // shorter than a header: let libpcap produce its error
  }
  uint32_t magic;
  std::memcpy(&magic, header, 4);
  bool swapped = false, nano = false;
  switch (magic) {
    case 0xa1b2c3d4: break;
    case 0xa1b23c4d: nano = true; break;
    case 0xd4c3b2a1: swapped = true; break;
    case 0x4d3cb2a1: swapped = nano = true; break;
    default: close(fd); return std::unique_ptr<PcapSource>();  // pcapng or not a capture: libpcap decides
  }
  uint32_t linktype;
  std::memcpy(&linktype, header + 20, 4);
  if (swapped) linktype = __builtin_bswap32(linktype);
  LinkType link;
  if (!LinkTypeFromPcap(static_cast<int>(linktype & 0xffff), &link)) {
    close(fd);
    return UnsupportedLink("pcap: " + path, static_cast<int>(linktype & 0xffff));
  }
  auto src = std::unique_ptr<PcapSource>(new PcapSource(nullptr, false, "pcap file " + path));
  src->link_ = link;
  src->map_pos_ = 24;
  src->map_swapped_ = swapped;
  src->nano_ = nano;
  if (!map) {
    // Read into one window, reused: no page of the file is ever mapped.
    if (lseek(fd, 24, SEEK_SET) != 24) {
      const int e = errno;
      close(fd);
      return Status::FromErrno(e, "seek " + path);
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    src->fd_ = fd;
    src->streamed_ = true;
    src->window_.reset(new uint8_t[kWindowBytes]);
    src->map_ = src->window_.get();
    src->map_len_ = 0;
    src->map_pos_ = 0;
    src->window_off_ = 24;
    return src;
  }
  const size_t len = static_cast<size_t>(st.st_size);  // at least the header (checked above)
  void* m = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  close(fd);
  if (m == MAP_FAILED) return Status::FromErrno(e, "mmap " + path);
  madvise(m, len, MADV_SEQUENTIAL);
  src->map_ = static_cast<const uint8_t*>(m);
  src->map_len_ = len;
  return src;
}

void PcapSource::ReleaseBuffers() {
  if (streamed_) {
    // The window and the file; map_ is left pointing nowhere usable, and
    // the source stays exhausted.
    exhausted_ = true;
    window_.reset();
    map_ = nullptr;
    map_len_ = map_pos_ = 0;
    streamed_ = false;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  } else if (handle_ != nullptr && !live_) {
    exhausted_ = true;
    pcap_close(handle_);
    handle_ = nullptr;
    arena_.reset();
    arena_size_ = 0;
  }
}

bool PcapSource::Refill() {
  // The unread tail (part of a record) moves to the front, then one read.
  const size_t tail = map_len_ - map_pos_;
  std::memmove(window_.get(), window_.get() + map_pos_, tail);
  window_off_ += map_pos_;
  map_pos_ = 0;
  map_len_ = tail;
  for (;;) {
    const ssize_t r = read(fd_, window_.get() + map_len_, std::min(kWindowBytes - map_len_, read_cap_));
    if (r > 0) {
      map_len_ += static_cast<size_t>(r);
      return true;
    }
    if (r == 0) {
      eof_ = true;
      return true;
    }
    if (errno != EINTR) {
      error_ = Status::FromErrno(errno, "pcap: read");
      return false;
    }
  }
}

void PcapSource::Populate() {
  // Maps the next pages in one call (MADV_POPULATE_READ, Linux 5.14) instead
  // of a page fault every few pages while reading; on older kernels the
  // call fails and the faults happen as before.
  const uintptr_t page = 4096;
  const uintptr_t base = reinterpret_cast<uintptr_t>(map_);
  const uintptr_t from = (base + populated_) & ~(page - 1);
  const size_t end = std::min(map_len_, std::max(populated_, map_pos_) + kPopulateChunk);
  if (end > populated_) {
#ifdef MADV_POPULATE_READ
    madvise(reinterpret_cast<void*>(from), base + end - from, MADV_POPULATE_READ);
#endif
    populated_ = end;
  }
}

size_t PcapSource::RxBurstMapped(std::span<Packet> out) {
  size_t n = 0;
  while (n < out.size()) {
    const size_t avail = map_len_ - map_pos_;
    uint32_t h[4];
    const bool have_header = avail >= 16;
    if (have_header) {
      std::memcpy(h, map_ + map_pos_, 16);
      if (map_swapped_) {
        for (uint32_t& v : h) v = __builtin_bswap32(v);
      }
    }
    if (!have_header || (h[2] <= kMaxFrameBytes && h[2] > avail - 16)) {
      // The record is not all in view.
      if (streamed_ && !eof_) {
        if (n > 0) break;  // the packets handed out point into the window: refill next time
        if (!Refill()) {
          exhausted_ = true;
          break;
        }
        continue;
      }
      if (avail == 0) {
        exhausted_ = true;
        break;
      }
      const uint64_t at = window_off_ + map_pos_;
      error_ = !have_header ? Corruption("pcap: truncated record header at offset " + std::to_string(at))
                            : Corruption("pcap: bad or truncated record of " + std::to_string(h[2]) +
                                         " bytes at offset " + std::to_string(at));
      exhausted_ = true;
      break;
    }
    if (h[2] == 0 && LooksLikeFileHeader(map_ + map_pos_)) {
      // `cat a.pcap b.pcap`: b's file header read as a record would be an
      // empty frame stamped in 2055, then a record of absurd length.
      error_ = Corruption("pcap: another capture file's header at offset " +
                          std::to_string(window_off_ + map_pos_) +
                          " (files joined with cat?): join captures with `mergecap -a`, or give each "
                          "file to --pcap");
      exhausted_ = true;
      break;
    }
    const uint32_t caplen = h[2];
    if (caplen > kMaxFrameBytes) {
      error_ = Corruption("pcap: bad or truncated record of " + std::to_string(caplen) + " bytes at offset " +
                          std::to_string(window_off_ + map_pos_));
      exhausted_ = true;
      break;
    }
    Packet& pkt = out[n++];
    pkt.data = map_ + map_pos_ + 16;
    pkt.len = caplen;
    pkt.wire_len = h[3];
    pkt.ts_ns = uint64_t{h[0]} * 1'000'000'000ull + uint64_t{h[1]} * (nano_ ? 1u : 1000u);
    pkt.rx_queue = 0;
    pkt.link = link_;
    stats_.frames_received++;
    stats_.bytes_received += h[3];
    if (caplen < h[3]) stats_.snap_truncated++;
    map_pos_ += 16 + caplen;
    if (!streamed_ && map_pos_ + kPopulateChunk / 2 > populated_) Populate();
    // Frames are read once, in order, from pages that are not physically
    // contiguous: fetch ahead across page boundaries, where the hardware
    // prefetcher stops.
    __builtin_prefetch(map_ + map_pos_ + 1024);
  }
  return n;
}

Result<std::unique_ptr<PcapSource>> PcapSource::OpenOffline(const std::string& path, bool map) {
  if (path != "-") {  // "-" is standard input: read through libpcap, never mapped
    Result<std::unique_ptr<PcapSource>> classic = OpenClassic(path, map);
    if (!classic.ok() || *classic != nullptr) return classic;
  }
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* h = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (h == nullptr) {
    return InvalidArgument("pcap: cannot open " + (path == "-" ? std::string("standard input") : path) +
                           ": " + err);
  }
  LinkType link;
  if (!LinkTypeFromPcap(pcap_datalink(h), &link)) {
    const int dlt = pcap_datalink(h);
    pcap_close(h);
    return UnsupportedLink("pcap: " + path, dlt);
  }
  auto src = std::unique_ptr<PcapSource>(
      new PcapSource(h, false, path == "-" ? std::string("pcap from standard input") : "pcap file " + path));
  struct stat st;
  src->piped_ = fstat(fileno(pcap_file(h)), &st) == 0 && !S_ISREG(st.st_mode);
  return src;
}

bool PcapSource::NextFrameNotYetThere() const {
  FILE* f = pcap_file(handle_);
#ifdef __GLIBC__
  // Bytes libpcap's stdio buffer already holds: the next frame, or part of it.
  if (f->_IO_read_ptr < f->_IO_read_end) return false;
#endif
  pollfd pfd{fileno(f), POLLIN, 0};
  return poll(&pfd, 1, 0) == 0;
}

Result<std::unique_ptr<PcapSource>> PcapSource::OpenLive(const PcapLiveOptions& o) {
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* h = pcap_create(o.iface.c_str(), err);
  if (h == nullptr) return Unavailable("pcap: cannot open " + o.iface + ": " + err);
  auto fail = [&](const std::string& what) -> Status {
    std::string msg = "pcap: " + what + " on " + o.iface + ": " + pcap_geterr(h);
    pcap_close(h);
    return Unavailable(msg);
  };
  pcap_set_snaplen(h, o.snaplen);
  pcap_set_promisc(h, o.promiscuous ? 1 : 0);
  pcap_set_timeout(h, o.poll_timeout_ms);
  pcap_set_buffer_size(h, o.kernel_buffer_bytes);
  pcap_set_tstamp_precision(h, PCAP_TSTAMP_PRECISION_NANO);  // falls back to micro if unsupported
  const int rc = pcap_activate(h);
  if (rc < 0) return fail("activate");
  LinkType link;
  if (!LinkTypeFromPcap(pcap_datalink(h), &link)) {
    const int dlt = pcap_datalink(h);
    pcap_close(h);
    return UnsupportedLink("pcap: " + o.iface, dlt);
  }
  if (pcap_setnonblock(h, 1, err) != 0) return fail("setnonblock");
  if (!o.bpf_filter.empty()) {
    bpf_program prog;
    if (pcap_compile(h, &prog, o.bpf_filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      return fail("filter compile");
    const int set = pcap_setfilter(h, &prog);
    pcap_freecode(&prog);
    if (set != 0) return fail("setfilter");
  }
  auto src = std::unique_ptr<PcapSource>(new PcapSource(h, true, "pcap live " + o.iface));
  src->poll_timeout_ms_ = o.poll_timeout_ms;
  return src;
}

void PcapSource::OnFrame(unsigned char* user, const ::pcap_pkthdr* hdr, const unsigned char* bytes) {
  auto* self = reinterpret_cast<PcapSource*>(user);
  self->stats_.frames_received++;
  self->stats_.bytes_received += hdr->len;
  if (hdr->caplen < hdr->len) self->stats_.snap_truncated++;
  if (hdr->caplen > self->arena_size_ - self->arena_used_ || self->burst_n_ >= self->burst_out_.size()) {
    self->stats_.oversize_frames++;  // larger than the snap length libpcap promised: not expected
    return;
  }
  uint8_t* dst = self->arena_.get() + self->arena_used_;
  std::memcpy(dst, bytes, hdr->caplen);
  self->arena_used_ += hdr->caplen;
  Packet& p = self->burst_out_[self->burst_n_++];
  p.data = dst;
  p.len = hdr->caplen;
  p.wire_len = hdr->len;
  p.ts_ns = static_cast<uint64_t>(hdr->ts.tv_sec) * 1'000'000'000ull +
            static_cast<uint64_t>(hdr->ts.tv_usec) * (self->nano_ ? 1u : 1000u);
  p.rx_queue = 0;
  p.link = self->link_;
}

size_t PcapSource::RxBurst(std::span<Packet> out) {
  if (exhausted_ || out.empty()) return 0;
  if (map_ != nullptr) return RxBurstMapped(out);
  arena_used_ = 0;
  burst_out_ = out;
  burst_n_ = 0;
  if (live_) {
    // At most as many frames as the arena holds at the snap length.
    const int want = static_cast<int>(std::min<size_t>(out.size(), arena_size_ / max_caplen_));
    int rc = pcap_dispatch(handle_, want, &PcapSource::OnFrame, reinterpret_cast<unsigned char*>(this));
    if (rc == 0) {
      // Non-blocking handle: wait here, bounded, instead of inside libpcap
      // (whose read timeout may never fire on an idle TPACKET_V3 ring).
      pollfd pfd{pcap_get_selectable_fd(handle_), POLLIN, 0};
      if (pfd.fd >= 0 && poll(&pfd, 1, poll_timeout_ms_) > 0) {
        rc = pcap_dispatch(handle_, want, &PcapSource::OnFrame, reinterpret_cast<unsigned char*>(this));
      }
    }
    if (rc == PCAP_ERROR) {
      error_ = Unavailable(std::string("pcap: read failed: ") + pcap_geterr(handle_));
      exhausted_ = true;
    }
    return burst_n_;
  }
  // Stop while the arena still has room for a frame of the largest size
  // this capture can hold, so no frame is ever left over between bursts.
  while (burst_n_ < out.size() && arena_size_ - arena_used_ >= max_caplen_) {
    // The frames so far go out now, rather than wait behind a writer that
    // has not sent the next one: their records and stats are due.
    if (piped_ && NextFrameNotYetThere()) {
      if (burst_n_ > 0) break;
      // Nothing yet: wait for it a while, then come back empty, so that the
      // caller looks at its interrupt (a read blocked in libpcap would be
      // restarted after the signal: Ctrl-C went unheard on an idle pipe).
      pollfd pfd{fileno(pcap_file(handle_)), POLLIN, 0};
      if (poll(&pfd, 1, kPipeWaitMs) <= 0) break;
    }
    pcap_pkthdr* hdr = nullptr;
    const unsigned char* bytes = nullptr;
    const int rc = pcap_next_ex(handle_, &hdr, &bytes);
    if (rc == 1) {
      OnFrame(reinterpret_cast<unsigned char*>(this), hdr, bytes);
      continue;
    }
    if (rc != PCAP_ERROR_BREAK)
      error_ = Corruption(std::string("pcap: read failed: ") + pcap_geterr(handle_));
    exhausted_ = true;
    break;
  }
  return burst_n_;
}

CaptureStats PcapSource::Stats() const {
  CaptureStats s = stats_;
  if (live_) {
    pcap_stat ps{};
    if (pcap_stats(handle_, &ps) == 0) {
      s.ring_full_drops = ps.ps_drop;  // the kernel's capture buffer was full
      s.nic_drops = ps.ps_ifdrop;
    }
  }
  return s;
}

}  // namespace kvf::dataplane
