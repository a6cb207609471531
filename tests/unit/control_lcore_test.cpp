// NeighbourControlLcore*: the main lcore's next-hop resolution as the workers see it, without a
// NIC: frames punted for an unknown next hop go into the punt ring, what the control lcore sends
// comes out of worker 0's control ring. A cold-start burst held whole and released in order,
// a frame punted after its neighbour resolved sent at once, the global cap and the timeout
// counted, requests retried while frames wait and for the configured next hops.
#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "arp.h"
#include "byte_order.h"
#include "control_lcore.h"
#include "neighbour_table.h"
#include "packet_builder.h"
#include "worker_loop.h"

namespace snatgw::test {
namespace {

const MacAddr kInsideMac{0x02, 0, 0, 0, 0x01, 0x01};
const MacAddr kOutsideMac{0x02, 0, 0, 0, 0x02, 0x01};
const MacAddr kServerMac{0x02, 0, 0, 0, 0x02, 0x02};
const MacAddr kHostMac{0x02, 0, 0, 0, 0x01, 0x02};
constexpr uint32_t kSeqOffset = 40;  // where a test frame carries its number
constexpr uint16_t kEtherTypeArpBe = 0x0806;

// What came out of the control ring.
struct Sent {
    int out_side;
    MacAddr dst;
    MacAddr src;
    bool arp;
    ArpPacket arp_packet{};
    uint32_t seq = 0;
};

class ControlLcoreRig {
public:
    // `mbufs` per port pool: the hold queue's global cap is an eighth of it. The neighbour
    // table holds `neighbours` entries, `pending_per_source` of them pending for one source.
    explicit ControlLcoreRig(uint32_t mbufs, uint32_t neighbours = 64,
                             uint32_t pending_per_source = NeighbourTable::kDefaultPendingPerSource) {
        static int instance = 0;
        const std::string id = std::to_string(instance++);
        for (int side = 0; side < 2; ++side) {
            const std::string name = "cl_pool" + std::to_string(side) + "_" + id;
            pools_[side] = rte_pktmbuf_pool_create(name.c_str(), mbufs, 0, sizeof(MbufMeta),
                                                   RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        }
        punt_ = rte_ring_create(("cl_punt_" + id).c_str(), 4096, SOCKET_ID_ANY,
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
        tx_ = rte_ring_create(("cl_tx_" + id).c_str(), 4096, SOCKET_ID_ANY,
                              RING_F_SP_ENQ | RING_F_SC_DEQ);
        shared_.workers = 1;
        shared_.punt[0] = punt_;
        shared_.control_tx[0] = tx_;
        shared_.port[0] = {0, ip("10.0.0.1"), ip("10.0.0.0"), 0xffff0000u, kInsideMac};  // a /16
        shared_.port[1] = {1, ip("198.18.0.1"), ip("198.18.0.0"), 0xffffff00u, kOutsideMac};
        neighbours_ = std::make_unique<NeighbourTable>(neighbours, 5'000,
                                                       NeighbourTable::kDefaultIdleMs,
                                                       pending_per_source);
        control_ = std::make_unique<ControlLcore>(shared_, *neighbours_, pools_,
                                                  std::vector<uint32_t>{ip("198.18.0.10")});
    }
    ~ControlLcoreRig() {
        control_->drain();
        drain_tx();
        control_.reset();
        rte_ring_free(punt_);
        rte_ring_free(tx_);
        for (rte_mempool* p : pools_) rte_mempool_free(p);
    }
    ControlLcoreRig(const ControlLcoreRig&) = delete;
    ControlLcoreRig& operator=(const ControlLcoreRig&) = delete;

    bool ready() const { return pools_[0] && pools_[1] && punt_ && tx_; }
    ControlLcore& control() { return *control_; }
    const ControlCounters& counters() const { return control_->counters(); }
    rte_mempool* pool(int side) { return pools_[side]; }

    const NeighbourTable& neighbours() const { return *neighbours_; }

    // A worker's punt of a forwarded frame (IPv4 source `source`) whose next hop it could not
    // resolve. The frame came in on the other port; its number is at kSeqOffset.
    bool punt_unresolved(uint32_t seq, int out_side, uint32_t next_hop, uint32_t source = 0) {
        rte_mbuf* m = rte_pktmbuf_alloc(pools_[1 - out_side]);
        if (m == nullptr) return false;
        uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, 64));
        std::memset(f, 0, 64);
        store_be16(f + 12, 0x0800);
        store_be32(f + 26, source);
        store_be32(f + kSeqOffset, seq);
        MbufMeta* mm = meta(m);
        mm->reason = PuntReason::NoNeighbour;
        mm->out_side = static_cast<uint8_t>(out_side);
        mm->rx_port = shared_.port[1 - out_side].port_id;
        mm->next_hop = next_hop;
        return enqueue(m);
    }

