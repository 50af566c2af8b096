// Flow table and TCP reassembly. Stream positions are 64-bit offsets from the
// start of each direction (its SYN + 1, or the first byte seen on a mid-stream
// join); 32-bit sequence numbers are turned into offsets relative to the next
// expected byte, which is what makes sequence wrap-around a non-event.
#include "dataplane/flow_table.h"

#include <algorithm>
#include <iterator>

namespace kvf::dataplane {
namespace {

// A segment more than this far (either way) from the next expected byte is
// not believed: real TCP windows are at most 1 GiB.
constexpr int64_t kMaxSequenceJump = int64_t{1} << 30;
// A RST closes a flow only this close (either way) to the next byte seen
// from its sender: what the receiver accepts is its window, which a
// mirror's view of the stream may lead or trail by the bytes in flight.
constexpr int64_t kRstMaxDistance = int64_t{32} << 20;
// Two views of one connection (NAT) are this close in time and in stream
// position when the second one starts.
constexpr uint64_t kTwinWindowNs = 100'000'000;
constexpr int64_t kTwinMaxDistance = int64_t{16} << 20;
constexpr int kTwinMaxWalk = 16;

uint64_t IsnKey(uint16_t client_port, uint32_t client_data_start) {
  return (uint64_t{client_port} << 32 | client_data_start) + 1;  // never 0
}

size_t Idx(Direction d) {
  return static_cast<size_t>(d);
}

Direction Other(Direction d) {
  return d == Direction::kClientToServer ? Direction::kServerToClient : Direction::kClientToServer;
}

}  // namespace

std::string_view DirectionName(Direction d) {
  return d == Direction::kClientToServer ? "client_to_server" : "server_to_client";
}

std::string_view CloseReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kFin: return "fin";
    case CloseReason::kReset: return "reset";
    case CloseReason::kIdle: return "idle_timeout";
    case CloseReason::kFlowTableFull: return "evicted_flow_table_full";
    case CloseReason::kMemoryCap: return "evicted_memory_cap";
    case CloseReason::kReplaced: return "replaced_by_new_syn";
    case CloseReason::kShutdown: return "shutdown";
    case CloseReason::kCount: break;
  }
  return "unknown";
}

FlowTableStats& FlowTableStats::operator+=(const FlowTableStats& o) {
  segments += o.segments;
  segments_not_for_server += o.segments_not_for_server;
  segments_server_port_elsewhere += o.segments_server_port_elsewhere;
  ack_without_flow += o.ack_without_flow;
  rst_without_flow += o.rst_without_flow;
  fin_out_of_window += o.fin_out_of_window;
  rst_out_of_window += o.rst_out_of_window;
  rst_waited_for_peer += o.rst_waited_for_peer;
  rst_waits_expired += o.rst_waits_expired;
  fin_without_flow += o.fin_without_flow;
  segments_src_equals_dst += o.segments_src_equals_dst;
  segments_after_close += o.segments_after_close;
  closed_flows_seen_again += o.closed_flows_seen_again;
  flows_created += o.flows_created;
  flows_joined_mid_stream += o.flows_joined_mid_stream;
  duplicate_flows += o.duplicate_flows;
  duplicates_promoted += o.duplicates_promoted;
  evicted_before_data += o.evicted_before_data;
  for (size_t i = 0; i < std::size(flows_closed); ++i) flows_closed[i] += o.flows_closed[i];
  payload_bytes_delivered += o.payload_bytes_delivered;
  retransmitted_bytes += o.retransmitted_bytes;
  gap_bytes_came_late += o.gap_bytes_came_late;
  gap_came_late_max_ns = std::max(gap_came_late_max_ns, o.gap_came_late_max_ns);
  request_lag_max_ns = std::max(request_lag_max_ns, o.request_lag_max_ns);
  out_of_order_segments += o.out_of_order_segments;
  out_of_window_segments += o.out_of_window_segments;
  gaps += o.gaps;
  gap_bytes += o.gap_bytes;
  gaps_forced_by_memory_cap += o.gaps_forced_by_memory_cap;
  gaps_proven_by_ack += o.gaps_proven_by_ack;
  gaps_cut_by_snaplen += o.gaps_cut_by_snaplen;
  segments_held_for_peer += o.segments_held_for_peer;
  holds_expired += o.holds_expired;
  buffered_bytes += o.buffered_bytes;
  active_flows += o.active_flows;
  return *this;
}

std::vector<std::pair<std::string, uint64_t>> FlowTableStats::Named() const {
  std::vector<std::pair<std::string, uint64_t>> v = {
      {"tcp_segments", segments},
      {"segments_not_for_server", segments_not_for_server},
      {"segments_server_port_elsewhere", segments_server_port_elsewhere},
      {"ack_without_flow", ack_without_flow},
      {"rst_without_flow", rst_without_flow},
      {"fin_out_of_window", fin_out_of_window},
      {"rst_out_of_window", rst_out_of_window},
      {"rst_waited_for_peer", rst_waited_for_peer},
      {"rst_waits_expired", rst_waits_expired},
      {"fin_without_flow", fin_without_flow},
      {"segments_src_equals_dst", segments_src_equals_dst},
      {"segments_after_close", segments_after_close},
      {"closed_flows_seen_again", closed_flows_seen_again},
      {"flows_created", flows_created},
      {"flows_joined_mid_stream", flows_joined_mid_stream},
      {"duplicate_flows", duplicate_flows},
      {"duplicates_promoted", duplicates_promoted},
      {"flows_evicted_before_data", evicted_before_data},
      {"active_flows", active_flows},
      {"payload_bytes_delivered", payload_bytes_delivered},
      {"retransmitted_bytes_dropped", retransmitted_bytes},
      {"gap_bytes_came_late", gap_bytes_came_late},
      {"gap_came_late_max_us", gap_came_late_max_ns / 1000},
      {"request_lag_max_us", request_lag_max_ns / 1000},
      {"out_of_order_segments", out_of_order_segments},
      {"out_of_window_segments", out_of_window_segments},
      {"gaps", gaps},
      {"gap_bytes", gap_bytes},
      {"gaps_forced_by_memory_cap", gaps_forced_by_memory_cap},
      {"gaps_proven_by_ack", gaps_proven_by_ack},
      {"gaps_cut_by_snaplen", gaps_cut_by_snaplen},
      {"segments_held_for_peer", segments_held_for_peer},
      {"holds_expired", holds_expired},
      {"buffered_bytes", buffered_bytes},
  };
  for (size_t i = 0; i < std::size(flows_closed); ++i) {
    v.emplace_back("flows_closed_" + std::string(CloseReasonName(static_cast<CloseReason>(i))),
                   flows_closed[i]);
  }
  return v;
}

