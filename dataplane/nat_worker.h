// The NAT engine of one worker lcore: feed it bursts of frames from the inside or the outside,
// it translates them in place and returns a verdict per frame. It owns its sessions, its host
// table and its public port partition (invariants I1, I2); nothing in it is shared.
//
// Pipeline per burst: parse -> build keys -> one bulk hash lookup -> per packet: fast path
// (hit: track, translate) or slow path (miss: allocate a port, create the session).
// No allocation, no locks, no exceptions and no logging on the packet path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "counters.h"
#include "drop_reasons.h"
#include "expiry_lists.h"
#include "flow_key.h"
#include "host_table.h"
#include "nat_config.h"
#include "packet_view.h"
#include "port_allocator.h"
#include "session_table.h"

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
};

struct WorkerParams {
    uint16_t worker_id = 0;
    uint32_t session_capacity = 1u << 16;
    uint32_t host_capacity = 1u << 14;
    int socket_id = 0;       // NUMA socket for the tables
    uint64_t seed = 0;       // port randomisation; 0 = from the OS
    std::string table_prefix;  // DPDK object names are process-wide: keep them unique
};

class NatWorker {
public:
    // `config` must outlive the worker or be replaced with set_config(). Throws on allocation
    // failure (control path).
    NatWorker(const NatConfig* config, const WorkerParams& params);

    // Translates n frames (any n; handled in chunks) that arrived on `side`.
    void process(Side side, Frame* frames, FrameResult* results, uint32_t n, uint32_t now_ms);

    // Expires idle sessions, at most `budget`; returns how many it handled. Call regularly.
    uint32_t expire(uint32_t now_ms, uint32_t budget);

    // A new configuration snapshot (pools are added to the port allocator).
    void set_config(const NatConfig* config);

    const WorkerCounters& counters() const { return counters_; }
    const SessionTable& sessions() const { return sessions_; }
    const PortAllocator& ports() const { return ports_; }
    const HostTable& hosts() const { return hosts_; }
    uint16_t id() const { return params_.worker_id; }

    // Bytes of the worker's tables (hashes, sessions, hosts, ports), for the benchmark.
    static std::size_t heap_bytes_in_use();

private:
    struct Pending;  // per-packet scratch of one chunk

    void process_chunk(Side side, Frame* frames, FrameResult* results, uint32_t n,
                       uint32_t now_ms);
    bool classify(Side side, Frame& f, FrameResult& r, Pending& p);
    bool session_matches(Side side, const FlowKey& key, int32_t id) const;
    int32_t created_in_chunk(const FlowKey& key) const;
    void fast_path(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms);
    void slow_path_inside(Pending& p, FrameResult& r, uint32_t now_ms);
    int32_t create_session(const FlowKey& inside, const Pool& pool, FrameResult& r,
                           uint32_t now_ms);
    bool make_room();
    void expire_one(uint32_t idx, uint32_t now_ms);
    void free_session(uint32_t idx);
    void set_state(Session& s, TcpState st);
    void count_state_change(TcpState from, TcpState to);  // the tcp_state gauges
    void forward(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms);
    void drop(FrameResult& r, DropReason why);
    const Pool* pool_of(const Session& s) const;
    uint32_t timeout_ms(const Session& s) const;

    const NatConfig* config_;
    WorkerParams params_;
    SessionTable sessions_;
    HostTable hosts_;
    PortAllocator ports_;
    ExpiryLists lru_;
    WorkerCounters counters_;
    // Frames are handled in chunks of kChunkMax (one bulk lookup each). Within a chunk the
    // slow path may create or free sessions; these let later frames of the chunk see it.
    static constexpr uint32_t kChunkMax = 32;
    uint32_t frees_ = 0;
    uint32_t chunk_created_ = 0;
    uint32_t chunk_created_idx_[kChunkMax] = {};
};

}  // namespace snatgw
