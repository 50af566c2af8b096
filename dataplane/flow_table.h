// The flow table and TCP reassembly: turns decoded segments of connections to
// the configured servers into per-connection, per-direction ordered byte
// streams with explicit, counted gaps. A pure library: no I/O, no threads.
//
// Policy (docs/capture.md has the long form):
//  * Overlaps and retransmissions: the first bytes seen for a stream offset
//    win; later copies are dropped and counted (retransmitted_bytes).
//  * A hole is declared a gap when it has not been filled while more than
//    max_buffered_bytes_per_direction (or _segments_) wait beyond it, or when
//    the oldest waiting segment is older than gap_timeout_ns, or when the
//    flow closes. OnGap reports the exact number of missing bytes.
//  * The peer's ACKs prove bytes exist even when nothing after them was
//    captured (the last request of a burst lost): bytes acknowledged but not
//    seen for gap_timeout_ns are declared a gap too. An ACK covering a FIN
//    that was never captured counts the FIN's sequence number as one byte.
//  * Causal order across directions: a data segment whose ACK covers bytes of
//    the other direction not captured yet (a mirror that delays one
//    direction, or lost it) is held until those bytes arrive, so a reply is
//    never delivered before the request it answers. After peer_hold_ns the
//    missing bytes are declared a gap and the segment goes on.
//  * One connection seen twice under other addresses (a capture before and
//    after NAT: `tcpdump -i any` on a Docker or Kubernetes node, a mirror fed
//    from both sides of a load balancer) is decoded once: a new flow whose
//    client port and ISN are a live flow's (from the SYN or SYN-ACK), or,
//    joined mid-stream, whose client endpoint is a live flow's and whose
//    sequence numbers lie within 16 MiB of it in both directions, is tracked
//    without a consumer (duplicate_flows), and decoded from there on if its
//    primary ends first other than by FIN (duplicates_promoted).
//  * Mid-stream join: a flow first seen without a SYN starts each direction at
//    the first payload byte seen; the client is the side that is not a
//    configured server endpoint. FlowInfo::joined_mid_stream tells consumers.
//  * Caps: max_flows (the least recently active flow is evicted) and
//    max_memory_bytes (the flow buffering out-of-order data longest is forced
//    to declare its gaps; then least recently active flows are evicted).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "dataplane/decode.h"
#include "dataplane/endpoint.h"

namespace kvf::dataplane {

enum class Direction : uint8_t { kClientToServer = 0, kServerToClient = 1 };
std::string_view DirectionName(Direction d);

enum class CloseReason : uint8_t {
  kFin = 0,        // both directions finished with FIN and every byte accounted for
  kReset,          // RST seen (from either side)
  kIdle,           // no segment for idle_timeout_ns
  kFlowTableFull,  // evicted to admit a new flow (max_flows)
  kMemoryCap,      // evicted by the global memory cap
  kReplaced,       // a new SYN reused the 4-tuple
  kShutdown,       // CloseAll()
  kCount
};
std::string_view CloseReasonName(CloseReason r);

struct FlowInfo {
  Endpoint client;
  Endpoint server;
  bool joined_mid_stream = false;  // no client SYN seen: the stream starts mid-way
  uint64_t first_ts_ns = 0;
};

// Receives one flow's streams. Calls come from the thread that drives the
// FlowTable, in stream order; `bytes` is valid only during the call.
class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;
  virtual void OnData(Direction dir, ByteSpan bytes, uint64_t capture_ts_ns) = 0;
  // `missing_bytes` bytes of `dir` were lost between the previous OnData and
  // the next one (or the end of the stream).
  virtual void OnGap(Direction dir, uint64_t missing_bytes) = 0;
  // `dir`'s stream ended with a FIN, every byte before it delivered (or
  // reported lost): that side sends no more. `peer_acked`: the offset in
  // the other direction's stream that the FIN acknowledges (what that side
  // had received when it closed), or kUnknownOffset. Called once per
  // direction.
  static constexpr uint64_t kUnknownOffset = UINT64_MAX;
  virtual void OnFin(Direction /*dir*/, uint64_t /*peer_acked*/) {}
  // The last call for this flow; the consumer is destroyed right after.
  virtual void OnClose(CloseReason reason) = 0;
  // What the flow table calls: OnClose, with the capture time of the flow's
  // last segment (its FIN or RST; for an idle or evicted flow, its last).
  virtual void OnCloseAt(CloseReason reason, uint64_t /*last_seen_ns*/) { OnClose(reason); }
};