FlowTable::FlowTable(FlowTableConfig config, StreamConsumerFactory* factory)
    : config_(std::move(config)), factory_(factory) {}

FlowTable::~FlowTable() = default;

FlowTableStats FlowTable::stats() const {
  FlowTableStats s = stats_;
  s.buffered_bytes = total_buffered_;
  s.active_flows = flow_count_;
  return s;
}

size_t FlowTable::memory_bytes() const {
  return total_buffered_ + flow_count_ * kFlowOverheadBytes;
}

FlowTable::Flow* FlowTable::FindFlow(const FlowKey& key, uint64_t hash) const {
  if (slots_.empty()) return nullptr;
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.flow == nullptr) return nullptr;
    if (s.hash == hash && s.flow->key == key) return s.flow.get();
  }
}

void FlowTable::InsertFlow(std::unique_ptr<Flow> f) {
  if (2 * (flow_count_ + 1) > slots_.size()) {
    std::vector<Slot> old(std::max<size_t>(64, slots_.size() * 2));
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (Slot& s : old) {
      if (s.flow == nullptr) continue;
      size_t i = s.hash & mask;
      while (slots_[i].flow != nullptr) i = (i + 1) & mask;
      slots_[i] = std::move(s);
    }
  }
  const size_t mask = slots_.size() - 1;
  size_t i = f->hash & mask;
  while (slots_[i].flow != nullptr) i = (i + 1) & mask;
  slots_[i].hash = f->hash;
  slots_[i].flow = std::move(f);
  ++flow_count_;
}

void FlowTable::EraseFlow(Flow* f) {
  const size_t mask = slots_.size() - 1;
  size_t hole = f->hash & mask;
  while (slots_[hole].flow.get() != f) hole = (hole + 1) & mask;
  slots_[hole].flow.reset();
  --flow_count_;
  // Backward shift: pull later members of the probe run into the hole so
  // that lookups never stop early.
  for (size_t i = (hole + 1) & mask; slots_[i].flow != nullptr; i = (i + 1) & mask) {
    const size_t home = slots_[i].hash & mask;
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      slots_[hole] = std::move(slots_[i]);
      hole = i;
    }
  }
}

bool FlowTable::IsServer(const Endpoint& e) const {
  for (const Endpoint& s : config_.servers) {
    if (s.Matches(e)) return true;
  }
  return false;
}

void FlowTable::NoteElsewhere(const Endpoint& src, const Endpoint& dst) {
  for (const Endpoint& s : config_.servers) {
    const Endpoint* e = s.port == src.port ? &src : s.port == dst.port ? &dst : nullptr;
    if (e == nullptr) continue;
    ++stats_.segments_server_port_elsewhere;
    if (std::find(elsewhere_.begin(), elsewhere_.end(), *e) != elsewhere_.end()) return;
    if (elsewhere_.size() < kElsewhereNamed) {
      elsewhere_.push_back(*e);
    } else {
      elsewhere_more_ = true;
    }
    return;
  }
}

void FlowTable::SyncAt(HalfStream* h, uint32_t first_seq) {
  // Where the peer's ACK says the stream began, if that is earlier and not
  // implausibly far: a review's connection whose SYN-ACK the capture missed
  // started at its second reply (the first lost, or captured after it), and
  // paired that reply with the first request.
  const int64_t behind = static_cast<int32_t>(first_seq - h->start_acked_seq);
  h->synced = true;
  h->base_seq = h->start_acked && behind > 0 && behind <= kMaxSequenceJump ? h->start_acked_seq : first_seq;
}

bool FlowTable::OffsetOf(const HalfStream& h, uint32_t seq, int64_t* offset) {
  const int64_t diff = static_cast<int32_t>(seq - h.next_seq());
  if (diff > kMaxSequenceJump || diff < -kMaxSequenceJump) return false;
  *offset = static_cast<int64_t>(h.next_offset) + diff;
  return true;
}

uint64_t FlowTable::ClientKey(const Endpoint& client) {
  return FlowKey{client, Endpoint{}}.Hash();
}

FlowTable::Flow* FlowTable::FindTwin(const TcpSegment& seg, const Endpoint& client,
                                     bool src_is_client) const {
  const bool syn = seg.Has(kTcpSyn);
  const bool ack = seg.Has(kTcpAck);
  auto recent = [&](const Flow* t) {
    return seg.ts_ns <= t->last_seen_ns + kTwinWindowNs && t->last_seen_ns <= seg.ts_ns + kTwinWindowNs;
  };
  if (syn) {
    // The client's ISN (from its SYN, or the SYN-ACK acknowledging it) and
    // port: NAT that rewrites the client's address keeps both.
    const uint32_t data_start = ack ? seg.ack : seg.seq + 1;
    const auto it = by_isn_.find(IsnKey(client.port, data_start));
    return it != by_isn_.end() && recent(it->second) ? it->second : nullptr;
  }
  // Joined mid-stream, the same client address and port: the same place in
  // both directions, or, while the live flow has seen one direction only,
  // the same first segment. A short walk: a client endpoint has few
  // connections (to other servers), and a flood of one cannot make it long.
  const Direction d = src_is_client ? Direction::kClientToServer : Direction::kServerToClient;
  auto near = [](const HalfStream& h, uint32_t seq) {
    const int64_t diff = static_cast<int32_t>(seq - h.next_seq());
    return h.synced && diff <= kTwinMaxDistance && diff >= -kTwinMaxDistance;
  };
  const auto head = by_client_.find(ClientKey(client));
  if (head == by_client_.end()) return nullptr;
  int walked = 0;
  for (Flow* t = head->second; t != nullptr && walked < kTwinMaxWalk; t = t->client_next, ++walked) {
    if (!(t->info.client == client) || !recent(t)) continue;
    const HalfStream& same = t->half[Idx(d)];
    const HalfStream& other = t->half[Idx(Other(d))];
    if (!near(same, seg.seq)) continue;
    if (ack && other.synced) {
      if (near(other, seg.ack)) return t;
    } else if (same.base_seq == seg.seq) {
      return t;
    }
  }
  return nullptr;
}

