// The main lcore's gateway duties; see control_lcore.h.
#include "control_lcore.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstring>

#include "byte_order.h"
#include "packet_view.h"

namespace snatgw {

namespace {

constexpr uint32_t kPollBurst = 32;
constexpr uint64_t kReachableMs = 30000;  // re-confirm a neighbour after this long

// Held frames are mbufs of either port's pool and leave through worker 0's control ring: size
// the hold queue from the smaller pool and that ring (hold_limits_for()).
HoldQueue make_hold_queue(rte_mempool* const pools[2], const rte_ring* control_ring) {
    uint32_t mbufs = UINT32_MAX;
    for (int side = 0; side < 2; ++side)
        if (pools[side] != nullptr && pools[side]->size < mbufs) mbufs = pools[side]->size;
    const uint32_t ring = control_ring != nullptr ? rte_ring_get_capacity(control_ring)
                                                  : HoldQueue::kDefaultGlobalCap;
    if (mbufs == UINT32_MAX) mbufs = HoldQueue::kDefaultGlobalCap * kHoldPoolShare;
    const HoldLimits limits = hold_limits_for(mbufs, ring);
    return HoldQueue(limits.per_neighbour, limits.global_cap);
}

// The IPv4 source of a frame a worker punted for its next hop (forwarded frames leave untagged:
// the IPv4 header follows the Ethernet header). On the outside this is the pool address the
// frame was translated to. 0 if the frame is too short to tell.
uint32_t frame_source(const rte_mbuf* m) {
    const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
    if (m->data_len < 34 || load_be16(f + 12) != 0x0800) return 0;
    return load_be32(f + 26);
}

}  // namespace

ControlLcore::ControlLcore(WorkerShared& shared, NeighbourTable& neighbours,
                           rte_mempool* pool_by_side[2], std::vector<uint32_t> outside_extra)
    : shared_(shared),
      neighbours_(neighbours),
      hold_(make_hold_queue(pool_by_side, shared.control_tx[0])),
      pool_{pool_by_side[0], pool_by_side[1]},
      icmp_rate_(1000, 100) {
    responder_[0] = ArpResponder(shared.port[0].mac, {shared.port[0].addr});
    outside_extra.push_back(shared.port[1].addr);
    responder_[1] = ArpResponder(shared.port[1].mac, outside_extra);
}

void ControlLcore::set_pool_addresses(std::vector<uint32_t> addresses) {
    const ArpResponder old = responder_[1];
    addresses.push_back(shared_.port[1].addr);
    responder_[1] = ArpResponder(shared_.port[1].mac, addresses);
    for (uint32_t addr : responder_[1].addresses()) {
        if (old.answers_for(addr)) continue;
        rte_mbuf* m = alloc(1);
        if (m == nullptr) continue;
        const uint32_t len = build_gratuitous_arp(rte_pktmbuf_mtod(m, uint8_t*),
                                                  rte_pktmbuf_tailroom(m), shared_.port[1].mac, addr);
        if (len == 0) {
            rte_pktmbuf_free(m);
            continue;
        }
        m->data_len = static_cast<uint16_t>(len);
        m->pkt_len = len;
        send(m, 1);
    }
}

rte_mbuf* ControlLcore::alloc(int side) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_[side]);
    if (m == nullptr) ++counters_.alloc_failed;
    return m;
}

void ControlLcore::send(rte_mbuf* m, int side) {
    meta(m)->out_side = static_cast<uint8_t>(side);
    meta(m)->reason = PuntReason::Transmit;
    if (rte_ring_sp_enqueue(shared_.control_tx[0], m) != 0) {
        ++counters_.control_ring_full;
        rte_pktmbuf_free(m);
    }
}

int ControlLcore::side_for_next_hop(uint32_t ip) const {
    const PortInfo& in = shared_.port[0];
    return (ip & in.mask) == in.subnet ? 0 : 1;
}

void ControlLcore::request(int side, uint32_t ip, uint64_t now_ms) {
    if (neighbours_.retry(ip, now_ms)) send_request(side, ip);
}

void ControlLcore::send_request(int side, uint32_t ip) {
    rte_mbuf* m = alloc(side);
    if (m == nullptr) return;
    const PortInfo& p = shared_.port[side];
    const uint32_t len = build_arp_request(rte_pktmbuf_mtod(m, uint8_t*),
                                           rte_pktmbuf_tailroom(m), p.mac, p.addr, ip);
    if (len == 0) {
        rte_pktmbuf_free(m);
        return;
    }
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    ++counters_.arp_requests_sent;
    send(m, side);
}

