// The worker lcore loop; see worker_loop.h.
#include "worker_loop.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <cstring>
#include <exception>
#include <vector>

#include "arp.h"
#include "byte_order.h"
#include "checksum.h"
#include "neighbour_table.h"
#include "packet_view.h"
#include "route_table.h"
#include "translate.h"

namespace snatgw {

MbufMeta* meta(rte_mbuf* m) { return static_cast<MbufMeta*>(rte_mbuf_to_priv(m)); }

namespace {

constexpr uint16_t kMaxBurst = 64;
// Frames waiting for room in one peer's handoff ring. While any backlog is over half full the
// worker stops taking new frames from its RX queues (the NIC ring buffers them) and keeps
// draining its own handoff rings, so a peer that is behind slows its senders down instead of
// losing their frames; only a backlog that is completely full drops (handoff_ring_full).
constexpr uint32_t kHandoffBacklog = 2048;

int side_index(Side s) { return s == Side::Inside ? 0 : 1; }
Side other(Side s) { return s == Side::Inside ? Side::Outside : Side::Inside; }

class Loop {
public:
    explicit Loop(WorkerContext& c)
        : c_(c), s_(*c.shared), lc_(c.counters), lt_(c.timing), buckets_(c.shared->tsc_hz) {}
    // Also on the way out of an exception: what the loop holds goes back (C calls only, so
    // nothing here can throw), and the worker leaves the RCU reader set, so a grace period the
    // control thread waits on can still end.
    ~Loop() { release(); }
    Loop(const Loop&) = delete;
    Loop& operator=(const Loop&) = delete;

    // nullptr after a normal stop, else why the loop could not run.
    const char* run();

private:
    uint32_t now_ms() const noexcept {
        return static_cast<uint32_t>((rte_rdtsc() - c_.start_tsc) / s_.tsc_per_ms);
    }
    // The engine (NatWorker), the route table and the event sink do not declare noexcept, so
    // what calls them may throw; worker_main() catches it. The rest is noexcept.
    uint16_t receive(Side side);
    uint16_t receive_handoffs();
    uint16_t drain_control_tx() noexcept;
    void adopt_config();
    void serve_mailbox();
    void handle(Side side, rte_mbuf** pkts, uint16_t n, bool steer, uint16_t from = kFromPort);
    void apply(rte_mbuf* m, Side side, const FrameResult& r);
    void drain_released();
    void forward(rte_mbuf* m, Side out, uint32_t l3_off);
    void forward_unmatched(rte_mbuf* m);
    void transmit(rte_mbuf* m, Side out) noexcept;
    void punt(rte_mbuf* m, PuntReason why, Side out = Side::Inside,
              uint32_t next_hop = 0) noexcept;
    void hand_off(rte_mbuf* m, uint16_t to) noexcept;
    void flush_handoffs() noexcept;
    bool handoffs_congested() const noexcept { return backlog_total_ > kHandoffBacklog / 2; }
    bool is_local(const rte_mbuf* m, Side side) const noexcept;
    bool for_us(const rte_mbuf* m, Side side) noexcept;
    bool routable(const rte_mbuf* m, Side side) const noexcept;
    Side side_of_port(uint16_t port_id) const noexcept {
        return port_id == s_.port[0].port_id ? Side::Inside : Side::Outside;
    }
    // The pass that just ended, from the TSC read at the top of the next one (`now`).
    void time_pass(uint64_t now) noexcept {
        const uint64_t d = now - pass_start_;
        ++lt_.pass[buckets_.bucket(d)];
        lt_.pass_cycles += d;
        pass_start_ = now;
    }
    // A pass that polls RX: the gap since the previous one that did (both taken at the top of
    // their pass, so the offset to the rx_burst itself is about the same on both ends).
    void time_rx_poll(uint64_t now) noexcept {
        const uint64_t gap = now - last_poll_;
        if (gap > lt_.poll_gap_max_cycles) lt_.poll_gap_max_cycles = gap;
        last_poll_ = now;
    }
    void release() noexcept;