void FlowTable::IndexPrimary(Flow* f) {
  if (f->isn_key != 0) by_isn_[f->isn_key] = f;  // a collision keeps the newest
  f->client_key = ClientKey(f->info.client);
  Flow*& head = by_client_[f->client_key];
  f->client_prev = nullptr;
  f->client_next = head;
  if (head != nullptr) head->client_prev = f;
  head = f;
  f->indexed = true;
}

void FlowTable::Unindex(Flow* f) {
  if (!f->indexed) return;
  f->indexed = false;
  if (f->isn_key != 0) {
    const auto it = by_isn_.find(f->isn_key);
    if (it != by_isn_.end() && it->second == f) by_isn_.erase(it);
  }
  if (f->client_next != nullptr) f->client_next->client_prev = f->client_prev;
  if (f->client_prev != nullptr) {
    f->client_prev->client_next = f->client_next;
  } else if (f->client_next != nullptr) {
    by_client_[f->client_key] = f->client_next;
  } else {
    by_client_.erase(f->client_key);
  }
}

FlowTable::Flow* FlowTable::CreateFlow(const FlowKey& key, const TcpSegment& seg) {
  if (flow_count_ >= config_.max_flows && !lru_.empty()) {
    if (!quiet_.empty()) {
      ++stats_.evicted_before_data;
      CloseFlow(quiet_.front(), CloseReason::kFlowTableFull);
    } else {
      CloseFlow(lru_.front(), CloseReason::kFlowTableFull);
    }
  }
  auto owned = std::make_unique<Flow>();
  Flow* f = owned.get();
  f->key = key;
  f->hash = key.Hash();
  const bool syn = seg.Has(kTcpSyn);
  const bool ack = seg.Has(kTcpAck);
  bool src_is_client;
  if (syn) {
    src_is_client = !ack;
  } else if (!config_.servers.empty()) {
    src_is_client = IsServer(seg.dst);
  } else {
    src_is_client = true;
  }
  f->info.client = src_is_client ? seg.src : seg.dst;
  f->info.server = src_is_client ? seg.dst : seg.src;
  f->info.first_ts_ns = seg.ts_ns;
  if (syn && ack) {
    // The client's SYN was missed, but the SYN-ACK acknowledges its ISN + 1.
    HalfStream& c = f->half[Idx(Direction::kClientToServer)];
    c.synced = true;
    c.base_seq = seg.ack;
  }
  f->info.joined_mid_stream = !syn;
  f->last_seen_ns = seg.ts_ns;
  f->lru_it = lru_.insert(lru_.end(), f);
  f->carried_data = seg.payload_len > 0;
  if (!f->carried_data) f->quiet_it = quiet_.insert(quiet_.end(), f);
  if (syn) f->isn_key = IsnKey(f->info.client.port, ack ? seg.ack : seg.seq + 1);
  if (Flow* twin = FindTwin(seg, f->info.client, src_is_client)) {
    f->duplicate = true;
    f->primary = twin;
    twin->duplicates.push_back(f);
    ++stats_.duplicate_flows;
  } else {
    if (factory_ != nullptr) f->consumer = factory_->NewFlow(f->info);
    IndexPrimary(f);
  }
  ++stats_.flows_created;
  if (!syn) ++stats_.flows_joined_mid_stream;
  InsertFlow(std::move(owned));
  return f;
}

bool FlowTable::HandshakeOf(const Flow& f, const TcpSegment& seg) {
  if (!seg.Has(kTcpAck)) {
    // A SYN: the same ISN is a retransmission, or the SYN of a flow whose
    // first data came before it in the capture (the stream starts at ISN +
    // 1); a new ISN is a new connection.
    const HalfStream& c = f.half[Idx(Direction::kClientToServer)];
    return seg.src != f.info.client || (c.synced && seg.seq + 1 == c.base_seq);
  }
  if (seg.src != f.info.server) return true;  // simultaneous open: left as it is
  const HalfStream& s = f.half[Idx(Direction::kServerToClient)];
  // A SYN-ACK: its ISN must be where the server's stream starts. A review:
  // a port reused after a RST and a SYN the capture both missed; the new
  // connection's SYN-ACK was taken as the old one's, and its writes as
  // retransmissions of old bytes, lost without a flag.
  return !s.synced || seg.seq + 1 == s.base_seq;
}

