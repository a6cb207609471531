// The NAT engine of one worker lcore: feed it bursts of frames from the inside or the outside,
// it translates them in place and returns a verdict per frame. It owns its sessions, its host
// table and its public port partition (invariants I1, I2); nothing in it is shared.
//
// Pipeline per burst: parse -> build keys -> one bulk hash lookup -> per packet: fast path
// (hit: track, translate) or slow path (miss: allocate a port, create the session). IPv4
// fragments then take the fragment path, one by one (fragment_path.cpp).
// No allocation, no locks, no exceptions and no logging on the packet path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "counters.h"
#include "drop_reasons.h"
#include "expiry_lists.h"
#include "flow_key.h"
#include "fragment_table.h"
#include "host_table.h"
#include "nat_config.h"
#include "nat_event.h"
#include "packet_view.h"
#include "pair_counts.h"
#include "port_allocator.h"
#include "session_query.h"
#include "session_table.h"
#include "tcp_tracker.h"

namespace snatgw {

struct Frame {
    uint8_t* data;
    uint32_t len;
};

enum class Verdict : uint8_t {
    Forward,      // translated in place, send out of the other side
    Drop,         // see reason
    Handoff,      // belongs to worker `worker` (outside port partition)
    TtlExceeded,  // TTL would expire: the caller may answer ICMP time exceeded
    Punt,         // not for the NAT (ARP): hand to the control plane
};

struct FrameResult {
    Verdict verdict = Verdict::Drop;
    DropReason reason = DropReason::Count;
    uint16_t worker = 0;   // Handoff target
    uint16_t l3_off = 0;   // offset of the IPv4 header (for the caller's L2 rewrite)
    // The engine keeps the frame (a fragment ahead of its datagram's first one; only when the
    // caller gave a cookie, see BurstOrigin): not the caller's to free or send until
    // take_released() returns it. verdict and reason mean nothing then.
    bool held = false;
};

inline constexpr uint16_t kFromPort = 0xffff;

// Where a burst comes from, for the fragment path. Optional: process() without it is a burst
// from a port whose frames the engine may not keep.
struct BurstOrigin {
    // Per frame, the caller's handle for it (the worker loop's mbuf). With cookies the engine may
    // hold a fragment that came before its datagram's first one (FrameResult::held) and give it
    // back, translated or dropped, through take_released(); its bytes must stay valid until then.
    // Without, such a fragment is dropped (fragment_unmatched).
    void* const* cookies = nullptr;
    // The worker that handed these frames over, or kFromPort.
    uint16_t from_worker = kFromPort;
};

// A held fragment whose fate is now known: translated in place (Forward), to hand off, or
// dropped (counted). `side` is the side it arrived on.
struct ReleasedFrame {
    void* cookie = nullptr;
    Side side = Side::Inside;
    FrameResult result;
};

struct WorkerParams {
    uint16_t worker_id = 0;
    uint32_t session_capacity = 1u << 16;
    uint32_t host_capacity = 1u << 14;
    int socket_id = 0;       // NUMA socket for the tables
    uint64_t seed = 0;       // port randomisation; 0 = from the OS
    std::string table_prefix;  // DPDK object names are process-wide: keep them unique
    // Fragments (docs/architecture.md, Fragments): datagrams tracked at once (the oldest is
    // evicted for a new one), fragments waiting for their first one, and how long a datagram's
    // state lives.
    uint32_t fragment_datagrams = 1024;
    uint32_t fragments_held = 256;
    uint32_t fragment_timeout_ms = 2000;
};

class NatWorker {
public:
    // `config` must outlive the worker or be replaced with set_config(). Throws on allocation
    // failure (control path).
    NatWorker(const NatConfig* config, const WorkerParams& params);

    // Translates n frames (any n; handled in chunks) that arrived on `side`.
    void process(Side side, Frame* frames, FrameResult* results, uint32_t n, uint32_t now_ms) {
        process(side, frames, results, n, now_ms, BurstOrigin{});
    }
    void process(Side side, Frame* frames, FrameResult* results, uint32_t n, uint32_t now_ms,
                 const BurstOrigin& origin);

    // Held fragments whose fate was decided since the last call (by a first fragment, a
    // timeout, an eviction): up to `max`, oldest first. Call after process() and expire().
    uint32_t take_released(ReleasedFrame* out, uint32_t max);
    uint32_t released_pending() const { return ready_n_; }
    // Drops every held fragment (fragment_expired) into the released list: before shutdown.
    void drop_held();

    // Expires idle sessions, at most `budget`; returns how many it handled. Call regularly.
    // Also ends fragmented datagrams past their timeout (not counted in the return value).
    uint32_t expire(uint32_t now_ms, uint32_t budget);

    // A new configuration snapshot. The port state comes with it (NatConfig::port_state, built
    // on the control thread): adopting it is a pointer swap, no allocation. A snapshot built
    // without a daemon (tests, benchmarks) has none: the engine then builds its own here, on
    // the calling thread (local_ports_).
    void set_config(const NatConfig* config);

    // Operator requests, run by the owning worker between bursts (control path: a scan of the
    // whole table). query: counts the matching sessions and copies those after the first
    // `skip` into out[0..max); returns the count of matches. flush: ends every matching
    // session now (keys removed, port released); returns how many.
    uint64_t query_sessions(const SessionMatch& m, uint64_t skip, SessionRecord* out,
                            uint32_t max, uint32_t* copied, uint32_t now_ms) const;
    uint32_t flush_sessions(const SessionMatch& m, uint32_t now_ms);

    // The NAT event log (session created / deleted); nullptr: off. Set before traffic.
    void set_event_sink(EventSink* sink) { events_ = sink; }