    // An ARP reply from `who` (mac) to the gateway, received on `side`.
    bool punt_arp_reply(int side, uint32_t who, const MacAddr& mac) {
        uint8_t req[kArpFrameLen];
        const PortInfo& p = shared_.port[side];
        const uint32_t rl = build_arp_request(req, sizeof(req), p.mac, p.addr, who);
        const auto request = parse_arp(req, rl);
        if (!request) return false;
        rte_mbuf* m = rte_pktmbuf_alloc(pools_[side]);
        if (m == nullptr) return false;
        const uint32_t len = build_arp_reply(rte_pktmbuf_mtod(m, uint8_t*),
                                             rte_pktmbuf_tailroom(m), *request, mac);
        m->data_len = static_cast<uint16_t>(len);
        m->pkt_len = len;
        MbufMeta* mm = meta(m);
        mm->reason = PuntReason::Arp;
        mm->rx_port = p.port_id;
        return len != 0 && enqueue(m);
    }

    // Any ARP frame received on `side` (broadcast): op, sender, target.
    bool punt_arp(int side, uint16_t op, uint32_t sender_ip, const MacAddr& sender_mac,
                  uint32_t target_ip) {
        rte_mbuf* m = rte_pktmbuf_alloc(pools_[side]);
        if (m == nullptr) return false;
        uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kArpFrameLen));
        std::memset(f, 0, kArpFrameLen);
        std::memcpy(f, kBroadcastMac.data(), 6);
        std::memcpy(f + 6, sender_mac.data(), 6);
        store_be16(f + 12, kEtherTypeArpBe);
        uint8_t* a = f + 14;
        store_be16(a, 1);
        store_be16(a + 2, 0x0800);
        a[4] = 6;
        a[5] = 4;
        store_be16(a + 6, op);
        std::memcpy(a + 8, sender_mac.data(), 6);
        store_be32(a + 14, sender_ip);
        store_be32(a + 24, target_ip);
        MbufMeta* mm = meta(m);
        mm->reason = PuntReason::Arp;
        mm->rx_port = shared_.port[side].port_id;
        return enqueue(m);
    }

    // Lets the control lcore take everything punted.
    void poll(uint64_t now_ms) {
        while (control_->poll(now_ms) != 0) {
        }
    }

    // Everything sent since the last call, in order; the mbufs go back to their pools.
    std::vector<Sent> drain_tx() {
        std::vector<Sent> out;
        void* p = nullptr;
        while (rte_ring_sc_dequeue(tx_, &p) == 0) {
            auto* m = static_cast<rte_mbuf*>(p);
            const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
            Sent s{};
            s.out_side = meta(m)->out_side;
            std::memcpy(s.dst.data(), f, 6);
            std::memcpy(s.src.data(), f + 6, 6);
            s.arp = load_be16(f + 12) == kEtherTypeArpBe;
            if (s.arp) {
                const auto a = parse_arp(f, m->data_len);
                if (a) s.arp_packet = *a;
            } else {
                s.seq = load_be32(f + kSeqOffset);
            }
            EXPECT_EQ(meta(m)->reason, PuntReason::Transmit);
            rte_pktmbuf_free(m);
            out.push_back(s);
        }
        return out;
    }

private:
    bool enqueue(rte_mbuf* m) {
        if (rte_ring_sp_enqueue(punt_, m) == 0) return true;
        rte_pktmbuf_free(m);
        return false;
    }

    rte_mempool* pools_[2] = {};
    rte_ring* punt_ = nullptr;
    rte_ring* tx_ = nullptr;
    WorkerShared shared_;
    std::unique_ptr<NeighbourTable> neighbours_;
    std::unique_ptr<ControlLcore> control_;
};