void FlowTable::Process(const TcpSegment& seg) {
  ++stats_.segments;
  newest_ts_ = std::max(newest_ts_, seg.ts_ns);
  if (!config_.servers.empty() && !IsServer(seg.src) && !IsServer(seg.dst)) {
    ++stats_.segments_not_for_server;
    NoteElsewhere(seg.src, seg.dst);
    return;
  }
  if (seg.src == seg.dst) {
    ++stats_.segments_src_equals_dst;
    return;
  }
  const bool syn = seg.Has(kTcpSyn);
  const bool ack = seg.Has(kTcpAck);
  const bool rst = seg.Has(kTcpRst);
  const bool fin = seg.Has(kTcpFin);
  // Payload bytes the segment carried, those a snap length cut included.
  const uint32_t seg_len = seg.payload_len + seg.payload_cut;
  const FlowKey key = FlowKey::Of(seg.src, seg.dst);
  Flow* f = FindFlow(key, key.Hash());

  if (f != nullptr && syn && !rst && !HandshakeOf(*f, seg)) {
    CloseFlow(f, CloseReason::kReplaced);
    f = nullptr;
  }
  if (f == nullptr) {
    if (rst) {
      ++stats_.rst_without_flow;
      return;
    }
    if (!syn && seg_len == 0) {
      // A bare FIN opens nothing either: once both FINs and the last ACK
      // closed a flow, a retransmitted FIN (or a second copy of the frame,
      // as `tcpdump -i any` shows one that crossed a bridge) would otherwise
      // start a flow joined mid-stream with nothing in it.
      if (fin) {
        ++stats_.fin_without_flow;
      } else {
        ++stats_.ack_without_flow;
      }
      return;
    }
    if (!closed_.empty()) {
      if (!syn && LateForClosed(key, seg)) {
        ++stats_.segments_after_close;
        return;
      }
      if (syn) {
        if (SynCopyOfClosed(key, seg)) {
          ++stats_.segments_after_close;
          return;
        }
        closed_.erase(key);  // a new connection on the 4-tuple
      }
    }
    f = CreateFlow(key, seg);
  }
  f->last_seen_ns = std::max(f->last_seen_ns, seg.ts_ns);
  if (lru_.back() != f) lru_.splice(lru_.end(), lru_, f->lru_it);
  if (f->heir && seg_len > 0 && !rst) Promote(f);
  if (rst) {
    const Direction by = seg.src == f->info.client ? Direction::kClientToServer : Direction::kServerToClient;
    const HalfStream& sender = f->half[Idx(by)];
    const int64_t distance = static_cast<int32_t>(seg.seq - sender.next_seq());
    if (sender.synced && (distance > kRstMaxDistance || distance < -kRstMaxDistance)) {
      ++stats_.rst_out_of_window;
      return;
    }
    // A mirror that delays the other direction captures this RST before
    // bytes of it the sender already answered (a review lost 174 answered
    // SETs: their requests came after the server's RST, and its replies
    // held for them were dropped). The flow waits for them, as the held
    // segments do, and closes when they came or the hold ran out. Its own
    // ACK counts (a client closing with replies unread sends RST|ACK, the
    // first to acknowledge them), within the window a RST's seq must be in.
    const HalfStream& peer = f->half[Idx(Other(by))];
    if (ack && peer.synced) {
      const int64_t ahead = static_cast<int32_t>(seg.ack - peer.next_seq());
      if (ahead > 0 && ahead <= kRstMaxDistance) NoteAck(f, Other(by), seg.ack, seg.ts_ns);
    }
    if (config_.peer_hold_ns > 0 && WaitsForPeer(*f, by)) {
      if (f->reset_ns == 0) {
        f->reset_ns = std::max<uint64_t>(seg.ts_ns, 1);
        f->reset_by = by;
        ++stats_.rst_waited_for_peer;
        UpdatePendingList(f);  // Tick ends the wait
      }
      return;
    }
    CloseFlow(f, CloseReason::kReset);
    return;
  }

  const Direction d = seg.src == f->info.client ? Direction::kClientToServer : Direction::kServerToClient;
  HalfStream& h = f->half[Idx(d)];
  if (HalfStream& peer = f->half[Idx(Other(d))]; !peer.synced && ack && !f->info.joined_mid_stream)
      [[unlikely]] {
    if (!peer.start_acked || static_cast<int32_t>(seg.ack - peer.start_acked_seq) < 0) {
      peer.start_acked = true;
      peer.start_acked_seq = seg.ack;
    }
  }
  uint32_t data_seq = seg.seq;
  if (syn) {
    data_seq = seg.seq + 1;
    if (!h.synced) {
      h.synced = true;
      h.base_seq = data_seq;
    }
  }
  uint64_t need_peer = 0;
  if (seg_len > 0 && ack) {
    // Causal order: the peer's bytes this segment acknowledges go first; if
    // they were not captured yet, the segment waits for them.
    const Direction peer = Other(d);
    need_peer = NoteAck(f, peer, seg.ack, seg.ts_ns);
    DeclareAckedHoles(f, peer, seg.ts_ns);
    if (config_.peer_hold_ns == 0 || PeerReached(f, d, need_peer)) need_peer = 0;
  }
  if (seg_len > 0) {
    if (!f->carried_data) {
      f->carried_data = true;
      quiet_.erase(f->quiet_it);
    }
    if (!h.synced) SyncAt(&h, data_seq);
    AddData(f, d, data_seq, seg.payload, seg.payload_len, seg.ts_ns, need_peer, seg.payload_cut);
    Settle(f);
  }
  if (fin) {
    const uint32_t fin_seq = data_seq + seg_len;
    if (!h.synced) SyncAt(&h, fin_seq);
    int64_t off = 0;
    if (!h.fin_seen && OffsetOf(h, fin_seq, &off) && off + 1 < static_cast<int64_t>(h.next_offset)) {
      // Behind bytes the stream already delivered (by more than its own
      // sequence number, which an ACK captured before it may have declared
      // delivered): a late FIN of an earlier connection on the 4-tuple, the
      // port reused with a later ISN. A receiver ignores it (RFC 9293 3.10.7.4). Taken, it
      // ended the new connection's stream at once: a review's writes that
      // the server then answered were taken for never run, unrecorded.
      ++stats_.fin_out_of_window;
    } else if (!h.fin_seen && OffsetOf(h, fin_seq, &off)) {
      h.fin_seen = true;
      int64_t acked = 0;
      if (ack && f->half[Idx(Other(d))].synced && OffsetOf(f->half[Idx(Other(d))], seg.ack, &acked) &&
          acked >= 0)
        h.fin_acked = static_cast<uint64_t>(acked);
      h.fin_offset = static_cast<uint64_t>(std::max<int64_t>(off, static_cast<int64_t>(h.next_offset)));
      // An ACK seen earlier counted the FIN's sequence number as a byte.
      h.acked_offset = std::min(h.acked_offset, h.fin_offset);
    }
  }
  const Direction other = Other(d);
  if (ack) NoteAck(f, other, seg.ack, seg.ts_ns);
  CheckGaps(f, d, seg.ts_ns, false);
  if (!MaybeFinish(f)) {
    CheckGaps(f, other, seg.ts_ns, false);
    if (!MaybeFinish(f) && f->reset_ns != 0 && !WaitsForPeer(*f, f->reset_by))
      CloseFlow(f, CloseReason::kReset);
  }
  EnforceCaps();
}