class StreamConsumerFactory {
 public:
  virtual ~StreamConsumerFactory() = default;
  // Called on the FlowTable's thread for each new flow. May return nullptr to
  // track the flow without consuming its bytes.
  virtual std::unique_ptr<StreamConsumer> NewFlow(const FlowInfo& info) = 0;
  // Capture workers (Dispatcher) only, on the worker's thread: every segment
  // this table gets from now on is not older than `watermark_ns` (frames
  // that arrive out of time order aside). Called after each slice of
  // segments, and at each tick while the worker has nothing queued.
  // `request_lag_ns`: the table's RequestLagNs.
  virtual void OnProgress(uint64_t /*watermark_ns*/, uint64_t /*request_lag_ns*/) {}
  // Capture workers only: the worker closed its flows and stops.
  virtual void OnStop() {}
};

struct FlowTableConfig {
  // Connections to or from these endpoints are tracked; every other segment
  // is counted (segments_not_for_server) and ignored. Empty: track all flows
  // (the destination of a flow's first segment is then taken as the server).
  // An endpoint with the unspecified address (*:6379) matches any address on
  // its port (Endpoint::Matches).
  std::vector<Endpoint> servers;
  size_t max_flows = 65536;
  size_t max_buffered_bytes_per_direction = 1 << 20;
  size_t max_buffered_segments_per_direction = 1024;
  size_t max_memory_bytes = size_t{256} << 20;  // buffered bytes + per-flow overhead
  uint64_t gap_timeout_ns = 500'000'000;
  // A hole whose bytes the peer has acknowledged, with later bytes already
  // waiting beyond it, is declared a gap as soon as the peer sends data and
  // the hole is this old: the peer received those bytes, so the mirror lost
  // them (or reorders them by more than this). Its answer then comes after
  // the requests around the hole, not 500 ms before them.
  uint64_t ack_gap_grace_ns = 2'000'000;
  // A data segment whose ACK covers bytes of the other direction that were
  // not captured yet waits this long for them, on the capture clock (the
  // newest segment time seen, whatever Tick is given); then they are declared
  // lost (holds_expired) and it is delivered. 0: never held.
  uint64_t peer_hold_ns = 2'000'000;
  // Well past the keepalive periods of both ends (Redis probes its clients
  // after 300 s of silence, Linux clients that ask for keepalive after
  // 7200 s), so that an idle pooled connection, whose probes refresh it, is
  // never dropped and seen again as joined mid-stream (db unknown, out of
  // step). An idle flow's parsers give back what a large message grew
  // (resp::Parser::kKeepBytes); max_flows evicts flows that never carried
  // data first, then the least recently active.
  uint64_t idle_timeout_ns = 3 * 3600 * 1'000'000'000ull;
  // A flow closed by FIN or RST is remembered this long (at most max_flows of
  // them, the oldest forgotten first), so that its late data segments do not
  // open a flow joined mid-stream: a copy of bytes it already had (a
  // retransmission, a mirror's second copy), or, after a RST, what the
  // server still had in flight to the client. Those are dropped and counted
  // (segments_after_close). Anything else (new client bytes after a RST,
  // which a connection that ignored the RST would send; bytes beyond a
  // FIN-closed stream) opens a flow as before. 0: never remembered.
  uint64_t closed_linger_ns = 5'000'000'000;
};

