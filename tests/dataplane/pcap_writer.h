// Test helper: writes crafted frames to a pcap file with libpcap's own dumper
// (nanosecond timestamps), so the pcap backend is tested against the library's
// real file format rather than ours.
#pragma once

#include <pcap/pcap.h>

#include <string>
#include <vector>

#include "tests/common/packet_builder.h"

namespace kvf::testing {

struct TimedFrame {
  Bytes bytes;
  uint64_t ts_ns;
  uint32_t wire_len = 0;  // 0: same as bytes.size()
};

// A frame of the connection between client 10.0.0.1:`client_port` and server
// 10.0.0.2:`server_port` (or the addresses given: IPv6 too), in the direction
// `c2s` says, captured at `ts_ns`, acknowledging `ack` (0: none given).
inline TimedFrame ClientServerFrame(uint16_t client_port, bool c2s, uint32_t seq, uint8_t flags,
                                    std::string payload, uint64_t ts_ns, uint16_t server_port = 6379,
                                    const std::string& client_ip = "10.0.0.1",
                                    const std::string& server_ip = "10.0.0.2", uint32_t ack = 0) {
  TcpSpec s;
  s.sport = c2s ? client_port : server_port;
  s.dport = c2s ? server_port : client_port;
  s.seq = seq;
  s.ack = ack;
  s.flags = flags;
  s.payload = std::move(payload);
  return {c2s ? TcpFrame(client_ip, server_ip, s) : TcpFrame(server_ip, client_ip, s), ts_ns};
}

// Returns false (with a message in *err) when libpcap refuses.
inline bool WritePcap(const std::string& path, const std::vector<TimedFrame>& frames, std::string* err,
                      int snaplen = 262144, int dlt = DLT_EN10MB) {
  pcap_t* dead = pcap_open_dead_with_tstamp_precision(dlt, snaplen, PCAP_TSTAMP_PRECISION_NANO);
  if (dead == nullptr) {
    *err = "pcap_open_dead failed";
    return false;
  }
  pcap_dumper_t* d = pcap_dump_open(dead, path.c_str());
  if (d == nullptr) {
    *err = pcap_geterr(dead);
    pcap_close(dead);
    return false;
  }
  for (const TimedFrame& f : frames) {
    pcap_pkthdr h{};
    h.ts.tv_sec = static_cast<time_t>(f.ts_ns / 1'000'000'000ull);
    h.ts.tv_usec = static_cast<suseconds_t>(f.ts_ns % 1'000'000'000ull);  // nanoseconds in a nano file
    h.caplen = static_cast<bpf_u_int32>(f.bytes.size());
    h.len = f.wire_len != 0 ? f.wire_len : h.caplen;
    pcap_dump(reinterpret_cast<u_char*>(d), &h, f.bytes.data());
  }
  pcap_dump_close(d);
  pcap_close(dead);
  return true;
}

}  // namespace kvf::testing