bool FlowTable::WaitsForPeer(const Flow& f, Direction d) {
  if (f.half[Idx(Other(d))].ack_hole) return true;
  const auto& pending = f.half[Idx(d)].pending;
  return std::any_of(pending.begin(), pending.end(), [](const auto& c) { return c.second.need_peer != 0; });
}

void FlowTable::AddData(Flow* f, Direction d, uint32_t seq, const uint8_t* data, size_t len, uint64_t ts_ns,
                        uint64_t need_peer, uint32_t cut) {
  HalfStream& h = f->half[Idx(d)];
  int64_t off = 0;
  if (!OffsetOf(h, seq, &off)) {
    ++stats_.out_of_window_segments;
    return;
  }
  const int64_t end = off + static_cast<int64_t>(len);
  const int64_t next = static_cast<int64_t>(h.next_offset);
  const uint64_t cut_end = cut > 0 ? static_cast<uint64_t>(end) + cut : 0;
  if (f->duplicate) {
    // A second view: its bytes are the primary's; only its place is kept.
    const int64_t whole = end + static_cast<int64_t>(cut);
    if (whole > next) h.next_offset = static_cast<uint64_t>(whole);
    return;
  }
  if (end <= next) {
    stats_.retransmitted_bytes += len;
    NoteLate(h, static_cast<uint64_t>(off), static_cast<uint64_t>(end), ts_ns);
    if (cut_end != 0) SkipCut(f, d, cut_end);  // the captured part came before, the cut did not
    return;
  }
  if (off < next) {
    const size_t trim = static_cast<size_t>(next - off);
    stats_.retransmitted_bytes += trim;
    NoteLate(h, static_cast<uint64_t>(off), static_cast<uint64_t>(next), ts_ns);
    data += trim;
    off = next;
  }
  uint64_t pos = static_cast<uint64_t>(off);
  const uint64_t e = static_cast<uint64_t>(end);
  const uint8_t* base = data;  // the byte at stream offset `base_off`
  const uint64_t base_off = pos;

  if (pos == h.next_offset && need_peer == 0) {
    // In order. Buffered bytes were seen first and win, so deliver only up to
    // the next buffered chunk, let Drain deliver the chunk, and go on; a
    // chunk held for the peer stops delivery, and the rest queues behind it.
    while (pos < e) {
      if (pos < h.next_offset) {
        const uint64_t skip = std::min(e, h.next_offset) - pos;
        stats_.retransmitted_bytes += skip;
        pos += skip;
        continue;
      }
      uint64_t limit = e;
      if (!h.pending.empty()) limit = std::min(limit, h.pending.begin()->first);
      if (limit > pos) {
        Deliver(f, d, base + (pos - base_off), static_cast<size_t>(limit - pos), ts_ns);
        h.next_offset = limit;
        pos = limit;
      }
      if (!Drain(f, d) && pos < e && pos >= h.next_offset) break;
    }
    if (pos >= e) {
      if (cut_end != 0) SkipCut(f, d, cut_end);
      UpdatePendingList(f);
      return;
    }
  } else if (pos > h.next_offset && (h.pending.empty() || h.pending.begin()->first > h.next_offset)) {
    ++stats_.out_of_order_segments;  // (behind a held chunk, it only queues)
  }

  // Out of order or held: buffer the pieces not buffered already (first seen wins).
  const bool was_empty = h.pending.empty();
  const size_t pending_before = h.pending_bytes;
  auto it = h.pending.upper_bound(pos);
  if (it != h.pending.begin()) {
    auto prev = std::prev(it);
    const uint64_t prev_end = prev->first + prev->second.bytes.size();
    if (prev_end > pos) {
      const uint64_t covered = std::min(prev_end, e);
      stats_.retransmitted_bytes += covered - pos;
      pos = covered;
    }
  }
  while (pos < e) {
    const uint64_t limit = (it != h.pending.end() && it->first < e) ? it->first : e;
    if (limit > pos) {
      const uint8_t* p = base + (pos - base_off);
      // The cut follows the piece that ends the segment's captured bytes.
      Chunk chunk{std::vector<uint8_t>(p, p + (limit - pos)), ts_ns, need_peer, limit == e ? cut_end : 0};
      h.pending.emplace_hint(it, pos, std::move(chunk));
      h.pending_bytes += limit - pos;
      total_buffered_ += limit - pos;
    }
    if (it == h.pending.end() || it->first >= e) break;
    const uint64_t it_end = it->first + it->second.bytes.size();
    const uint64_t covered = std::min(it_end, e);
    stats_.retransmitted_bytes += covered - it->first;
    pos = std::max(limit, covered);
    ++it;
  }
  if (need_peer != 0 && h.pending_bytes > pending_before) ++stats_.segments_held_for_peer;
  if (was_empty && !h.pending.empty()) h.pending_since_ns = ts_ns;
  UpdatePendingList(f);
}

void FlowTable::Deliver(Flow* f, Direction d, const uint8_t* data, size_t len, uint64_t ts_ns) {
  stats_.payload_bytes_delivered += len;
  HalfStream& h = f->half[Idx(d)];
  if (h.lag_probe_offset != 0 && h.next_offset + len >= h.lag_probe_offset) {
    // Callers deliver from next_offset: these bytes reach the probe.
    if (ts_ns > h.lag_probe_ns && !f->duplicate) {
      stats_.request_lag_max_ns = std::max(stats_.request_lag_max_ns, ts_ns - h.lag_probe_ns);
    }
    h.lag_probe_offset = 0;
  }
  if (f->consumer) f->consumer->OnData(d, ByteSpan(data, len), ts_ns);
}