// Counters named for an operator; `buffered_bytes` and `active_flows` are
// gauges, the rest only grow.
struct FlowTableStats {
  uint64_t segments = 0;                 // TCP segments offered
  uint64_t segments_not_for_server = 0;  // neither side is a configured server
  // Of those, segments with a configured server's port on one side at
  // another address (the same server over ::1 or another interface?).
  uint64_t segments_server_port_elsewhere = 0;
  uint64_t ack_without_flow = 0;  // payload-less segment of an unknown flow
  uint64_t rst_without_flow = 0;
  // RSTs whose sequence number lies far from the sender's stream (a late
  // RST of an earlier connection on the 4-tuple, a blind one): the
  // receiver ignores them (RFC 5961), and so does the flow.
  uint64_t rst_out_of_window = 0;
  // RSTs that came while the sender's segments waited for bytes of the
  // other direction (a mirror delaying it): the flow closed once they came,
  // or after peer_hold_ns.
  uint64_t rst_waited_for_peer = 0;
  // Of those, the ones whose wait ran out before the bytes came.
  uint64_t rst_waits_expired = 0;
  uint64_t fin_without_flow = 0;  // a FIN of a flow already closed (retransmitted, or captured twice)
  // FINs behind bytes their sender's stream already delivered (a late FIN
  // of an earlier connection on the 4-tuple): ignored.
  uint64_t fin_out_of_window = 0;
  uint64_t segments_src_equals_dst = 0;  // a TCP self-connection has no direction: ignored
  // Segments of a flow closed moments before (closed_linger_ns): bytes it
  // already had, a reply in flight when the client reset, or a second copy
  // of the whole connection, its handshake included.
  uint64_t segments_after_close = 0;
  // Of those, the second copies: a merge of two captures of the same
  // traffic whose clocks differ, interfaces written out of time order.
  uint64_t closed_flows_seen_again = 0;
  uint64_t flows_created = 0;
  uint64_t flows_joined_mid_stream = 0;
  // Flows that are a second view of a live one (NAT): tracked, not consumed;
  // and of those, views decoded after all because their primary ended first
  // (a RST seen on one side only, an eviction).
  uint64_t duplicate_flows = 0;
  uint64_t duplicates_promoted = 0;
  // Of the flow-table-full evictions, those of flows that never carried
  // payload (handshakes only: half-open, scans, SYN floods), evicted first.
  uint64_t evicted_before_data = 0;
  uint64_t flows_closed[static_cast<size_t>(CloseReason::kCount)] = {};
  uint64_t payload_bytes_delivered = 0;
  uint64_t retransmitted_bytes = 0;  // already delivered or buffered: dropped
  // Of those, bytes of a hole already declared lost that came after all
  // (a mirror delaying one direction more than peer_hold_ns), and how long
  // after the hole was declared the latest came.
  uint64_t gap_bytes_came_late = 0;
  uint64_t gap_came_late_max_ns = 0;
  uint64_t out_of_order_segments = 0;   // buffered behind a hole
  uint64_t out_of_window_segments = 0;  // sequence number implausibly far away
  uint64_t gaps = 0;
  uint64_t gap_bytes = 0;
  uint64_t gaps_forced_by_memory_cap = 0;
  uint64_t gaps_proven_by_ack =
      0;  // declared early: acknowledged by a peer that sent data (ack_gap_grace_ns)
  // Declared at once: a frame the capture's snap length cut (the captured
  // part of its payload is delivered; DecodeFrame's payload_cut).
  uint64_t gaps_cut_by_snaplen = 0;
  // Data segments held until the other direction's bytes their ACK covers
  // were captured (a mirror reordering the two directions), and of those the
  // holds that ran out (the bytes never came: declared a gap).
  uint64_t segments_held_for_peer = 0;
  uint64_t holds_expired = 0;
  // The longest a client's bytes were captured after the server's ACK of
  // them: how far behind the server's the mirror delivers the client's
  // direction, at least (RequestLagNs).
  uint64_t request_lag_max_ns = 0;
  uint64_t buffered_bytes = 0;
  uint64_t active_flows = 0;

  FlowTableStats& operator+=(const FlowTableStats& o);
  // (name, value) pairs for printing; names are stable.
  std::vector<std::pair<std::string, uint64_t>> Named() const;
};

class FlowTable {
 public:
  // `factory` must outlive the table.
  FlowTable(FlowTableConfig config, StreamConsumerFactory* factory);
  ~FlowTable();  // frees state without calling consumers; call CloseAll first to flush
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Feeds one segment. Its `ts_ns` is the table's clock for timeouts.
  void Process(const TcpSegment& seg);
  // Applies gap and idle timeouts as of `now_ns` (same clock as ts_ns).
  void Tick(uint64_t now_ns);
  // No segment older than `ts_ns` is to come (a live worker's watermark,
  // its queue empty): holds run on this clock too, so a held segment whose
  // flow then falls silent still ends after peer_hold_ns.
  void AdvanceCaptureClock(uint64_t ts_ns);
  // Flushes every flow (declaring remaining holes as gaps) and closes it.
  void CloseAll(CloseReason reason = CloseReason::kShutdown);