void ControlLcore::sync_neighbour_counters() {
    const NeighbourTable::Stats& st = neighbours_.stats();
    counters_.neighbour_evicted = st.evicted;
    counters_.neighbour_expired = st.expired;
    counters_.neighbour_pending_refused = st.pending_refused;
    counters_.neighbour_table_full = st.table_full;
}

void ControlLcore::announce(uint64_t now_ms, const std::vector<uint32_t>& next_hops) {
    for (int side = 0; side < 2; ++side) {
        for (uint32_t addr : responder_[side].addresses()) {
            rte_mbuf* m = alloc(side);
            if (m == nullptr) continue;
            const uint32_t len = build_gratuitous_arp(rte_pktmbuf_mtod(m, uint8_t*),
                                                      rte_pktmbuf_tailroom(m),
                                                      shared_.port[side].mac, addr);
            m->data_len = static_cast<uint16_t>(len);
            m->pkt_len = len;
            if (len == 0) rte_pktmbuf_free(m);
            else send(m, side);
        }
    }
    next_hops_ = next_hops;
    // Pinned: never aged out or evicted, and no unsolicited ARP changes their MAC.
    for (uint32_t nh : next_hops_) {
        neighbours_.pin(nh, now_ms);
        request(side_for_next_hop(nh), nh, now_ms);
    }
    sync_neighbour_counters();
}

uint32_t ControlLcore::poll(uint64_t now_ms) {
    uint32_t total = 0;
    for (uint16_t w = 0; w < shared_.workers; ++w) {
        rte_mbuf* pkts[kPollBurst];
        const unsigned n = rte_ring_sc_dequeue_burst(shared_.punt[w],
                                                     reinterpret_cast<void**>(pkts), kPollBurst,
                                                     nullptr);
        for (unsigned i = 0; i < n; ++i) handle(pkts[i], now_ms);
        total += n;
    }
    sync_neighbour_counters();
    return total;
}

void ControlLcore::handle(rte_mbuf* m, uint64_t now_ms) {
    const MbufMeta& mm = *meta(m);
    const int side = side_of_port(mm.rx_port);
    switch (mm.reason) {
        case PuntReason::Arp: return handle_arp(m, side, now_ms);
        case PuntReason::Local: return handle_local(m, side);
        case PuntReason::TtlExceeded: return handle_ttl(m, side, now_ms);
        case PuntReason::NoNeighbour: return handle_no_neighbour(m, now_ms);
        case PuntReason::Transmit: break;
    }
    rte_pktmbuf_free(m);
}

void ControlLcore::handle_arp(rte_mbuf* m, int side, uint64_t now_ms) {
    const auto arp = parse_arp(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len);
    if (!arp) {
        ++counters_.arp_ignored;
        rte_pktmbuf_free(m);
        return;
    }
    const PortInfo& p = shared_.port[side];
    // Learn neighbours on our own subnet only (a reply, or a request that names us), as far as
    // the table's policy lets unsolicited ARP (NeighbourTable::learn_from_arp()).
    if (arp_sender_learnable(*arp) && (arp->sender_ip & p.mask) == p.subnet &&
        (arp->op == kArpOpReply || responder_[side].answers_for(arp->target_ip))) {
        switch (neighbours_.learn_from_arp(arp->sender_ip, arp->sender_mac,
                                           arp->op == kArpOpReply, now_ms)) {
            case NeighbourTable::ArpLearn::Learned:
                ++counters_.arp_learned;
                release_held(arp->sender_ip, arp->sender_mac);
                break;
            case NeighbourTable::ArpLearn::IgnoredPinned:
            case NeighbourTable::ArpLearn::IgnoredPressure:
                ++counters_.arp_unsolicited_ignored;
                break;
            case NeighbourTable::ArpLearn::NoRoom:  // counted by the table (table_full)
                break;
        }
    }
    if (responder_[side].should_reply(*arp)) {
        uint8_t reply[kArpFrameLen];
        const uint32_t len = responder_[side].reply(*arp, reply, sizeof(reply));
        if (len != 0 && rte_pktmbuf_tailroom(m) + m->data_len >= len) {
            std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), reply, len);
            m->data_len = static_cast<uint16_t>(len);
            m->pkt_len = len;
            ++counters_.arp_requests_answered;
            send(m, side);
            return;
        }
    }
    rte_pktmbuf_free(m);
}

void ControlLcore::handle_local(rte_mbuf* m, int side) {
    const uint32_t len = build_echo_reply(rte_pktmbuf_mtod(m, uint8_t*), m->data_len);
    if (len == 0) {
        ++counters_.local_dropped;
        rte_pktmbuf_free(m);
        return;
    }
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    ++counters_.echo_replies;
    send(m, side);
}