bool FlowTable::Drain(Flow* f, Direction d) {
  HalfStream& h = f->half[Idx(d)];
  bool removed = false;
  while (!h.pending.empty() && h.pending.begin()->first <= h.next_offset) {
    auto it = h.pending.begin();
    const std::vector<uint8_t>& bytes = it->second.bytes;
    const uint64_t chunk_end = it->first + bytes.size();
    if (chunk_end > h.next_offset) {
      if (it->second.need_peer != 0 && !PeerReached(f, d, it->second.need_peer)) break;
      const size_t skip = static_cast<size_t>(h.next_offset - it->first);
      Deliver(f, d, bytes.data() + skip, bytes.size() - skip, it->second.ts_ns);
      h.next_offset = chunk_end;
    }
    const uint64_t cut_end = it->second.cut_end;
    h.pending_bytes -= bytes.size();
    total_buffered_ -= bytes.size();
    h.pending.erase(it);
    removed = true;
    if (cut_end > h.next_offset) SkipCut(f, d, cut_end);
  }
  if (removed && !h.pending.empty()) {
    uint64_t oldest = UINT64_MAX;
    for (const auto& [off, chunk] : h.pending) oldest = std::min(oldest, chunk.ts_ns);
    h.pending_since_ns = oldest;
  }
  return removed;
}

void FlowTable::Settle(Flow* f) {
  if (f->half[0].pending.empty() && f->half[1].pending.empty()) return;
  for (bool moved = true; moved;) {
    moved = Drain(f, Direction::kClientToServer);
    moved = Drain(f, Direction::kServerToClient) || moved;
  }
}

bool FlowTable::PeerReached(const Flow* f, Direction d, uint64_t need_peer) const {
  const HalfStream& p = f->half[Idx(Other(d))];
  return p.next_offset >= need_peer || p.finished();
}

bool FlowTable::ForcePeerTo(Flow* f, Direction d, uint64_t need_peer) {
  const Direction o = Other(d);
  HalfStream& p = f->half[Idx(o)];
  const uint64_t target = p.fin_seen ? std::min(need_peer, p.fin_offset) : need_peer;
  bool skipped = false;
  while (p.next_offset < target) {
    if (!p.pending.empty() && p.pending.begin()->first < target) {
      auto it = p.pending.begin();
      if (it->first > p.next_offset) {
        SkipTo(f, o, it->first);
        skipped = true;
      }
      it->second.need_peer = 0;  // a hold of the peer's own, released with this one
      Drain(f, o);
    } else {
      SkipTo(f, o, target);
      skipped = true;
    }
  }
  if (p.ack_hole && p.next_offset >= p.acked_offset) p.ack_hole = false;
  return skipped;
}

uint64_t FlowTable::NoteAck(Flow* f, Direction d, uint32_t ack, uint64_t ts_ns) {
  HalfStream& h = f->half[Idx(d)];
  int64_t off = 0;
  if (!h.synced || !OffsetOf(h, ack, &off) || off <= static_cast<int64_t>(h.next_offset)) return 0;
  uint64_t acked = static_cast<uint64_t>(off);
  if (h.fin_seen) acked = std::min(acked, h.fin_offset);  // the FIN's sequence number is not data
  if (acked <= h.next_offset) return 0;
  h.acked_offset = std::max(h.acked_offset, acked);
  if (d == Direction::kClientToServer && h.lag_probe_offset == 0) {
    h.lag_probe_offset = acked;
    h.lag_probe_ns = ts_ns;
  }
  if (!h.ack_hole) {
    h.ack_hole = true;
    h.ack_hole_since_ns = ts_ns;
    h.ack_hole_offset = acked;
  }
  UpdatePendingList(f);
  return acked;
}

void FlowTable::SkipTo(Flow* f, Direction d, uint64_t offset, bool late_counts) {
  HalfStream& h = f->half[Idx(d)];
  const uint64_t missing = offset - h.next_offset;
  if (!f->duplicate) {
    ++stats_.gaps;
    stats_.gap_bytes += missing;
  }
  if (f->consumer) f->consumer->OnGap(d, missing);
  if (late_counts) {
    h.holes[h.next_hole] = {h.next_offset, offset, newest_ts_};
    h.next_hole = static_cast<uint8_t>((h.next_hole + 1) % h.holes.size());
  }
  h.next_offset = offset;
  if (h.lag_probe_offset != 0 && offset >= h.lag_probe_offset) h.lag_probe_offset = 0;  // never came
}

void FlowTable::SkipCut(Flow* f, Direction d, uint64_t cut_end) {
  HalfStream& h = f->half[Idx(d)];
  uint64_t to = cut_end;
  if (h.fin_seen) to = std::min(to, h.fin_offset);
  // Bytes buffered inside the cut were captured after all (another copy of
  // the frame, uncut): they stay, and the hole ends where they start.
  if (!h.pending.empty()) to = std::min(to, std::max(h.pending.begin()->first, h.next_offset));
  if (to <= h.next_offset) return;
  ++stats_.gaps_cut_by_snaplen;
  SkipTo(f, d, to, /*late_counts=*/false);
}

void FlowTable::NoteLate(HalfStream& h, uint64_t from, uint64_t to, uint64_t ts_ns) {
  for (HalfStream::Hole& hole : h.holes) {
    const uint64_t lo = std::max(from, hole.from), hi = std::min(to, hole.to);
    if (lo >= hi) continue;
    stats_.gap_bytes_came_late += hi - lo;
    if (ts_ns > hole.declared_ns)
      stats_.gap_came_late_max_ns = std::max(stats_.gap_came_late_max_ns, ts_ns - hole.declared_ns);
    // Counted once: a second copy of those bytes is a plain duplicate (a
    // middle part leaves the hole's tail uncounted).
    if (lo == hole.from) {
      hole.from = hi;
    } else {
      hole.to = lo;
    }
  }
}

void FlowTable::DeclareAckedHoles(Flow* f, Direction d, uint64_t now_ns) {
  HalfStream& h = f->half[Idx(d)];
  bool declared = false;
  while (!h.pending.empty() && h.pending.begin()->first > h.next_offset &&
         h.acked_offset >= h.pending.begin()->first && now_ns >= h.pending_since_ns &&
         now_ns - h.pending_since_ns >= config_.ack_gap_grace_ns) {
    ++stats_.gaps_proven_by_ack;
    SkipTo(f, d, h.pending.begin()->first);
    Drain(f, d);
    declared = true;
  }
  if (declared) {
    if (h.ack_hole && h.next_offset >= h.acked_offset) h.ack_hole = false;
    Settle(f);
    UpdatePendingList(f);
  }
}