    const NatConfig* config() const { return config_; }
    const WorkerCounters& counters() const { return counters_; }
    const SessionTable& sessions() const { return sessions_; }
    const PortAllocator& ports() const { return ports_; }
    const HostTable& hosts() const { return hosts_; }
    const FragmentTable& fragments() const { return frags_; }
    uint16_t id() const { return params_.worker_id; }

    // Bytes of the worker's tables (hashes, sessions, hosts, ports), for the benchmark.
    static std::size_t heap_bytes_in_use();

private:
    struct Pending {  // per-packet scratch of one chunk
        PacketView v;
        FlowKey key;
        uint16_t owner_port = 0;  // host order: the public port that decides the owner worker
        bool icmp_error = false;
        bool fragment = false;    // goes through the fragment path after the chunk
    };

    void process_chunk(Side side, Frame* frames, FrameResult* results, uint32_t n,
                       uint32_t now_ms, const BurstOrigin& origin);
    bool classify(Side side, Frame& f, FrameResult& r, Pending& p);
    bool make_key(Side side, Pending& p, DropReason& why) const;
    void lookup_and_translate(Side side, Pending* pend, FrameResult* results,
                              const FlowKey* const* keys, const uint32_t* which, uint32_t nkeys,
                              uint32_t now_ms);
    bool session_matches(Side side, const FlowKey& key, int32_t id) const;
    int32_t created_in_chunk(const FlowKey& key) const;
    void fast_path(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms);
    void slow_path_inside(Pending& p, FrameResult& r, uint32_t now_ms);
    // `syn`: the segment opening a TCP session (nullptr for UDP, ICMP).
    int32_t create_session(const FlowKey& inside, const Pool& pool, const TcpSegment* syn,
                           FrameResult& r, uint32_t now_ms);
    bool make_room(uint32_t now_ms);
    // Pressure on pairs and handshakes (create_session's fallbacks, I4 and I7).
    struct PairPick {
        uint32_t addr = 0;  // network order
        uint16_t port = 0;  // host order
    };
    bool recycle_own_handshake(uint32_t host_addr, const Pool& pool, const FlowKey& in,
                               uint32_t now_ms, PairPick& hint);
    bool take_over_pair(uint32_t addr, const FlowKey& in, const TcpSegment& syn,
                        uint32_t now_ms, PairPick& got);
    bool remote_accepts_syn(uint32_t idx, const TcpSegment& syn) const;
    uint32_t oldest_handshake_of(uint32_t host_addr, uint16_t pool_id, uint32_t scan) const;
    void start_tracking(uint32_t idx, const TcpSegment& syn);
    void note_inside_tsval(uint32_t idx, const PacketView& v);
    void reclass(uint32_t idx, TimeoutClass c, uint32_t now_ms);
    void count_embryonic(uint32_t host_addr, HostEntry* host, int delta);
    void expire_one(uint32_t idx, uint32_t now_ms);
    void free_session(uint32_t idx, DeleteReason why, uint32_t now_ms);
    void set_state(Session& s, TcpState st);
    void count_state_change(TcpState from, TcpState to);  // the tcp_state gauges
    void forward(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms);
    void drop(FrameResult& r, DropReason why);
    const Pool* pool_of(const Session& s) const;
    uint32_t timeout_ms(const Session& s) const;

    // The fragment path (fragment_path.cpp).
    void fragment(Side side, Frame& f, FrameResult& r, Pending& p, void* cookie, uint16_t from,
                  uint32_t now_ms);
    void translate_first(Side side, Pending& p, FrameResult& r, uint32_t now_ms);
    void apply_to_later(const Datagram& d, const PacketView& v, Side side, FrameResult& r);
    void decide(uint32_t di, Side side, Pending& p, FrameResult& r, uint32_t now_ms);
    void release_held(uint32_t di);
    void discard_datagram(uint32_t di, DropReason why);
    int32_t new_datagram(const FragmentKey& key, uint32_t now_ms);
    void expire_fragments(uint32_t now_ms);
    ReleasedFrame& ready_push();
    void fragment_gauges();

    const NatConfig* config_;
    WorkerParams params_;
    SessionTable sessions_;
    HostTable hosts_;
    PortAllocator ports_;
    // Port state for snapshots that carry none (see set_config); unused in the daemon.
    std::unique_ptr<PortStateStore> local_ports_;
    std::shared_ptr<const PortIndex> local_index_;
    PairCounts pairs_;
    ExpiryLists lru_;
    // Per session index: the newest TCP TSval the inside sent on the pair (valid with
    // session_flag::kInsideTimestamps), what the remote's TIME_WAIT checks a new SYN against.
    // Written on the SYN and on closing segments only, read when a held pair is reused.
    std::unique_ptr<uint32_t[]> inside_tsval_;
    // The inside host that last reached the highest count of handshakes (never-established
    // sessions): the one that pays first when pairs or table slots run out (I7). Approximate:
    // it is not recomputed when its count falls.
    uint32_t heavy_host_ = 0;
    uint32_t heavy_count_ = 0;
    WorkerCounters counters_;
    EventSink* events_ = nullptr;
    FragmentTable frags_;
    // Released held fragments not yet taken: a ring as large as the hold capacity (a fragment
    // keeps its place in the hold budget until the caller takes it, so the ring cannot overflow).
    std::unique_ptr<ReleasedFrame[]> ready_;
    uint32_t ready_head_ = 0, ready_n_ = 0;
    // Frames are handled in chunks of kChunkMax (one bulk lookup each). Within a chunk the
    // slow path may create or free sessions; these let later frames of the chunk see it.
    static constexpr uint32_t kChunkMax = 32;
    uint32_t frees_ = 0;
    uint32_t chunk_created_ = 0;
    uint32_t chunk_created_idx_[kChunkMax] = {};
};

}  // namespace snatgw
