// Live configuration changes (invariant I6): a new snapshot reaches a worker that holds
// sessions. Removed addresses drain (no new sessions, the existing ones keep working), a
// deleted pool's sessions keep its policy and timeouts, a changed port range applies to new
// sessions only, a changed policy applies to the next packet.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "nat_fixture.h"
#include "port_allocator.h"

namespace snatgw::test {
namespace {

const uint32_t kServer = ip("198.19.0.100");

struct Mapped {
    uint32_t addr = 0;
    uint16_t port = 0;
};

uint32_t host_ip(int n) { return ip("198.18.0.0") + static_cast<uint32_t>(n); }

// Sends one UDP datagram out; returns the public (address, port) it left with.
Mapped udp_out(NatHarness& h, uint32_t src, uint16_t sport, uint32_t now = 1000) {
    NatOutcome o = h.out(PacketBuilder().eth().ipv4(src, kServer).udp(sport, 53).payload(16).build(), now);
    EXPECT_EQ(o.result.verdict, Verdict::Forward);
    auto d = decode(o.frame);
    if (o.result.verdict != Verdict::Forward || !d) return {};
    return {d->src, d->sport};
}

// A reply from the server to a public (address, port): forwarded back to `inside`?
bool reply_reaches(NatHarness& h, Mapped m, uint32_t inside, uint32_t now = 1000) {
    NatOutcome o = h.in(PacketBuilder().eth().ipv4(kServer, m.addr).udp(53, m.port).payload(16).build(), now);
    if (o.result.verdict != Verdict::Forward) return false;
    auto d = decode(o.frame);
    return d && d->dst == inside;
}

PoolSpec pool(const char* name, const char* addresses, const char* ports = "1024-65535") {
    PoolSpec p;
    p.name = name;
    p.addresses = addresses;
    p.ports = ports;
    return p;
}

TEST(NatLiveConfig, RemovedAddressDrainsKeepingItsSessions) {
    NatHarness h({pool("lab", "198.19.0.10")});
    const Mapped old = udp_out(h, host_ip(1), 4000);
    ASSERT_EQ(old.addr, ip("198.19.0.10"));

    // Replace the address: .10 drains, .11 takes new sessions.
    PoolSpec p = pool("lab", "198.19.0.11");
    p.draining = {ip("198.19.0.10")};
    h.reconfigure({p}, {{"198.18.0.0/24", "lab"}});

    EXPECT_TRUE(reply_reaches(h, old, host_ip(1))) << "the drained address' session broke";
    EXPECT_EQ(udp_out(h, host_ip(1), 4000).port, old.port) << "the same flow keeps its mapping";
    // New sessions, from this host (paired with the drained address) and from others, use .11.
    EXPECT_EQ(udp_out(h, host_ip(1), 4001).addr, ip("198.19.0.11"));
    for (int i = 2; i < 20; ++i) EXPECT_EQ(udp_out(h, host_ip(i), 5000).addr, ip("198.19.0.11"));
    EXPECT_TRUE(h.worker().ports().draining(htonl(ip("198.19.0.10"))));
}

TEST(NatLiveConfig, ReaddedAddressIsUsedAgain) {
    NatHarness h({pool("lab", "198.19.0.10")});
    PoolSpec p = pool("lab", "198.19.0.11");
    p.draining = {ip("198.19.0.10")};
    h.reconfigure({p}, {{"198.18.0.0/24", "lab"}});
    h.reconfigure({pool("lab", "198.19.0.10")}, {{"198.18.0.0/24", "lab"}});
    EXPECT_FALSE(h.worker().ports().draining(htonl(ip("198.19.0.10"))));
    EXPECT_EQ(udp_out(h, host_ip(3), 4000).addr, ip("198.19.0.10"));
}

TEST(NatLiveConfig, DeletedPoolKeepsSessionsAndRefusesNewOnes) {
    NatHarness h({pool("lab", "198.19.0.10")});
    const Mapped old = udp_out(h, host_ip(1), 4000);

    PoolSpec gone = pool("lab", "198.19.0.10");
    gone.retired = true;
    gone.draining = {ip("198.19.0.10")};
    h.reconfigure({gone, pool("next", "198.19.0.20")}, {{"198.18.0.0/25", "next"}});
    EXPECT_TRUE(reply_reaches(h, old, host_ip(1)));
    EXPECT_EQ(udp_out(h, host_ip(2), 4000).addr, ip("198.19.0.20"));

    // A source no rule covers any more gets nothing new.
    NatOutcome o = h.out(PacketBuilder().eth().ipv4(host_ip(200), kServer).udp(1, 53).payload(8).build());
    EXPECT_EQ(o.result.verdict, Verdict::Drop);
    EXPECT_EQ(o.result.reason, DropReason::NoRule);
}

TEST(NatLiveConfig, NarrowedPortRangeAppliesToNewSessionsOnly) {
    NatHarness h({pool("lab", "198.19.0.10", "1024-65535")});
    std::vector<std::pair<Mapped, uint32_t>> before;
    for (int i = 1; i <= 50; ++i) before.push_back({udp_out(h, host_ip(i), 4000), host_ip(i)});

    h.reconfigure({pool("lab", "198.19.0.10", "20000-20099")}, {{"198.18.0.0/24", "lab"}});
    for (const auto& [m, inside] : before) EXPECT_TRUE(reply_reaches(h, m, inside));
    std::set<uint16_t> ports;
    for (int i = 1; i <= 100; ++i) {
        const Mapped m = udp_out(h, host_ip(i), 6000);
        EXPECT_GE(m.port, 20000);
        EXPECT_LE(m.port, 20099);
        ports.insert(m.port);
    }
    EXPECT_EQ(ports.size(), 100u) << "every port of the new range used once";
    EXPECT_EQ(h.worker().ports().partition_size(htonl(ip("198.19.0.10"))), 100u);

    // The old sessions end; their ports (outside the new range) are released without harm.
    EXPECT_GT(h.worker().expire(1000 + 200 * 1000, 1000000), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(ip("198.19.0.10")), PortSpace::Udp), 0u);
    // Released ports of the old range are not handed out again.
    for (int i = 1; i <= 100; ++i) {
        const Mapped m = udp_out(h, host_ip(i), 7000, 300 * 1000);
        EXPECT_GE(m.port, 20000);
        EXPECT_LE(m.port, 20099);
    }
}

TEST(NatLiveConfig, WidenedRangeKeepsUseCountsOfOverlappingPorts) {
    NatHarness h({pool("lab", "198.19.0.10", "30000-30009")});
    std::vector<std::pair<Mapped, uint32_t>> held;
    for (int i = 1; i <= 10; ++i) held.push_back({udp_out(h, host_ip(i), 4000), host_ip(i)});
    h.reconfigure({pool("lab", "198.19.0.10", "29990-30019")}, {{"198.18.0.0/24", "lab"}});
    std::set<uint16_t> fresh;
    for (int i = 11; i <= 30; ++i) fresh.insert(udp_out(h, host_ip(i), 4000).port);
    for (const auto& [m, inside] : held) {
        EXPECT_EQ(fresh.count(m.port), 0u) << "port " << m.port << " handed out twice";
        EXPECT_TRUE(reply_reaches(h, m, inside));
    }
    EXPECT_EQ(fresh.size(), 20u);
}

TEST(NatLiveConfig, PolicyChangeAppliesToTheNextPacket) {
    NatHarness h({pool("lab", "198.19.0.10")});
    const uint32_t in = host_ip(1);
    // Handshake.
    auto syn = h.out(PacketBuilder().eth().ipv4(in, kServer).tcp(40000, 80, 1000, 0, TCP_SYN, 64240).build());
    ASSERT_EQ(syn.result.verdict, Verdict::Forward);
    const auto d = decode(syn.frame);
    ASSERT_TRUE(d);
    const uint32_t pub = d->src;
    const uint16_t pport = d->sport;
    ASSERT_EQ(h.in(PacketBuilder().eth().ipv4(kServer, pub).tcp(80, pport, 5000, 1001, TCP_SYN | TCP_ACK, 64240).build()).result.verdict,
              Verdict::Forward);
    ASSERT_EQ(h.out(PacketBuilder().eth().ipv4(in, kServer).tcp(40000, 80, 1001, 5001, TCP_ACK, 64240).build()).result.verdict,
              Verdict::Forward);
    // Data far beyond the window from the server: liberal forwards it...
    auto beyond = [&] {
        return h.in(PacketBuilder().eth().ipv4(kServer, pub).tcp(80, pport, 5001 + 50000000u, 1001, TCP_ACK, 64240).payload(10).build());
    };
    EXPECT_EQ(beyond().result.verdict, Verdict::Forward);
    // ...strict, from the next packet on, drops it.
    PoolSpec strict = pool("lab", "198.19.0.10");
    strict.policy = "strict";
    h.reconfigure({strict}, {{"198.18.0.0/24", "lab"}});
    const auto r = beyond().result;
    EXPECT_EQ(r.verdict, Verdict::Drop);
    EXPECT_EQ(r.reason, DropReason::TcpOutOfWindow);
}

TEST(NatLiveConfig, TimeoutChangeAppliesToExistingSessions) {
    NatHarness h({pool("lab", "198.19.0.10")});
    udp_out(h, host_ip(1), 4000, 1000);
    PoolSpec quick = pool("lab", "198.19.0.10");
    quick.timeouts.udp = 5;
    h.reconfigure({quick}, {{"198.18.0.0/24", "lab"}});
    EXPECT_EQ(h.worker().expire(1000 + 4000, 1000000), 0u);
    EXPECT_EQ(h.worker().expire(1000 + 7000, 1000000), 1u);
}

}  // namespace
}  // namespace snatgw::test