void FlowTable::CheckGaps(Flow* f, Direction d, uint64_t now_ns, bool all) {
  HalfStream& h = f->half[Idx(d)];
  if (h.ack_hole && h.next_offset >= h.acked_offset) h.ack_hole = false;
  if (h.ack_hole && !all && h.next_offset >= h.ack_hole_offset) {
    h.ack_hole_since_ns = now_ns;
    h.ack_hole_offset = h.acked_offset;
  }
  const bool ack_timed_out =
      h.ack_hole && now_ns >= h.ack_hole_since_ns && now_ns - h.ack_hole_since_ns >= config_.gap_timeout_ns;
  while (!h.pending.empty()) {
    auto head = h.pending.begin();
    if (head->first <= h.next_offset) {
      // Next in line, held for bytes of the other direction (Drain ran after
      // every insert and every delivery). Bytes queued behind a hold are in
      // order, so the per-direction caps do not end it (max_memory_bytes
      // and the hold's time do), and its time is the capture clock: a live
      // worker ticks on the wall clock while its queue may still hold the
      // very bytes waited for.
      Chunk& c = head->second;
      if (!PeerReached(f, d, c.need_peer)) {
        const uint64_t capture_now = std::min(now_ns, newest_ts_);
        const bool expired = all || (capture_now >= c.ts_ns && capture_now - c.ts_ns >= config_.peer_hold_ns);
        if (!expired) break;
        if (ForcePeerTo(f, d, c.need_peer)) ++stats_.holds_expired;
      }
      c.need_peer = 0;
      Drain(f, d);
      continue;
    }
    const bool full = all || h.pending_bytes > config_.max_buffered_bytes_per_direction ||
                      h.pending.size() > config_.max_buffered_segments_per_direction;
    const bool timed_out =
        now_ns >= h.pending_since_ns && now_ns - h.pending_since_ns >= config_.gap_timeout_ns;
    if (!(full || timed_out || ack_timed_out)) break;
    SkipTo(f, d, head->first);
    Drain(f, d);
  }
  if (h.ack_hole && (all || ack_timed_out) && h.pending.empty() && h.next_offset < h.acked_offset) {
    SkipTo(f, d, h.acked_offset);
  }
  if (h.ack_hole && h.next_offset >= h.acked_offset) h.ack_hole = false;
  if (all && h.fin_seen && h.next_offset < h.fin_offset) SkipTo(f, d, h.fin_offset);
  Settle(f);
  UpdatePendingList(f);
}

bool FlowTable::MaybeFinish(Flow* f) {
  for (size_t i = 0; i < 2; ++i) {
    HalfStream& h = f->half[i];
    if (!h.fin_told && h.finished()) {
      h.fin_told = true;
      if (f->consumer) f->consumer->OnFin(static_cast<Direction>(i), h.fin_acked);
    }
  }
  if (f->half[0].finished() && f->half[1].finished()) {
    CloseFlow(f, CloseReason::kFin);
    return true;
  }
  return false;
}

void FlowTable::UpdatePendingList(Flow* f) {
  const bool has = !f->half[0].pending.empty() || !f->half[1].pending.empty() || f->half[0].ack_hole ||
                   f->half[1].ack_hole || f->reset_ns != 0;
  if (has && !f->in_pending_list) {
    f->pending_it = pending_.insert(pending_.end(), f);
    f->in_pending_list = true;
  } else if (!has && f->in_pending_list) {
    pending_.erase(f->pending_it);
    f->in_pending_list = false;
  }
}

void FlowTable::CloseFlow(Flow* f, CloseReason reason) {
  CheckGaps(f, Direction::kClientToServer, 0, true);
  CheckGaps(f, Direction::kServerToClient, 0, true);
  if (f->consumer) f->consumer->OnCloseAt(reason, f->last_seen_ns);
  ++stats_.flows_closed[static_cast<size_t>(reason)];
  Unindex(f);
  if (f->primary != nullptr) {
    auto& dups = f->primary->duplicates;
    const auto it = std::find(dups.begin(), dups.end(), f);
    if (it != dups.end()) dups.erase(it);
  }
  // Views that go on after their primary ended other than by FIN (a RST
  // seen on one side of the NAT only, an eviction): the first is its heir,
  // the others its duplicates. The heir is decoded from its next payload on,
  // as joined mid-stream (Promote): a RST that every view shows closes it
  // before that, and nothing is decoded twice.
  if (!f->duplicates.empty()) {
    Flow* heir = f->duplicates.front();
    heir->primary = nullptr;
    heir->heir = reason != CloseReason::kFin && reason != CloseReason::kShutdown;
    // A view starting again on the ended side is the heir's duplicate.
    if (heir->heir) IndexPrimary(heir);
    for (size_t i = 1; i < f->duplicates.size(); ++i) {
      f->duplicates[i]->primary = heir;
      heir->duplicates.push_back(f->duplicates[i]);
    }
  }
  if (reason == CloseReason::kFin || reason == CloseReason::kReset) Bury(f, reason);
  lru_.erase(f->lru_it);
  if (!f->carried_data) quiet_.erase(f->quiet_it);
  if (f->in_pending_list) pending_.erase(f->pending_it);
  EraseFlow(f);  // destroys *f
}

void FlowTable::Bury(const Flow* f, CloseReason reason) {
  if (config_.closed_linger_ns == 0 || config_.max_flows == 0) return;
  Closed c;
  c.closed_ns = f->last_seen_ns;
  c.server = f->info.server;
  c.reset = reason == CloseReason::kReset;
  c.carried_data = f->carried_data;
  for (size_t d = 0; d < 2; ++d) {
    c.synced[d] = f->half[d].synced;
    c.start_seq[d] = f->half[d].base_seq;
    c.end_seq[d] = f->half[d].next_seq();
  }
  closed_.insert_or_assign(f->key, c);
  closed_order_.emplace_back(f->key, c.closed_ns);
  // Entries of keys forgotten or closed again since stay in the order until
  // they come up; both are bounded.
  while (closed_.size() > config_.max_flows || closed_order_.size() > 2 * config_.max_flows) PopClosed();
}