void ControlLcore::handle_ttl(rte_mbuf* m, int side, uint64_t now_ms) {
    if (!icmp_rate_.take(now_ms)) {
        ++counters_.icmp_rate_limited;
        rte_pktmbuf_free(m);
        return;
    }
    rte_mbuf* out = alloc(side);
    if (out == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    // Back to the previous hop, from the address of the port the packet came in on.
    const uint8_t* orig = rte_pktmbuf_mtod(m, const uint8_t*);
    MacAddr prev_hop;
    std::memcpy(prev_hop.data(), orig + 6, 6);
    const PortInfo& p = shared_.port[side];
    const uint32_t len = build_icmp_error(rte_pktmbuf_mtod(out, uint8_t*),
                                          rte_pktmbuf_tailroom(out), orig, m->data_len,
                                          kIcmpTimeExceeded, 0, p.addr, p.mac, prev_hop);
    rte_pktmbuf_free(m);
    if (len == 0) {  // never about an ICMP error, a broadcast or an unspecified source
        rte_pktmbuf_free(out);
        return;
    }
    out->data_len = static_cast<uint16_t>(len);
    out->pkt_len = len;
    ++counters_.time_exceeded_sent;
    send(out, side);
}

void ControlLcore::send_resolved(rte_mbuf* m, const MacAddr& mac) {
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    const int out = meta(m)->out_side;
    std::memcpy(f, mac.data(), 6);
    std::memcpy(f + 6, shared_.port[out].mac.data(), 6);
    send(m, out);
}

void ControlLcore::release_held(uint32_t ip, const MacAddr& mac) {
    for (void* held : hold_.release(ip)) {
        ++counters_.released;
        send_resolved(static_cast<rte_mbuf*>(held), mac);
    }
}

void ControlLcore::drop_held(const std::vector<void*>& frames, uint64_t& reason) {
    for (void* p : frames) {
        ++reason;
        ++counters_.hold_dropped;
        rte_pktmbuf_free(static_cast<rte_mbuf*>(p));
    }
}

void ControlLcore::handle_no_neighbour(rte_mbuf* m, uint64_t now_ms) {
    const MbufMeta mm = *meta(m);
    // A worker missed the neighbour, but its ARP answer may have been handled between that
    // lookup and now (the punt ring is a queue): then nothing more will release the frame, so
    // send it now, after anything still held for that neighbour.
    MacAddr mac;
    if (neighbours_.lookup(mm.next_hop, mac)) {
        release_held(mm.next_hop, mac);
        ++counters_.resolved_at_punt;
        send_resolved(m, mac);
        return;
    }
    // A new next hop gets a pending entry unless the frame's source already holds its share of
    // them (a scan) or the table has no slot: then the frame is dropped, not held (counted as
    // neighbour_pending_refused / neighbour_table_full), so that frames for next hops nobody
    // resolves cannot take the hold queue either.
    const NeighbourTable::Request r = neighbours_.request(mm.next_hop, now_ms, frame_source(m));
    if (r == NeighbourTable::Request::Refused || r == NeighbourTable::Request::Full) {
        rte_pktmbuf_free(m);
        return;
    }
    if (!hold_.hold(mm.next_hop, m, now_ms)) {
        ++counters_.hold_full;
        ++counters_.hold_dropped;
        rte_pktmbuf_free(m);
    } else {
        ++counters_.held;
    }
    if (r == NeighbourTable::Request::Due) send_request(mm.out_side, mm.next_hop);
}

void ControlLcore::housekeeping(uint64_t now_ms) {
    neighbours_.expire(now_ms, kReachableMs);
    drop_held(hold_.expire(now_ms, kHoldMaxMs), counters_.hold_timeout);
    // Retries (NeighbourTable spaces them: 250 ms, doubling up to 1 s): for every neighbour
    // frames wait for, and for the configured next hops until they answer, so that a request
    // or reply lost at start does not cost the first burst.
    hold_.for_each_waiting([&](uint32_t ip) { request(side_for_next_hop(ip), ip, now_ms); });
    MacAddr mac;
    for (uint32_t nh : next_hops_)
        if (!neighbours_.lookup(nh, mac)) request(side_for_next_hop(nh), nh, now_ms);
    for (uint32_t ip : neighbours_.due_refreshes(now_ms)) request(side_for_next_hop(ip), ip, now_ms);
    sync_neighbour_counters();
}

void ControlLcore::drain() {
    for (void* p : hold_.drain()) rte_pktmbuf_free(static_cast<rte_mbuf*>(p));
}

}  // namespace snatgw