  // A snapshot, gauges included.
  FlowTableStats stats() const;
  // The first few addresses seen with a configured server's port that are
  // not a configured server (segments_server_port_elsewhere).
  static constexpr size_t kElsewhereNamed = 4;
  const std::vector<Endpoint>& server_port_elsewhere() const { return elsewhere_; }
  bool server_port_elsewhere_more() const { return elsewhere_more_; }  // others seen past those
  size_t flow_count() const { return flow_count_; }
  // Buffered out-of-order bytes plus per-flow overhead, as counted against max_memory_bytes.
  size_t memory_bytes() const;
  // Capture time of the oldest out-of-order chunk still waiting for a hole
  // to fill (it is delivered later with that time), or UINT64_MAX. Scans the
  // flows that have one.
  uint64_t OldestPendingNs() const;
  // How much later than it was sent a request may be captured: the longest
  // a client's bytes came after the server's ACK of them (a mirror that
  // delays the client's direction; without one, never: the ACK follows the
  // bytes), up to peer_hold_ns (a longer delay loses bytes unless the hold
  // is raised). Never decreases. Spans that start at a request's capture
  // are that much too short at the start (AmbiguityTracker::Advance).
  uint64_t RequestLagNs() const { return std::min(stats_.request_lag_max_ns, config_.peer_hold_ns); }
  static constexpr size_t kFlowOverheadBytes = 768;  // sizeof(Flow), 696, and its index entries

 private:
  struct Chunk {
    std::vector<uint8_t> bytes;
    uint64_t ts_ns;
    // Offset of the other direction that must be delivered before this
    // chunk (what its segment acknowledged); 0: none.
    uint64_t need_peer = 0;
    // The snap length cut its segment: the bytes from the chunk's end up to
    // this offset were never captured (0: none). Declared a gap once the
    // chunk is delivered (SkipCut).
    uint64_t cut_end = 0;
  };
  struct HalfStream {
    bool synced = false;
    uint32_t base_seq = 0;     // sequence number of stream offset 0
    uint64_t next_offset = 0;  // bytes delivered or declared lost so far
    bool fin_seen = false;
    bool fin_told = false;  // the consumer's OnFin was called
    // The other direction's offset the FIN acknowledged (kUnknownOffset: none).
    uint64_t fin_acked = StreamConsumer::kUnknownOffset;
    // The latest holes declared lost, [from, to), and when (capture time).
    struct Hole {
      uint64_t from = 0, to = 0, declared_ns = 0;
    };
    std::array<Hole, 4> holes{};
    uint8_t next_hole = 0;
    uint64_t fin_offset = 0;
    std::map<uint64_t, Chunk> pending;  // out-of-order data by stream offset
    size_t pending_bytes = 0;
    uint64_t pending_since_ns = 0;  // arrival of the oldest pending chunk
    uint64_t acked_offset = 0;      // highest offset the peer acknowledged
    bool ack_hole = false;          // acked_offset > next_offset: bytes exist we have not seen
    // The clock of that hole: when acked_offset was ack_hole_offset. It
    // restarts once the bytes up to ack_hole_offset came, for those
    // acknowledged since: a client that streams past a mirror delaying its
    // direction always has some acknowledged and not captured yet, each for
    // a moment only.
    uint64_t ack_hole_since_ns = 0;
    uint64_t ack_hole_offset = 0;
    // A probe of how late the mirror delivers this direction: the offset an
    // ACK covered before its bytes were captured, and when (0: none).
    uint64_t lag_probe_offset = 0;
    uint64_t lag_probe_ns = 0;
    // Before the stream syncs, on a connection seen from its SYN: the
    // lowest sequence number the peer acknowledged, where it starts at the
    // latest (its SYN-ACK missed, the peer's handshake ACK says ISN + 1).
    bool start_acked = false;
    uint32_t start_acked_seq = 0;