void FlowTable::PopClosed() {
  const auto& [key, closed_ns] = closed_order_.front();
  const auto it = closed_.find(key);
  if (it != closed_.end() && it->second.closed_ns == closed_ns) closed_.erase(it);
  closed_order_.pop_front();
}

bool FlowTable::LateForClosed(const FlowKey& key, const TcpSegment& seg) {
  const auto it = closed_.find(key);
  if (it == closed_.end()) return false;
  const Closed& c = it->second;
  if (seg.ts_ns <= c.closed_ns + config_.closed_linger_ns) {
    const size_t d = Idx(seg.src == c.server ? Direction::kServerToClient : Direction::kClientToServer);
    const bool server_after_reset = c.reset && d == Idx(Direction::kServerToClient);
    if (!c.synced[d]) {
      // Nothing of this direction was seen: only a reply in flight is known
      // for what it is.
      if (server_after_reset) return true;
    } else {
      // How far the segment starts before the end of what the flow had.
      const int64_t before_end = static_cast<int32_t>(c.end_seq[d] - seg.seq);
      if (before_end >= static_cast<int64_t>(seg.payload_len) && before_end <= kTwinMaxDistance) return true;
      // A second copy of the connection: anywhere in what the flow had.
      if (c.copy && before_end >= static_cast<int64_t>(seg.payload_len) &&
          before_end <= static_cast<int64_t>(c.end_seq[d] - c.start_seq[d]))
        return true;
      if (server_after_reset && before_end >= -kTwinMaxDistance && before_end <= kTwinMaxDistance)
        return true;
    }
  }
  closed_.erase(it);
  return false;
}

bool FlowTable::SynCopyOfClosed(const FlowKey& key, const TcpSegment& seg) {
  // A merge of two captures of the same traffic (both ends of a link, two
  // mirror ports) whose clocks differ by more than a short connection
  // lasts, or interfaces written out of time order, show such a connection
  // whole, then whole again: a review saw 60 connections decoded as 120,
  // their RPUSHes applied twice, unflagged. The copy's SYN names the closed
  // flow's ISN; a new connection on the 4-tuple (a port reused) has another.
  // A flow that carried no data is no copy's original, whatever its ISN: a
  // SYN refused by a RST and tried again, or the TIME_WAIT exchange before a
  // port's reuse, sends the same ISN again for a real connection (a review).
  const auto it = closed_.find(key);
  if (it == closed_.end()) return false;
  Closed& c = it->second;
  if (!c.carried_data || seg.ts_ns > c.closed_ns + config_.closed_linger_ns) return false;
  const Direction by = seg.src == c.server ? Direction::kServerToClient : Direction::kClientToServer;
  const size_t d = Idx(by), peer = Idx(Other(by));
  if (!c.synced[d] || seg.seq + 1 != c.start_seq[d]) return false;
  if (seg.Has(kTcpAck) && c.synced[peer] && seg.ack != c.start_seq[peer]) return false;
  if (!c.copy) ++stats_.closed_flows_seen_again;
  c.copy = true;
  return true;
}

void FlowTable::ForgetClosedBefore(uint64_t now_ns) {
  while (!closed_order_.empty() && closed_order_.front().second + config_.closed_linger_ns < now_ns)
    PopClosed();
}

void FlowTable::Promote(Flow* f) {
  f->heir = false;
  f->duplicate = false;
  f->info.joined_mid_stream = true;
  if (factory_ != nullptr) f->consumer = factory_->NewFlow(f->info);
  if (!f->indexed) IndexPrimary(f);
  ++stats_.duplicates_promoted;
}

void FlowTable::AdvanceCaptureClock(uint64_t ts_ns) {
  newest_ts_ = std::max(newest_ts_, ts_ns);
}

uint64_t FlowTable::OldestPendingNs() const {
  uint64_t oldest = UINT64_MAX;
  for (const Flow* f : pending_) {
    for (const HalfStream& h : f->half) {
      if (!h.pending.empty()) oldest = std::min(oldest, h.pending_since_ns);
    }
  }
  return oldest;
}

void FlowTable::EnforceCaps() {
  while (memory_bytes() > config_.max_memory_bytes) {
    Flow* f = nullptr;
    for (Flow* p : pending_) {
      if (!p->half[0].pending.empty() || !p->half[1].pending.empty()) {
        f = p;
        break;
      }
    }
    if (f != nullptr) {
      ++stats_.gaps_forced_by_memory_cap;
      CheckGaps(f, Direction::kClientToServer, 0, true);
      CheckGaps(f, Direction::kServerToClient, 0, true);
      MaybeFinish(f);
      continue;
    }
    if (lru_.empty()) break;
    CloseFlow(lru_.front(), CloseReason::kMemoryCap);
  }
}

void FlowTable::Tick(uint64_t now_ns) {
  ForgetClosedBefore(now_ns);
  while (!lru_.empty()) {
    Flow* f = lru_.front();
    if (now_ns < f->last_seen_ns || now_ns - f->last_seen_ns < config_.idle_timeout_ns) break;
    CloseFlow(f, CloseReason::kIdle);
  }
  for (auto it = pending_.begin(); it != pending_.end();) {
    Flow* f = *it;
    ++it;
    CheckGaps(f, Direction::kClientToServer, now_ns, false);
    CheckGaps(f, Direction::kServerToClient, now_ns, false);
    if (MaybeFinish(f) || f->reset_ns == 0) continue;
    // A RST waiting for the other direction (Process): it came, or the
    // hold ran out on the capture clock, as the holds do (a live worker
    // ticks on the wall clock while its queue may hold the bytes waited
    // for: a review lost 14 of 100 answered SETs so).
    const bool waited_out = std::min(now_ns, newest_ts_) >= f->reset_ns + config_.peer_hold_ns;
    if (waited_out || !WaitsForPeer(*f, f->reset_by)) {
      if (waited_out) ++stats_.rst_waits_expired;  // (its holds expired above, or end now)
      CloseFlow(f, CloseReason::kReset);
    }
  }
}

void FlowTable::CloseAll(CloseReason reason) {
  while (!lru_.empty()) CloseFlow(lru_.front(), reason);
}

}  // namespace kvf::dataplane