    WorkerContext& c_;
    const WorkerShared& s_;
    LoopCounters& lc_;
    LoopTiming& lt_;
    const PassBuckets buckets_;
    uint64_t pass_start_ = 0;  // TSC at the start of the current pass (after an idle sleep)
    uint64_t last_poll_ = 0;   // TSC of the pass that last polled the RX queues
    bool rcu_online_ = false;
    rte_eth_dev_tx_buffer* txbuf_[2] = {nullptr, nullptr};
    struct Backlog {
        std::vector<rte_mbuf*> pkts;  // FIFO: pkts[0..n) wait, oldest first
        uint32_t n = 0;
    };
    std::vector<Backlog> backlog_;  // by destination worker
    uint32_t backlog_total_ = 0;
};

const char* Loop::run() {
    for (int i = 0; i < 2; ++i) {
        txbuf_[i] = static_cast<rte_eth_dev_tx_buffer*>(
            rte_zmalloc_socket("txbuf", RTE_ETH_TX_BUFFER_SIZE(kMaxBurst), 0, rte_socket_id()));
        if (txbuf_[i] == nullptr) return "cannot allocate a TX buffer (rte_zmalloc_socket)";
        rte_eth_tx_buffer_init(txbuf_[i], s_.burst);
        rte_eth_tx_buffer_set_err_callback(txbuf_[i], rte_eth_tx_buffer_count_callback,
                                           &lc_.tx_dropped[i]);
    }
    backlog_.resize(s_.workers);
    for (Backlog& b : backlog_) b.pkts.resize(kHandoffBacklog);
    if (s_.rcu != nullptr) {
        rte_rcu_qsbr_thread_register(s_.rcu, c_.id);
        rte_rcu_qsbr_thread_online(s_.rcu, c_.id);
        rcu_online_ = true;
    }
    uint32_t idle = 0;
    pass_start_ = last_poll_ = rte_rdtsc();
    bool first = true;
    while (s_.running->load(std::memory_order_relaxed)) {
        // The pass's one TSC read: it ends the pass before (whose idle sleep is not counted)
        // and, if this pass polls RX, the gap since the last pass that did.
        const uint64_t now = rte_rdtsc();
        if (!first) time_pass(now);
        first = false;
        if (s_.pass_hook != nullptr) s_.pass_hook(c_);
        adopt_config();  // first in the pass: nothing below may use an older snapshot
        if (s_.mailbox[c_.id] != nullptr) serve_mailbox();
        uint32_t work = 0;
        if (backlog_total_ != 0) flush_handoffs();
        if (!handoffs_congested()) {
            time_rx_poll(now);
            work += receive(Side::Inside);
            work += receive(Side::Outside);
        } else {
            ++lc_.rx_paused;
        }
        if (s_.workers > 1) work += receive_handoffs();
        if (backlog_total_ != 0) flush_handoffs();
        work += drain_control_tx();
        for (int i = 0; i < 2; ++i) rte_eth_tx_buffer_flush(s_.port[i].port_id, c_.id, txbuf_[i]);

        // Expiry every pass: checking the list heads is cheap when nothing is due, and a
        // budget well above a burst keeps up with any creation rate (a table that fills with
        // sessions nobody expired makes new flows pay for evictions and port searches).
        c_.engine->expire(now_ms(), 4u * kMaxBurst);
        drain_released();  // fragments that waited in vain (timeout)
        if (c_.events != nullptr) c_.events->flush();

        if (work != 0) {
            idle = 0;
        } else if (++idle >= s_.idle_polls && s_.idle_sleep_us != 0) {
            // Share the machine when there is nothing to do; bounded by idle_sleep_us.
            rte_delay_us_sleep(s_.idle_sleep_us);
            ++lc_.idle_sleeps;
            pass_start_ = rte_rdtsc();  // the sleep is not the pass's work (idle: free to read)
        }
        if (s_.rcu != nullptr) rte_rcu_qsbr_quiescent(s_.rcu, c_.id);
    }
    if (c_.events != nullptr) c_.events->flush();
    // Fragments still waiting in the engine are our mbufs: free them.
    c_.engine->drop_held();
    drain_released();
    release();
    return nullptr;
}

void Loop::release() noexcept {
    if (rcu_online_) {
        rte_rcu_qsbr_thread_offline(s_.rcu, c_.id);
        rte_rcu_qsbr_thread_unregister(s_.rcu, c_.id);
        rcu_online_ = false;
    }
    for (int i = 0; i < 2; ++i) {
        if (txbuf_[i] == nullptr) continue;
        rte_eth_tx_buffer_flush(s_.port[i].port_id, c_.id, txbuf_[i]);
        rte_free(txbuf_[i]);
        txbuf_[i] = nullptr;
    }
    for (Backlog& b : backlog_) {
        for (uint32_t i = 0; i < b.n; ++i) rte_pktmbuf_free(b.pkts[i]);
        b.n = 0;
    }
    backlog_total_ = 0;
}

void Loop::adopt_config() {
    if (s_.nat_config == nullptr) return;
    const NatConfig* cfg = s_.nat_config->load(std::memory_order_acquire);
    if (cfg != nullptr && cfg != c_.engine->config()) c_.engine->set_config(cfg);
}

void Loop::serve_mailbox() {
    WorkerMailbox& mb = *s_.mailbox[c_.id];
    const uint32_t posted = mb.posted.load(std::memory_order_acquire);
    if (posted == mb.done.load(std::memory_order_relaxed)) return;
    if (mb.op == WorkerMailbox::Op::Query) {
        const uint32_t max = mb.max < WorkerMailbox::kMaxRecords ? mb.max : WorkerMailbox::kMaxRecords;
        mb.matched = c_.engine->query_sessions(mb.match, mb.skip, mb.records.data(), max,
                                               &mb.copied, now_ms());
    } else {
        mb.matched = c_.engine->flush_sessions(mb.match, now_ms());
        mb.copied = 0;
    }
    mb.done.store(posted, std::memory_order_release);
}

uint16_t Loop::receive(Side side) {
    rte_mbuf* pkts[kMaxBurst];
    const uint16_t n = rte_eth_rx_burst(s_.port[side_index(side)].port_id, c_.id, pkts, s_.burst);
    if (n == 0) return 0;
    lc_.rx[side_index(side)] += n;
    handle(side, pkts, n, true);
    return n;
}

uint16_t Loop::receive_handoffs() {
    uint16_t total = 0;
    for (uint16_t from = 0; from < s_.workers; ++from) {
        if (from == c_.id) continue;
        rte_mbuf* pkts[kMaxBurst];
        const unsigned n =
            rte_ring_sc_dequeue_burst(s_.handoff[from][c_.id], reinterpret_cast<void**>(pkts),
                                      s_.burst, nullptr);
        if (n == 0) continue;
        lc_.handoff_received += n;
        // A ring carries both sides; the receiving port says which. Keep order per side.
        rte_mbuf* in[kMaxBurst];
        rte_mbuf* out[kMaxBurst];
        uint16_t ni = 0, no = 0;
        for (unsigned i = 0; i < n; ++i) {
            if (side_of_port(pkts[i]->port) == Side::Inside) in[ni++] = pkts[i];
            else out[no++] = pkts[i];
        }
        if (ni) handle(Side::Inside, in, ni, false, from);
        if (no) handle(Side::Outside, out, no, false, from);
        total = static_cast<uint16_t>(total + n);
    }
    return total;
}

uint16_t Loop::drain_control_tx() noexcept {
    rte_mbuf* pkts[kMaxBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(s_.control_tx[c_.id],
                                                 reinterpret_cast<void**>(pkts), s_.burst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        const Side out = meta(pkts[i])->out_side == 0 ? Side::Inside : Side::Outside;
        ++lc_.control_tx;
        transmit(pkts[i], out);
    }
    return static_cast<uint16_t>(n);
}

bool Loop::is_local(const rte_mbuf* m, Side side) const noexcept {
    // IPv4 to the interface address of the receiving port: for the gateway itself.
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    uint32_t off = kEthHeaderLen;
    if (m->data_len < kEthHeaderLen + kIpv4MinHeader) return false;
    uint16_t type = load_be16(f + 12);
    if (type == kEtherTypeVlan) {
        if (m->data_len < kEthHeaderLen + kVlanTagLen + kIpv4MinHeader) return false;
        type = load_be16(f + 16);
        off += kVlanTagLen;
    }
    return type == kEtherTypeIpv4 &&
           load_be32(f + off + ipv4_off::kDst) == s_.port[side_index(side)].addr;
}

// A router takes only frames sent to its own MAC, and ARP (requests are broadcast). Anything
// else a switch flooded to us (another host's unicast, broadcast or multicast IPv4) is not
// ours to forward.
bool Loop::for_us(const rte_mbuf* m, Side side) noexcept {
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    if (m->data_len < kEthHeaderLen) return true;  // the engine counts it (frame_too_short)
    if (std::memcmp(f, s_.port[side_index(side)].mac.data(), 6) == 0) return true;
    uint16_t type = load_be16(f + 12);
    if (type == kEtherTypeVlan && m->data_len >= kEthHeaderLen + kVlanTagLen) type = load_be16(f + 16);
    if (type == kEtherTypeArp) return true;
    ++lc_.foreign_mac;
    return false;
}

// RFC 1812: never forward to multicast, limited or directed broadcast, 0/8, 127/8, 240/4, nor
// from the inside back into the inside subnet.
bool Loop::routable(const rte_mbuf* m, Side side) const noexcept {
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    uint32_t off = kEthHeaderLen;
    if (m->data_len < kEthHeaderLen + kIpv4MinHeader) return true;
    uint16_t type = load_be16(f + 12);
    if (type == kEtherTypeVlan) {
        if (m->data_len < kEthHeaderLen + kVlanTagLen + kIpv4MinHeader) return true;
        type = load_be16(f + 16);
        off += kVlanTagLen;
    }
    if (type != kEtherTypeIpv4) return true;
    const uint32_t dst = load_be32(f + off + ipv4_off::kDst);
    const uint32_t first = dst >> 24;
    if (first == 0 || first == 127 || first >= 224) return false;  // 0/8, loopback, 224/4, 240/4
    const PortInfo& p = s_.port[side_index(side)];
    if (dst == (p.subnet | ~p.mask)) return false;  // the subnet's directed broadcast
    // From the inside, an address of the inside subnet is a neighbour, not for routing (the
    // outside subnet holds the pool addresses: those are ours).
    if (side == Side::Inside && (dst & p.mask) == p.subnet) return false;
    return true;
}

void Loop::handle(Side side, rte_mbuf** pkts, uint16_t n, bool steer, uint16_t from) {
    Frame frames[kMaxBurst];
    FrameResult results[kMaxBurst];
    rte_mbuf* mbufs[kMaxBurst];
    uint16_t k = 0;
    const bool soft_inside = steer && side == Side::Inside && s_.workers > 1 &&
                             s_.steering.inside == InsideSteering::Software;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (m->nb_segs != 1) {
            ++lc_.multi_segment;
            rte_pktmbuf_free(m);
            continue;
        }
        if (steer && !for_us(m, side)) {  // (handed-off frames were checked on arrival)
            rte_pktmbuf_free(m);
            continue;
        }
        if (is_local(m, side)) {
            punt(m, PuntReason::Local);
            continue;
        }
        if (steer && !routable(m, side)) {
            ++lc_.not_forwarded;
            rte_pktmbuf_free(m);
            continue;
        }
        if (soft_inside) {
            const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
            if (m->data_len >= kEthHeaderLen + kIpv4MinHeader &&
                load_be16(f + 12) == kEtherTypeIpv4) {
                const uint16_t owner =
                    inside_owner(csum::load32(f + kEthHeaderLen + ipv4_off::kSrc), s_.workers);
                if (owner != c_.id) {
                    hand_off(m, owner);
                    continue;
                }
            }
        }
        frames[k] = Frame{rte_pktmbuf_mtod(m, uint8_t*), m->data_len};
        mbufs[k++] = m;
    }
    if (k == 0) return;
    // The mbufs are the cookies: a fragment ahead of its datagram's first one stays with the
    // engine (held) and comes back through take_released().
    BurstOrigin origin;
    void* cookies[kMaxBurst];
    for (uint16_t i = 0; i < k; ++i) cookies[i] = mbufs[i];
    origin.cookies = cookies;
    origin.from_worker = from;
    c_.engine->process(side, frames, results, k, now_ms(), origin);
    for (uint16_t i = 0; i < k; ++i)
        if (!results[i].held) apply(mbufs[i], side, results[i]);
    // After the burst's own verdicts: a first fragment leaves before the fragments it released.
    if (c_.engine->released_pending() != 0) drain_released();
}

void Loop::apply(rte_mbuf* m, Side side, const FrameResult& r) {
    switch (r.verdict) {
        case Verdict::Forward:
            forward(m, other(side), r.l3_off);
            break;
        case Verdict::Handoff:
            hand_off(m, r.worker);
            break;
        case Verdict::TtlExceeded:
            punt(m, PuntReason::TtlExceeded);
            break;
        case Verdict::Punt:
            punt(m, PuntReason::Arp);
            break;
        case Verdict::Drop:
            if (r.reason == DropReason::NoRule && s_.forward_unmatched)
                forward_unmatched(m);
            else
                rte_pktmbuf_free(m);
            break;
    }
}

void Loop::drain_released() {
    ReleasedFrame rel[kMaxBurst];
    uint32_t n = 0;
    while ((n = c_.engine->take_released(rel, kMaxBurst)) != 0)
        for (uint32_t i = 0; i < n; ++i)
            apply(static_cast<rte_mbuf*>(rel[i].cookie), rel[i].side, rel[i].result);
}

void Loop::forward_unmatched(rte_mbuf* m) {
    // Explicitly configured: inside traffic no rule covers leaves untranslated.
    PacketView v;
    // (Fragments too: every fragment of an unmatched datagram gets the NoRule of its first.)
    if (parse_frame(rte_pktmbuf_mtod(m, uint8_t*), m->data_len, v, true, true).cls !=
            FrameClass::Ipv4 ||
        packet_ttl(v) <= 1) {
        rte_pktmbuf_free(m);
        return;
    }
    decrement_ttl(v);
    ++lc_.unmatched_forwarded;
    forward(m, Side::Outside, v.l3_off);
}

void Loop::forward(rte_mbuf* m, Side out, uint32_t l3_off) {
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    const uint32_t dst = load_be32(f + l3_off + ipv4_off::kDst);
    uint32_t next_hop = 0;
    if (out == Side::Outside) {
        const auto nh = s_.routes->next_hop(dst);
        if (!nh) {
            ++lc_.no_route;
            rte_pktmbuf_free(m);
            return;
        }
        next_hop = *nh;
    } else {
        const PortInfo& in = s_.port[0];
        if ((dst & in.mask) != in.subnet) {
            ++lc_.no_route;
            rte_pktmbuf_free(m);
            return;
        }
        next_hop = dst;
    }
    // Frames leave untagged: drop an 802.1Q tag the engine kept.
    if (l3_off == kEthHeaderLen + kVlanTagLen) {
        rte_pktmbuf_adj(m, kVlanTagLen);
        f = rte_pktmbuf_mtod(m, uint8_t*);
        store_be16(f + 12, kEtherTypeIpv4);
    }
    MacAddr mac;
    if (!s_.neighbours->lookup(next_hop, mac)) {
        punt(m, PuntReason::NoNeighbour, out, next_hop);
        return;
    }
    std::memcpy(f, mac.data(), 6);
    std::memcpy(f + 6, s_.port[side_index(out)].mac.data(), 6);
    transmit(m, out);
}

void Loop::transmit(rte_mbuf* m, Side out) noexcept {
    const int i = side_index(out);
    ++lc_.tx[i];
    rte_eth_tx_buffer(s_.port[i].port_id, c_.id, txbuf_[i], m);
}

void Loop::punt(rte_mbuf* m, PuntReason why, Side out, uint32_t next_hop) noexcept {
    MbufMeta* mm = meta(m);
    mm->reason = why;
    mm->out_side = static_cast<uint8_t>(side_index(out));
    mm->rx_port = m->port;
    mm->next_hop = next_hop;
    if (rte_ring_sp_enqueue(s_.punt[c_.id], m) != 0) {
        ++lc_.punt_ring_full;
        rte_pktmbuf_free(m);
        return;
    }
    ++lc_.punted;
}

void Loop::hand_off(rte_mbuf* m, uint16_t to) noexcept {
    if (to >= s_.workers || to == c_.id) {
        ++lc_.handoff_ring_full;
        rte_pktmbuf_free(m);
        return;
    }
    Backlog& b = backlog_[to];
    // Straight into the ring when nothing waits before it (order per destination is kept).
    if (b.n == 0 && rte_ring_sp_enqueue(s_.handoff[c_.id][to], m) == 0) {
        ++lc_.handoff_sent;
        return;
    }
    if (b.n == kHandoffBacklog) {
        ++lc_.handoff_ring_full;
        rte_pktmbuf_free(m);
        return;
    }
    b.pkts[b.n++] = m;
    ++backlog_total_;
    ++lc_.handoff_deferred;
}

void Loop::flush_handoffs() noexcept {
    for (uint16_t to = 0; to < s_.workers; ++to) {
        Backlog& b = backlog_[to];
        if (b.n == 0) continue;
        const unsigned sent = rte_ring_sp_enqueue_burst(
            s_.handoff[c_.id][to], reinterpret_cast<void* const*>(b.pkts.data()), b.n, nullptr);
        if (sent == 0) continue;
        std::memmove(b.pkts.data(), b.pkts.data() + sent, (b.n - sent) * sizeof(rte_mbuf*));
        b.n -= sent;
        backlog_total_ -= sent;
        lc_.handoff_sent += sent;
    }
}

// Copies a NUL-terminated message into the fault's fixed buffer (truncated; no allocation).
void record_reason(WorkerFault& f, const char* prefix, const char* what) noexcept {
    std::size_t n = 0;
    for (const char* p : {prefix, what})
        for (; p != nullptr && *p != '\0' && n + 1 < WorkerFault::kReasonMax; ++p) f.reason[n++] = *p;
    f.reason[n] = '\0';
}

const char* run_loop(WorkerContext& ctx) {
    Loop loop(ctx);
    return loop.run();
}

}  // namespace

int run_worker_guarded(WorkerContext& ctx, WorkerBody body) noexcept {
    try {
        const char* why = body(ctx);
        if (why == nullptr) return 0;
        record_reason(ctx.fault, "", why);
    } catch (const std::exception& e) {
        record_reason(ctx.fault, "exception: ", e.what());
    } catch (...) {
        record_reason(ctx.fault, "", "unknown exception (not a std::exception)");
    }
    ++ctx.counters.worker_fatal;
    ctx.fault.raised.store(true, std::memory_order_release);
    if (ctx.shared != nullptr && ctx.shared->stop != nullptr)
        ctx.shared->stop->store(true, std::memory_order_release);
    return -1;
}

int worker_main(void* arg) noexcept {
    return run_worker_guarded(*static_cast<WorkerContext*>(arg), run_loop);
}

}  // namespace snatgw