    uint32_t next_seq() const { return base_seq + static_cast<uint32_t>(next_offset); }
    bool finished() const { return fin_seen && next_offset >= fin_offset; }
  };
  struct Flow {
    FlowKey key;
    uint64_t hash = 0;  // key.Hash()
    FlowInfo info;
    HalfStream half[2];
    std::unique_ptr<StreamConsumer> consumer;
    uint64_t last_seen_ns = 0;
    std::list<Flow*>::iterator lru_it;
    bool carried_data = false;            // some payload seen in either direction
    std::list<Flow*>::iterator quiet_it;  // in quiet_ while !carried_data
    bool in_pending_list = false;
    std::list<Flow*>::iterator pending_it;
    // Views of one connection (NAT): a duplicate has no consumer and keeps
    // only its stream positions; it points at the flow it shadows, which
    // lists it. Both unlink on close.
    bool duplicate = false;
    bool heir = false;  // a duplicate whose primary ended: decoded from its next payload (Promote)
    // A RST came (capture time; 0: none) while the other direction lagged:
    // the flow closes when it caught up (WaitsForPeer), or after the hold.
    uint64_t reset_ns = 0;
    Direction reset_by = Direction::kClientToServer;
    Flow* primary = nullptr;
    std::vector<Flow*> duplicates;
    // FindTwin's indexes, of flows that are not duplicates.
    bool indexed = false;
    uint64_t isn_key = 0;  // client port and ISN (a flow started by a SYN or SYN-ACK), else 0
    uint64_t client_key = 0;
    Flow* client_prev = nullptr;  // flows of the same client endpoint
    Flow* client_next = nullptr;
  };

  // Flows by key: open addressing with linear probing over a power-of-two
  // array at most half full (std::unordered_map's modulo and node walk were
  // the biggest per-packet cost). A slot owns its flow; empty: null.
  struct Slot {
    uint64_t hash = 0;
    std::unique_ptr<Flow> flow;
  };
  Flow* FindFlow(const FlowKey& key, uint64_t hash) const;
  void InsertFlow(std::unique_ptr<Flow> f);
  void EraseFlow(Flow* f);  // destroys *f

  bool IsServer(const Endpoint& e) const;
  // A segment for no configured server: is a server's port on either side?
  void NoteElsewhere(const Endpoint& src, const Endpoint& dst);
  // A live flow that `seg`, the first segment of a new flow from `client`,
  // shows under other addresses, or null.
  Flow* FindTwin(const TcpSegment& seg, const Endpoint& client, bool src_is_client) const;
  void IndexPrimary(Flow* f);
  // An heir starts being decoded, as joined mid-stream.
  void Promote(Flow* f);
  void Unindex(Flow* f);
  static uint64_t ClientKey(const Endpoint& client);
  Flow* CreateFlow(const FlowKey& key, const TcpSegment& seg);
  // A SYN or SYN-ACK on the 4-tuple of `f` starts `f`'s own connection (a
  // retransmission, or a handshake captured after the first data), not a
  // new one on a reused port whose earlier segments were missed.
  static bool HandshakeOf(const Flow& f, const TcpSegment& seg);
  // `need_peer`: offset of the other direction to deliver first (0: none);
  // `cut`: bytes after these the snap length cut (TcpSegment::payload_cut).
  void AddData(Flow* f, Direction d, uint32_t seq, const uint8_t* data, size_t len, uint64_t ts_ns,
               uint64_t need_peer, uint32_t cut);
  // Bytes up to `cut_end` that a snap length cut: once delivery reached
  // them, they are a gap at once (up to the first byte buffered beyond).
  void SkipCut(Flow* f, Direction d, uint64_t cut_end);
  void Deliver(Flow* f, Direction d, const uint8_t* data, size_t len, uint64_t ts_ns);
  // Delivers the buffered chunks of `d` that are next in line and not held;
  // true if it delivered or dropped any.
  bool Drain(Flow* f, Direction d);
  // Drains both directions until neither moves (a delivery on one side can
  // release chunks held on the other).
  void Settle(Flow* f);
  // True when the other direction of `d` has delivered up to `need_peer`.
  bool PeerReached(const Flow* f, Direction d, uint64_t need_peer) const;
  // A hold of `d` ran out: the other direction declares what it has not
  // captured below `need_peer` a gap (and delivers what it buffered there).
  // True if it declared a gap.
  bool ForcePeerTo(Flow* f, Direction d, uint64_t need_peer);
  // Whether `d`'s peer lags behind what `d` showed of it: bytes it
  // acknowledged not captured yet, or `d`'s segments held for them.
  static bool WaitsForPeer(const Flow& f, Direction d);
  // Records that the other side acknowledged `ack` of direction `d`. Returns
  // the acknowledged offset when it lies beyond what `d` delivered, else 0.
  uint64_t NoteAck(Flow* f, Direction d, uint32_t ack, uint64_t ts_ns);
  // Declares holes as gaps until the pending data no longer exceeds the
  // window (or, with `all`, until nothing is pending).
  void CheckGaps(Flow* f, Direction d, uint64_t now_ns, bool all);
  // Reports the bytes of `d` from next_offset up to `offset` (> next_offset)
  // as a gap and moves past them. `late_counts`: a copy of those bytes that
  // comes after is counted as having come late (gap_bytes_came_late), which
  // a cut's bytes (SkipCut) are not: they were captured, only cut short.
  void SkipTo(Flow* f, Direction d, uint64_t offset, bool late_counts = true);
  // Bytes [from, to) of `h` came at `ts_ns`, behind what was delivered:
  // those in its latest declared holes came late (gap_bytes_came_late).
  void NoteLate(HalfStream& h, uint64_t from, uint64_t to, uint64_t ts_ns);
  // Declares the holes of `d` that the peer acknowledged, with bytes waiting
  // beyond them, once older than ack_gap_grace_ns (before the peer's data).
  void DeclareAckedHoles(Flow* f, Direction d, uint64_t now_ns);
  // Closes `f` when both directions are finished; true if it did.
  bool MaybeFinish(Flow* f);
  void UpdatePendingList(Flow* f);
  void CloseFlow(Flow* f, CloseReason reason);
  // Remembers a flow closed by FIN or RST (closed_linger_ns).
  void Bury(const Flow* f, CloseReason reason);
  // True when `seg`, a data segment without a SYN and without a flow, is a
  // late segment of a flow closed under `key` (to drop). Forgets that flow
  // when `seg` is not, or comes too late.
  bool LateForClosed(const FlowKey& key, const TcpSegment& seg);
  // True when `seg`, a SYN or SYN-ACK without a flow, carries the ISN of the
  // flow closed under `key` moments before: the same connection captured a
  // second time (to drop, with the rest of that copy), not a new one.
  bool SynCopyOfClosed(const FlowKey& key, const TcpSegment& seg);
  void PopClosed();  // the oldest entry of closed_order_
  void ForgetClosedBefore(uint64_t now_ns);
  void EnforceCaps();
  // Stream offset of `seq` in `h`, or false when implausibly far from next_offset.
  static bool OffsetOf(const HalfStream& h, uint32_t seq, int64_t* offset);
  // Syncs `h` at its first segment's sequence number, or earlier where the
  // peer acknowledged its start (HalfStream::start_acked).
  static void SyncAt(HalfStream* h, uint32_t first_seq);