// ARP requests (not gratuitous) for `target` among `sent`.
int requests_for(const std::vector<Sent>& sent, uint32_t target) {
    int n = 0;
    for (const Sent& s : sent)
        n += s.arp && s.arp_packet.op == kArpOpRequest && s.arp_packet.target_ip == target &&
             s.arp_packet.sender_ip != target;
    return n;
}

std::vector<Sent> data_frames(const std::vector<Sent>& sent) {
    std::vector<Sent> out;
    for (const Sent& s : sent)
        if (!s.arp) out.push_back(s);
    return out;
}

// The cold start of a storm: 128 SYNs for the server and 32 replies for an inside host, all
// before either MAC is known, then the answers.
TEST(NeighbourControlLcore, ColdStartBurstIsHeldWholeAndReleasedInOrder) {
    ControlLcoreRig rig(4095);
    ASSERT_TRUE(rig.ready());
    const uint32_t server = ip("198.18.0.2"), host = ip("10.0.0.2");
    for (uint32_t i = 0; i < 128; ++i) ASSERT_TRUE(rig.punt_unresolved(i, 1, server));
    for (uint32_t i = 0; i < 32; ++i) ASSERT_TRUE(rig.punt_unresolved(1'000 + i, 0, host));
    rig.poll(5);
    EXPECT_EQ(rig.counters().held, 160u);
    EXPECT_EQ(rig.counters().hold_dropped, 0u);
    EXPECT_EQ(rig.control().hold_queue().waiting(server), 128u);
    std::vector<Sent> sent = rig.drain_tx();
    EXPECT_EQ(requests_for(sent, server), 1);  // one request per neighbour, not per frame
    EXPECT_EQ(requests_for(sent, host), 1);
    EXPECT_TRUE(data_frames(sent).empty());

    ASSERT_TRUE(rig.punt_arp_reply(1, server, kServerMac));
    rig.poll(8);
    std::vector<Sent> out = data_frames(rig.drain_tx());
    ASSERT_EQ(out.size(), 128u);
    for (uint32_t i = 0; i < 128; ++i) {
        EXPECT_EQ(out[i].seq, i);
        EXPECT_EQ(out[i].out_side, 1);
        EXPECT_EQ(out[i].dst, kServerMac);
        EXPECT_EQ(out[i].src, kOutsideMac);
    }
    ASSERT_TRUE(rig.punt_arp_reply(0, host, kHostMac));
    rig.poll(9);
    out = data_frames(rig.drain_tx());
    ASSERT_EQ(out.size(), 32u);
    for (uint32_t i = 0; i < 32; ++i) {
        EXPECT_EQ(out[i].seq, 1'000 + i);
        EXPECT_EQ(out[i].out_side, 0);
        EXPECT_EQ(out[i].dst, kHostMac);
        EXPECT_EQ(out[i].src, kInsideMac);
    }
    EXPECT_EQ(rig.counters().released, 160u);
    EXPECT_EQ(rig.control().hold_queue().size(), 0u);
}

// A worker missed the neighbour just before the control lcore learnt it: the punted frame is
// sent at once, not held until an ARP that will not come.
TEST(NeighbourControlLcore, FramePuntedAfterItsNeighbourResolvedIsSentAtOnce) {
    ControlLcoreRig rig(4095);
    ASSERT_TRUE(rig.ready());
    const uint32_t server = ip("198.18.0.3");
    ASSERT_TRUE(rig.punt_arp_reply(1, server, kServerMac));  // learnt first (the ring is FIFO)
    ASSERT_TRUE(rig.punt_unresolved(7, 1, server));
    ASSERT_TRUE(rig.punt_unresolved(8, 1, server));
    rig.poll(10);
    const std::vector<Sent> sent = rig.drain_tx();
    EXPECT_EQ(requests_for(sent, server), 0);
    const std::vector<Sent> out = data_frames(sent);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].seq, 7u);
    EXPECT_EQ(out[1].seq, 8u);
    EXPECT_EQ(out[0].dst, kServerMac);
    EXPECT_EQ(out[0].src, kOutsideMac);
    EXPECT_EQ(rig.counters().resolved_at_punt, 2u);
    EXPECT_EQ(rig.counters().held, 0u);
    EXPECT_EQ(rig.control().hold_queue().size(), 0u);
}

// The hold queue takes an eighth of the pool at most; what does not fit is counted.
TEST(NeighbourControlLcore, GlobalCapIsAnEighthOfThePoolAndOverflowIsCounted) {
    ControlLcoreRig rig(4095);
    ASSERT_TRUE(rig.ready());
    EXPECT_EQ(rig.control().hold_queue().global_cap(), 4095u / kHoldPoolShare);
    EXPECT_EQ(rig.control().hold_queue().per_neighbour(), 256u);
    uint32_t seq = 0;
    for (uint32_t n = 0; n < 4; ++n) {
        for (int k = 0; k < 200; ++k) ASSERT_TRUE(rig.punt_unresolved(seq++, 1, ip("198.18.0.20") + n));
        rig.poll(n);
    }
    const uint64_t cap = 4095 / kHoldPoolShare;  // 511
    EXPECT_EQ(rig.counters().held, cap);
    EXPECT_EQ(rig.counters().hold_full, 800 - cap);
    EXPECT_EQ(rig.counters().hold_timeout, 0u);
    EXPECT_EQ(rig.counters().hold_dropped, 800 - cap);
    // Dropped frames went back to the pool: only the held ones are out.
    EXPECT_EQ(rte_mempool_in_use_count(rig.pool(0)), cap);
    rig.drain_tx();
}

// Requests are retried while frames wait (250, 500, 1000 ms apart); after kHoldMaxMs the frames
// are dropped and counted as timed out, and the retries stop with them.
TEST(NeighbourControlLcore, RequestsRetriedWhileFramesWaitThenFramesTimeOut) {
    ControlLcoreRig rig(4095);
    ASSERT_TRUE(rig.ready());
    const uint32_t gone = ip("10.0.0.99");
    for (uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(rig.punt_unresolved(i, 0, gone));
    rig.poll(0);
    EXPECT_EQ(requests_for(rig.drain_tx(), gone), 1);
    std::vector<uint64_t> retried_at;
    for (uint64_t now = 100; now < ControlLcore::kHoldMaxMs; now += 100) {
        rig.control().housekeeping(now);
        if (requests_for(rig.drain_tx(), gone) != 0) retried_at.push_back(now);
    }
    EXPECT_EQ(retried_at, (std::vector<uint64_t>{300, 800, 1800, 2800}));
    EXPECT_EQ(rig.counters().hold_timeout, 0u);
    rig.control().housekeeping(ControlLcore::kHoldMaxMs);
    EXPECT_EQ(rig.counters().hold_timeout, 3u);
    EXPECT_EQ(rig.counters().hold_dropped, 3u);
    EXPECT_EQ(rig.counters().hold_full, 0u);
    EXPECT_EQ(rig.control().hold_queue().size(), 0u);
    rig.drain_tx();
    for (uint64_t now = 3'100; now < 6'000; now += 100) rig.control().housekeeping(now);
    EXPECT_EQ(requests_for(rig.drain_tx(), gone), 0);  // nothing waits: nothing to ask
    EXPECT_EQ(rte_mempool_in_use_count(rig.pool(1)), 0u);
}

// At start the gateway announces itself and asks for its configured next hop, and keeps asking
// until it answers; then it stops (until the entry ages).
TEST(NeighbourControlLcore, ConfiguredNextHopIsAskedForAtStartUntilItAnswers) {
    ControlLcoreRig rig(4095);
    ASSERT_TRUE(rig.ready());
    const uint32_t gw = ip("198.18.0.254");
    rig.control().announce(0, {gw});
    std::vector<Sent> sent = rig.drain_tx();
    EXPECT_EQ(requests_for(sent, gw), 1);
    int gratuitous = 0;
    for (const Sent& s : sent)
        gratuitous += s.arp && s.arp_packet.sender_ip == s.arp_packet.target_ip;
    EXPECT_EQ(gratuitous, 3);  // inside address; outside address and the pool address
    int retries = 0;
    for (uint64_t now = 100; now <= 5'000; now += 100) {
        rig.control().housekeeping(now);
        retries += requests_for(rig.drain_tx(), gw);
    }
    EXPECT_EQ(retries, 6);  // at 300, 800, 1800, 2800, 3800, 4800 (housekeeping every 100 ms)
    ASSERT_TRUE(rig.punt_arp_reply(1, gw, kServerMac));
    rig.poll(5'050);
    rig.drain_tx();
    for (uint64_t now = 5'100; now <= 20'000; now += 100) rig.control().housekeeping(now);
    EXPECT_EQ(requests_for(rig.drain_tx(), gw), 0);
    EXPECT_EQ(rig.counters().arp_learned, 1u);
}

// ---- issue 13: neighbours age out, the table cannot be taken --------------------------------

MacAddr flood_mac(uint32_t a) {
    return {0x02, 0x66, uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)};
}

// The configured next hop is pinned: 50,000 gratuitous ARP (replies and announcements) from
// distinct inside addresses, and some claiming the next hop's address with the flooder's MAC,
// leave it resolved to its own MAC; what the flood could not put into the table is counted; a
// new inside host still resolves and gets its frames; the next hop is asked again (a real MAC
// change would be learnt from the answer).
TEST(NeighbourControlLcore, PinnedNextHopSurvivesAFloodOfGratuitousArp) {
    ControlLcoreRig rig(4095, 64);
    ASSERT_TRUE(rig.ready());
    const uint32_t gw = ip("198.18.0.254");  // the outside port's subnet in the rig
    rig.control().announce(0, {gw});
    rig.drain_tx();
    ASSERT_TRUE(rig.punt_arp_reply(1, gw, kServerMac));
    rig.poll(1);
    ASSERT_EQ(rig.counters().arp_learned, 1u);
    uint64_t claims = 0;
    for (uint32_t i = 0; i < 50'000; ++i) {
        const uint32_t a = ip("10.0.0.0") + 2 + i;  // inside /16
        ASSERT_TRUE(rig.punt_arp(0, i % 2 ? kArpOpReply : kArpOpRequest, a, flood_mac(a), a));
        if (i % 500 == 0) {
            ASSERT_TRUE(rig.punt_arp(1, kArpOpReply, gw, flood_mac(a), gw));
            ++claims;
        }
        if (i % 1'000 == 0) {
            rig.poll(2);
            rig.drain_tx();
        }
    }
    rig.poll(2);
    rig.drain_tx();
    MacAddr m{};
    ASSERT_TRUE(rig.control().neighbours().lookup(gw, m));
    EXPECT_EQ(m, kServerMac);
    NeighbourTable::Info info{};
    ASSERT_TRUE(rig.control().neighbours().info(gw, info));
    EXPECT_TRUE(info.pinned);
    // Gratuitous requests teach nothing (as before); gratuitous replies fill the table to 3/4
    // and are ignored beyond, as are the claims on the next hop.
    const uint64_t learnt = rig.counters().arp_learned - 1;
    EXPECT_EQ(learnt, rig.control().neighbours().unsolicited_limit() - 1u);
    EXPECT_EQ(rig.counters().arp_unsolicited_ignored, 25'000u - learnt + claims);
    EXPECT_EQ(rig.counters().neighbour_evicted, 0u);
    EXPECT_LE(rig.control().neighbours().size(), 64u);
    // The claims made the next hop stale: it is asked again.
    rig.control().housekeeping(1'500);
    EXPECT_EQ(requests_for(rig.drain_tx(), gw), 1);
    // A new inside host: the server's reply waits for it, it answers, the frame goes to it.
    const uint32_t host = ip("10.0.200.1");
    ASSERT_TRUE(rig.punt_unresolved(42, 0, host, ip("198.18.0.2")));
    rig.poll(1'600);
    EXPECT_EQ(requests_for(rig.drain_tx(), host), 1);
    ASSERT_TRUE(rig.punt_arp_reply(0, host, kHostMac));
    rig.poll(1'601);
    const std::vector<Sent> out = data_frames(rig.drain_tx());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].seq, 42u);
    EXPECT_EQ(out[0].dst, kHostMac);
}

// One source's frames for many unresolved next hops (a scan through the gateway): it gets
// pending_per_source pending entries and holds their frames; every other frame is dropped at
// once and counted, not held; another source still gets its next hop resolved; once the
// scanner's entries are reclaimed (unanswered, unasked) it gets its share again.
TEST(NeighbourControlLcore, PendingEntriesPerSourceAreBoundedAndRefusalsCounted) {
    ControlLcoreRig rig(4095, 4096, 8);
    ASSERT_TRUE(rig.ready());
    const uint32_t pool = ip("198.18.0.10"), server = ip("198.18.0.2");
    for (uint32_t i = 0; i < 200; ++i)
        ASSERT_TRUE(rig.punt_unresolved(i, 1, ip("198.18.0.20") + i, pool));
    rig.poll(0);
    std::vector<Sent> sent = rig.drain_tx();
    int requests = 0;
    for (const Sent& s : sent) requests += s.arp && s.arp_packet.op == kArpOpRequest;
    EXPECT_EQ(requests, 8);
    EXPECT_EQ(rig.counters().held, 8u);
    EXPECT_EQ(rig.counters().neighbour_pending_refused, 192u);
    EXPECT_EQ(rig.counters().hold_full, 0u);
    EXPECT_EQ(rig.control().hold_queue().size(), 8u);
    EXPECT_EQ(rte_mempool_in_use_count(rig.pool(0)), 8u);  // refused frames went back
    // Frames from the server for a new inside host: another source, resolved.
    const uint32_t host = ip("10.0.0.7");
    ASSERT_TRUE(rig.punt_unresolved(1'000, 0, host, server));
    rig.poll(1);
    EXPECT_EQ(requests_for(rig.drain_tx(), host), 1);
    ASSERT_TRUE(rig.punt_arp_reply(0, host, kHostMac));
    rig.poll(2);
    EXPECT_EQ(data_frames(rig.drain_tx()).size(), 1u);
    // Nobody answers the scan: its frames time out, its entries go 3 s after the last retry.
    for (uint64_t now = 100; now <= 7'000; now += 100) rig.control().housekeeping(now);
    rig.drain_tx();
    EXPECT_EQ(rig.counters().hold_timeout, 8u);
    EXPECT_EQ(rig.counters().neighbour_expired, 8u);
    EXPECT_EQ(rig.control().neighbours().pending_from(pool), 0u);
    ASSERT_TRUE(rig.punt_unresolved(2'000, 1, ip("198.18.0.250"), pool));
    rig.poll(7'100);
    EXPECT_EQ(requests_for(rig.drain_tx(), ip("198.18.0.250")), 1);
    EXPECT_EQ(rig.counters().neighbour_pending_refused, 192u);
}

// A table full of neighbours in use still takes a new one: the least recently used goes and is
// counted; the configured next hop is never the one.
TEST(NeighbourControlLcore, FullTableEvictsTheLeastRecentlyUsedNotTheNextHop) {
    ControlLcoreRig rig(4095, 16);
    ASSERT_TRUE(rig.ready());
    const uint32_t gw = ip("198.18.0.254");
    rig.control().announce(0, {gw});
    ASSERT_TRUE(rig.punt_arp_reply(1, gw, kServerMac));
    rig.poll(1);
    uint64_t now = 2;
    for (uint32_t i = 0; i < 40; ++i) {  // 40 inside hosts resolved through our requests
        const uint32_t h = ip("10.0.1.0") + i;
        ASSERT_TRUE(rig.punt_unresolved(i, 0, h, ip("198.18.0.2")));
        rig.poll(now);
        ASSERT_TRUE(rig.punt_arp_reply(0, h, flood_mac(h)));
        rig.poll(now);
        now += 1'100;
        rig.control().housekeeping(now);
    }
    const std::vector<Sent> out = data_frames(rig.drain_tx());
    EXPECT_EQ(out.size(), 40u);  // every host resolved and got its frame
    EXPECT_EQ(rig.counters().neighbour_evicted, 40u - 15u);
    EXPECT_EQ(rig.counters().neighbour_table_full, 0u);
    NeighbourTable::Info info{};  // still there (gone invalid: nobody answered its refreshes)
    ASSERT_TRUE(rig.control().neighbours().info(gw, info));
    EXPECT_TRUE(info.pinned);
    MacAddr m{};
    EXPECT_TRUE(rig.control().neighbours().lookup(ip("10.0.1.0") + 39, m));
    EXPECT_FALSE(rig.control().neighbours().lookup(ip("10.0.1.0"), m));  // the oldest went
}

}  // namespace
}  // namespace snatgw::test