  FlowTableConfig config_;
  StreamConsumerFactory* factory_;
  std::vector<Slot> slots_;
  size_t flow_count_ = 0;
  std::list<Flow*> lru_;  // least recently active first
  // Flows that have carried no payload yet, oldest first. A full table evicts
  // these before any flow that carried data, so a SYN flood or a port scan
  // cannot push established (and perhaps idle) connections out.
  std::list<Flow*> quiet_;
  std::list<Flow*> pending_;  // flows with out-of-order data or an ACK-proven hole, oldest first
  std::unordered_map<uint64_t, Flow*> by_isn_;     // isn_key -> flow
  std::unordered_map<uint64_t, Flow*> by_client_;  // client_key -> first flow of the chain
  // Flows closed by FIN or RST, by key, and in the order they closed.
  struct Closed {
    uint64_t closed_ns = 0;
    Endpoint server;
    bool reset = false;
    bool synced[2] = {false, false};
    uint32_t start_seq[2] = {0, 0};  // of each direction's first byte (its ISN + 1 from a handshake)
    uint32_t end_seq[2] = {0, 0};    // sequence number after the last byte of each direction
    bool carried_data = false;
    // Its handshake came again: a second copy of the whole connection is
    // being captured, and every segment within its streams is dropped.
    bool copy = false;
  };
  std::unordered_map<FlowKey, Closed, FlowKeyHasher> closed_;
  std::deque<std::pair<FlowKey, uint64_t>> closed_order_;  // (key, closed_ns), oldest first
  size_t total_buffered_ = 0;
  uint64_t newest_ts_ = 0;  // the capture clock: newest segment time processed
  FlowTableStats stats_;
  std::vector<Endpoint> elsewhere_;
  bool elsewhere_more_ = false;
};

}  // namespace kvf::dataplane
