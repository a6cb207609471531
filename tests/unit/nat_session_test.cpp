// Session lifetime: timeouts, table-full eviction, host cap, paired pooling, exhaustion, gauges.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "nat_fixture.h"

namespace snatgw::test {
namespace {

const uint32_t kServer = ip("198.19.0.100");
const uint32_t kPub0 = ip("198.19.0.10");
const uint32_t kPub1 = ip("198.19.0.11");
constexpr uint32_t kBigBudget = 1000000;

std::string describe(const FrameResult& r) {
    std::string s = "verdict ";
    switch (r.verdict) {
        case Verdict::Forward: s += "Forward"; break;
        case Verdict::Drop: s += "Drop"; break;
        case Verdict::Handoff: s += "Handoff"; break;
        case Verdict::TtlExceeded: s += "TtlExceeded"; break;
        case Verdict::Punt: s += "Punt"; break;
    }
    if (r.verdict == Verdict::Drop) {
        s += " reason ";
        if (r.reason < DropReason::Count)
            s += std::string(drop_reason_name(r.reason));
        else
            s += "(none)";
    }
    return s;
}

std::string host(int last_octet) {
    std::string a = "198.18.0.";
    a += std::to_string(last_octet);
    return a;
}
uint32_t inside_ip(int last_octet) { return ip(host(last_octet).c_str()); }

// The public end of a session (host order), as seen in the first forwarded packet.
struct Mapped {
    uint32_t addr = 0;
    uint16_t port = 0;
};

// --- raw frames -------------------------------------------------------------------------------

NatOutcome udp_out(NatHarness& h, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   uint32_t now) {
    return h.out(PacketBuilder().eth().ipv4(src, dst).udp(sport, dport).payload(32).build(), now);
}
NatOutcome udp_in(NatHarness& h, uint32_t remote, uint16_t rport, Mapped m, uint32_t now) {
    return h.in(PacketBuilder().eth().ipv4(remote, m.addr).udp(rport, m.port).payload(48).build(),
                now);
}
NatOutcome ping_out(NatHarness& h, uint32_t src, uint16_t id, uint32_t dst, uint32_t now) {
    return h.out(PacketBuilder()
                     .eth()
                     .ipv4(src, dst)
                     .icmp_echo(ICMP_TYPE_ECHO_REQUEST, id, 1)
                     .payload(56)
                     .build(),
                 now);
}
NatOutcome pong_in(NatHarness& h, uint32_t remote, Mapped m, uint32_t now) {
    return h.in(PacketBuilder()
                    .eth()
                    .ipv4(remote, m.addr)
                    .icmp_echo(ICMP_TYPE_ECHO_REPLY, m.port, 1)
                    .payload(56)
                    .build(),
                now);
}
NatOutcome tcp_out(NatHarness& h, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   uint8_t flags, uint32_t seq, uint32_t ack, uint32_t now) {
    return h.out(PacketBuilder().eth().ipv4(src, dst).tcp(sport, dport, seq, ack, flags).build(),
                 now);
}
NatOutcome tcp_in(NatHarness& h, uint32_t remote, uint16_t rport, Mapped m, uint8_t flags,
                  uint32_t seq, uint32_t ack, uint32_t now) {
    return h.in(
        PacketBuilder().eth().ipv4(remote, m.addr).tcp(rport, m.port, seq, ack, flags).build(),
        now);
}

// --- checks -----------------------------------------------------------------------------------

// Forwarded from inside with valid checksums; *m receives the public source.
::testing::AssertionResult forwarded_out(const NatOutcome& o, Mapped* m = nullptr) {
    if (o.result.verdict != Verdict::Forward)
        return ::testing::AssertionFailure() << describe(o.result);
    const auto ck = verify_checksums(o.frame);
    if (!ck.ok) return ::testing::AssertionFailure() << ck.detail;
    const auto d = decode(o.frame);
    if (!d) return ::testing::AssertionFailure() << "cannot decode";
    if (m != nullptr) *m = Mapped{d->src, d->proto == PROTO_ICMP ? d->icmp_id : d->sport};
    return ::testing::AssertionSuccess();
}

// Forwarded from outside to inside:iport with valid checksums.
::testing::AssertionResult forwarded_in(const NatOutcome& o, uint32_t inside, uint16_t iport) {
    if (o.result.verdict != Verdict::Forward)
        return ::testing::AssertionFailure() << describe(o.result);
    const auto ck = verify_checksums(o.frame);
    if (!ck.ok) return ::testing::AssertionFailure() << ck.detail;
    const auto d = decode(o.frame);
    if (!d) return ::testing::AssertionFailure() << "cannot decode";
    const uint16_t port = d->proto == PROTO_ICMP ? d->icmp_id : d->dport;
    if (d->dst != inside || port != iport)
        return ::testing::AssertionFailure() << "to " << ip_str(d->dst) << ":" << port
                                             << ", expected " << ip_str(inside) << ":" << iport;
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult dropped(const NatOutcome& o, DropReason why) {
    if (o.result.verdict != Verdict::Drop || o.result.reason != why)
        return ::testing::AssertionFailure()
               << describe(o.result) << ", expected drop " << drop_reason_name(why);
    return ::testing::AssertionSuccess();
}

uint64_t tcp_gauge(const NatHarness& h, TcpState s) {
    return h.counters().tcp_state[static_cast<std::size_t>(s)];
}

uint64_t tcp_gauge_total(const NatHarness& h) {
    uint64_t t = 0;
    for (uint64_t g : h.counters().tcp_state) t += g;
    return t;
}

// The gauges account for every session in the table, and nothing else.
::testing::AssertionResult gauges_consistent(NatHarness& h) {
    const uint64_t sum =
        tcp_gauge_total(h) + h.counters().udp_sessions + h.counters().icmp_sessions;
    if (sum != h.worker().sessions().size())
        return ::testing::AssertionFailure()
               << "gauges sum to " << sum << " (tcp " << tcp_gauge_total(h) << ", udp "
               << h.counters().udp_sessions << ", icmp " << h.counters().icmp_sessions
               << ") but the table holds " << h.worker().sessions().size();
    if (h.counters().sessions_created < h.counters().sessions_freed ||
        h.counters().sessions_created - h.counters().sessions_freed != h.worker().sessions().size())
        return ::testing::AssertionFailure()
               << "created " << h.counters().sessions_created << " - freed "
               << h.counters().sessions_freed << " != size " << h.worker().sessions().size();
    if (h.worker().hosts().size() > h.worker().sessions().size())
        return ::testing::AssertionFailure() << h.worker().hosts().size() << " hosts for "
                                             << h.worker().sessions().size() << " sessions";
    return ::testing::AssertionSuccess();
}

// Nothing left: no session, no host, no port in use, every gauge zero.
::testing::AssertionResult all_clear(NatHarness& h, const std::vector<uint32_t>& pubs) {
    if (h.worker().sessions().size() != 0)
        return ::testing::AssertionFailure() << h.worker().sessions().size() << " sessions left";
    if (h.worker().hosts().size() != 0)
        return ::testing::AssertionFailure() << h.worker().hosts().size() << " hosts left";
    if (tcp_gauge_total(h) != 0 || h.counters().udp_sessions != 0 ||
        h.counters().icmp_sessions != 0)
        return ::testing::AssertionFailure()
               << "gauges: tcp " << tcp_gauge_total(h) << " udp " << h.counters().udp_sessions
               << " icmp " << h.counters().icmp_sessions;
    for (uint32_t a : pubs)
        for (PortSpace sp : {PortSpace::Tcp, PortSpace::Udp, PortSpace::Icmp})
            if (h.worker().ports().ports_in_use(htonl(a), sp) != 0)
                return ::testing::AssertionFailure()
                       << h.worker().ports().ports_in_use(htonl(a), sp) << " ports of " << ip_str(a)
                       << " still in use (space " << int(sp) << ")";
    if (h.counters().sessions_freed != h.counters().sessions_created)
        return ::testing::AssertionFailure() << "created " << h.counters().sessions_created
                                             << ", freed " << h.counters().sessions_freed;
    return ::testing::AssertionSuccess();
}

// A small TCP client for sessions that need a state: every segment must be forwarded.
struct Tcp {
    Tcp(NatHarness& harness, uint32_t inside_addr, uint16_t inside_port,
        uint32_t remote_addr = kServer, uint16_t remote_port = 80)
        : h(harness),
          inside(inside_addr),
          iport(inside_port),
          remote(remote_addr),
          rport(remote_port) {}

    NatHarness& h;
    uint32_t inside;
    uint16_t iport;
    uint32_t remote;
    uint16_t rport;
    Mapped m;
    uint32_t c = 1000;    // client's next sequence number (after the SYN)
    uint32_t s = 500000;  // server's next sequence number (after the SYN/ACK)

    void syn(uint32_t now) {
        ASSERT_TRUE(
            forwarded_out(tcp_out(h, inside, iport, remote, rport, TCP_SYN, c - 1, 0, now), &m));
    }
    void synack(uint32_t now) {
        ASSERT_TRUE(forwarded_in(tcp_in(h, remote, rport, m, TCP_SYN | TCP_ACK, s - 1, c, now),
                                 inside, iport));
    }
    void ack(uint32_t now) {
        ASSERT_TRUE(forwarded_out(tcp_out(h, inside, iport, remote, rport, TCP_ACK, c, s, now)));
    }
    void ack_in(uint32_t now) {
        ASSERT_TRUE(forwarded_in(tcp_in(h, remote, rport, m, TCP_ACK, s, c, now), inside, iport));
    }
    void data_in(uint32_t now) {
        ASSERT_TRUE(
            forwarded_in(tcp_in(h, remote, rport, m, TCP_ACK | TCP_PSH, s, c, now), inside, iport));
    }
    void open(uint32_t now) {
        ASSERT_NO_FATAL_FAILURE(syn(now));
        ASSERT_NO_FATAL_FAILURE(synack(now));
        ASSERT_NO_FATAL_FAILURE(ack(now));
    }
    void fin_out(uint32_t now) {
        ASSERT_TRUE(
            forwarded_out(tcp_out(h, inside, iport, remote, rport, TCP_FIN | TCP_ACK, c, s, now)));
        ++c;
    }
    void fin_in(uint32_t now) {
        ASSERT_TRUE(
            forwarded_in(tcp_in(h, remote, rport, m, TCP_FIN | TCP_ACK, s, c, now), inside, iport));
        ++s;
    }
    void rst_out(uint32_t now) {
        ASSERT_TRUE(
            forwarded_out(tcp_out(h, inside, iport, remote, rport, TCP_RST | TCP_ACK, c, s, now)));
    }
    // Inside-first close to TIME_WAIT.
    void close(uint32_t now) {
        ASSERT_NO_FATAL_FAILURE(fin_out(now));
        ASSERT_NO_FATAL_FAILURE(ack_in(now));
        ASSERT_NO_FATAL_FAILURE(fin_in(now));
        ASSERT_NO_FATAL_FAILURE(ack(now));
    }
};

void open_udp(NatHarness& h, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
              uint32_t now, Mapped* m) {
    ASSERT_TRUE(forwarded_out(udp_out(h, src, sport, dst, dport, now), m))
        << ip_str(src) << ":" << sport << " -> " << ip_str(dst) << ":" << dport;
}

// ---------------------------------------------------------------------------------------------
// Timeouts: exact boundaries, never early, at most ~1 s late.
// ---------------------------------------------------------------------------------------------

TEST(NatSessionTimeout, UdpExpiresAt120Seconds) {
    NatHarness h;
    const uint32_t created = 1000;
    const uint32_t a = inside_ip(1);
    Mapped m;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5000, kServer, 53, created, &m));
    EXPECT_EQ(h.counters().udp_sessions, 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(m.addr), PortSpace::Udp), 1u);
    EXPECT_EQ(h.worker().hosts().size(), 1u);

    EXPECT_EQ(h.worker().expire(created + 60000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(created + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.counters().sessions_freed, 0u);

    EXPECT_EQ(h.worker().expire(created + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.counters().sessions_expired, 1u);
    EXPECT_EQ(h.counters().sessions_freed, 1u);
    EXPECT_EQ(h.counters().udp_sessions, 0u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(m.addr), PortSpace::Udp), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
    // The reply now finds nothing.
    EXPECT_TRUE(dropped(udp_in(h, kServer, 53, m, created + 121200), DropReason::NoSession));
}

TEST(NatSessionTimeout, IcmpExpiresAt60Seconds) {
    NatHarness h;
    const uint32_t created = 1000;
    const uint32_t a = inside_ip(1);
    Mapped m;
    ASSERT_TRUE(forwarded_out(ping_out(h, a, 0x4242, kServer, created), &m));
    EXPECT_EQ(h.counters().icmp_sessions, 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(m.addr), PortSpace::Icmp), 1u);
    EXPECT_TRUE(forwarded_in(pong_in(h, kServer, m, created), a, 0x4242));

    EXPECT_EQ(h.worker().expire(created + 59000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().expire(created + 61100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.counters().icmp_sessions, 0u);
    EXPECT_EQ(h.counters().sessions_freed, 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(m.addr), PortSpace::Icmp), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
    EXPECT_TRUE(dropped(pong_in(h, kServer, m, created + 61200), DropReason::NoSession));
}

TEST(NatSessionTimeout, EstablishedTcpExpiresThenQuarantineThenFreed) {
    NatHarness h;
    const uint32_t t0 = 1000;
    Tcp c{h, inside_ip(1), 40000};
    ASSERT_NO_FATAL_FAILURE(c.open(t0));
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 1u);

    EXPECT_EQ(h.worker().expire(t0 + 7439000, kBigBudget), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 1u);

    const uint32_t t1 = t0 + 7441100;
    EXPECT_EQ(h.worker().expire(t1, kBigBudget), 1u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), 1u);
    EXPECT_EQ(h.counters().sessions_expired, 1u);
    EXPECT_EQ(h.counters().sessions_freed, 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(c.m.addr), PortSpace::Tcp), 1u);
    EXPECT_EQ(h.worker().hosts().size(), 1u);

    // Quarantine: 120 s.
    EXPECT_EQ(h.worker().expire(t1 + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().expire(t1 + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.counters().sessions_freed, 1u);
    EXPECT_EQ(tcp_gauge_total(h), 0u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(c.m.addr), PortSpace::Tcp), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
}

TEST(NatSessionTimeout, UnansweredSynUsesSynSentTimeout) {
    NatHarness h;
    const uint32_t t0 = 1000;
    Tcp c{h, inside_ip(1), 40000};
    ASSERT_NO_FATAL_FAILURE(c.syn(t0));
    EXPECT_EQ(h.worker().expire(t0 + 119000, kBigBudget), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 1u);
    // An unanswered handshake is freed at its timeout (tcp_syn_sent, 120 s), without a
    // quarantine: the remote holds nothing for the pair, and a SYN flood must not pin ports.
    EXPECT_EQ(h.worker().expire(t0 + 121100, kBigBudget), 1u);
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), 0u);
    EXPECT_EQ(h.counters().sessions_expired, 1u);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1}));
}

TEST(NatSessionTimeout, AnsweredHandshakeIsAlsoFreedAtItsTimeout) {
    NatHarness h;
    const uint32_t t0 = 1000;
    Tcp c{h, inside_ip(1), 40000};
    ASSERT_NO_FATAL_FAILURE(c.syn(t0));
    ASSERT_NO_FATAL_FAILURE(c.synack(t0 + 10));  // the inside host never sends its ACK
    EXPECT_EQ(tcp_gauge(h, TcpState::SynRecv), 1u);
    // tcp_syn_recv: 60 s (a listener gives up on its SYN/ACK retries within about a minute).
    EXPECT_EQ(h.worker().expire(t0 + 10 + 59000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 10 + 61100, kBigBudget), 1u);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1}));
}

TEST(NatSessionTimeout, ClosingTcpUsesTransitoryTimeout) {
    NatHarness h;
    const uint32_t t0 = 1000;
    Tcp c{h, inside_ip(1), 40000};
    ASSERT_NO_FATAL_FAILURE(c.open(t0));
    ASSERT_NO_FATAL_FAILURE(c.fin_out(t0 + 5000));
    EXPECT_EQ(tcp_gauge(h, TcpState::FinWait), 1u);
    EXPECT_EQ(h.worker().expire(t0 + 5000 + 239000, kBigBudget), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::FinWait), 1u);
    EXPECT_EQ(h.worker().expire(t0 + 5000 + 241100, kBigBudget), 1u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), 1u);
}

TEST(NatSessionTimeout, PerPoolTimeouts) {
    PoolSpec fast;
    fast.name = "fast";
    fast.addresses = "198.19.0.20";
    fast.timeouts.udp = 10;
    fast.timeouts.icmp = 5;
    fast.timeouts.tcp_established = 30;
    fast.timeouts.tcp_transitory = 25;
    fast.timeouts.tcp_syn_sent = 20;
    fast.timeouts.quarantine = 7;
    fast.timeouts.linger = 1;
    const uint32_t fast_pub = ip("198.19.0.20");
    NatHarness h({lab_pool(), fast}, 1, 0, 4096,
                 {{"198.18.0.0/24", "lab"}, {"198.18.0.128/25", "fast"}});
    const uint32_t t0 = 1000;
    const uint32_t slow_host = inside_ip(1), fast_host = inside_ip(200);

    Mapped slow_udp, fast_udp, fast_icmp;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, slow_host, 5000, kServer, 53, t0, &slow_udp));
    ASSERT_NO_FATAL_FAILURE(open_udp(h, fast_host, 5000, kServer, 53, t0, &fast_udp));
    EXPECT_EQ(fast_udp.addr, fast_pub);
    EXPECT_NE(slow_udp.addr, fast_pub);
    ASSERT_TRUE(forwarded_out(ping_out(h, fast_host, 7, kServer, t0), &fast_icmp));
    Tcp est{h, fast_host, 40000};
    ASSERT_NO_FATAL_FAILURE(est.open(t0));
    Tcp emb{h, fast_host, 40001};
    ASSERT_NO_FATAL_FAILURE(emb.syn(t0));
    Tcp lin{h, fast_host, 40002};
    ASSERT_NO_FATAL_FAILURE(lin.open(t0));
    ASSERT_NO_FATAL_FAILURE(lin.close(t0));  // inside first: linger 1 s
    EXPECT_EQ(h.worker().sessions().size(), 6u);

    EXPECT_EQ(h.worker().expire(t0 + 500, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 2100, kBigBudget), 1u);  // linger 1 s
    EXPECT_EQ(tcp_gauge(h, TcpState::TimeWait), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 4000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 6100, kBigBudget), 1u);  // icmp 5 s
    EXPECT_EQ(h.counters().icmp_sessions, 0u);
    EXPECT_EQ(h.worker().expire(t0 + 9000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 11100, kBigBudget), 1u);  // udp 10 s (the fast one)
    EXPECT_EQ(h.counters().udp_sessions, 1u);
    EXPECT_TRUE(dropped(udp_in(h, kServer, 53, fast_udp, t0 + 11200), DropReason::NoSession));
    EXPECT_TRUE(forwarded_in(udp_in(h, kServer, 53, slow_udp, t0 + 11200), slow_host, 5000));
    EXPECT_EQ(h.worker().expire(t0 + 19000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 21100, kBigBudget), 1u);  // tcp_syn_sent 20 s: freed
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 1u);
    EXPECT_EQ(h.worker().expire(t0 + 29000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 31100, kBigBudget), 1u);  // established 30 s
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), 1u);
    EXPECT_EQ(h.worker().expire(t0 + 31100 + 6000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(t0 + 31100 + 8100, kBigBudget), 1u);  // quarantine 7 s
    EXPECT_EQ(tcp_gauge_total(h), 0u);
    // Only the default pool's UDP session (120 s) is left.
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(fast_pub), PortSpace::Tcp), 0u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(fast_pub), PortSpace::Udp), 0u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(fast_pub), PortSpace::Icmp), 0u);
    // (its reply at 11.2 s may have refreshed it)
    EXPECT_EQ(h.worker().expire(t0 + 11200 + 121100, kBigBudget), 1u);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1, fast_pub}));
}

TEST(NatSessionTimeout, OutboundTrafficRefreshesTimer) {
    NatHarness h;
    const uint32_t a = inside_ip(1);
    Mapped m;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5000, kServer, 53, 1000, &m));
    // A packet at 100 s: the session lives until ~220 s.
    Mapped again;
    ASSERT_TRUE(forwarded_out(udp_out(h, a, 5000, kServer, 53, 101000), &again));
    EXPECT_EQ(again.addr, m.addr);
    EXPECT_EQ(again.port, m.port);
    EXPECT_EQ(h.worker().expire(1000 + 121100, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(101000 + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_TRUE(forwarded_in(udp_in(h, kServer, 53, m, 101000 + 119000), a, 5000));
    // (The reply itself may or may not refresh; give it its own 120 s.)
    EXPECT_EQ(h.worker().expire(101000 + 119000 + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
}

TEST(NatSessionTimeout, OutboundTrafficRefreshesTimerExactlyOnce) {
    NatHarness h;
    const uint32_t a = inside_ip(1);
    Mapped m;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5000, kServer, 53, 1000, &m));
    ASSERT_TRUE(forwarded_out(udp_out(h, a, 5000, kServer, 53, 101000)));
    EXPECT_EQ(h.worker().expire(101000 + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(101000 + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
}

TEST(NatSessionTimeout, ExpireRespectsBudget) {
    NatHarness h;
    const uint32_t a = inside_ip(1);
    for (uint16_t i = 0; i < 10; ++i)
        ASSERT_NO_FATAL_FAILURE(
            open_udp(h, a, static_cast<uint16_t>(5000 + i), kServer, 53, 1000, nullptr));
    EXPECT_EQ(h.worker().sessions().size(), 10u);
    EXPECT_EQ(h.worker().expire(200000, 3), 3u);
    EXPECT_EQ(h.worker().sessions().size(), 7u);
    EXPECT_EQ(h.counters().sessions_freed, 3u);
    EXPECT_EQ(h.worker().expire(200000, 0), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 7u);
    EXPECT_EQ(h.worker().expire(200000, 4), 4u);
    EXPECT_EQ(h.worker().sessions().size(), 3u);
    EXPECT_EQ(h.worker().expire(200000, 100), 3u);
    EXPECT_EQ(h.worker().expire(200000, 100), 0u);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1}));
}

// ---------------------------------------------------------------------------------------------
// Table full: evict the oldest lingering, then embryonic, then UDP session; else drop.
// ---------------------------------------------------------------------------------------------

constexpr uint32_t kSmallTable = 16;

TEST(NatSessionTableFull, EstablishedSessionsAreNeverEvicted) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    const uint32_t a = inside_ip(1);
    std::vector<Tcp> conns;
    conns.reserve(kSmallTable);
    for (uint16_t i = 0; i < kSmallTable; ++i) {
        conns.push_back(Tcp{h, a, static_cast<uint16_t>(40000 + i)});
        ASSERT_NO_FATAL_FAILURE(conns.back().open(1000 + i * 10u));
    }
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), kSmallTable);
    EXPECT_EQ(h.counters().insert_failed, 0u);

    EXPECT_TRUE(dropped(tcp_out(h, a, 41000, kServer, 80, TCP_SYN, 1, 0, 5000),
                        DropReason::SessionTableFull));
    EXPECT_TRUE(
        dropped(udp_out(h, inside_ip(2), 5000, kServer, 53, 5000), DropReason::SessionTableFull));
    EXPECT_TRUE(dropped(ping_out(h, inside_ip(3), 9, kServer, 5000), DropReason::SessionTableFull));
    EXPECT_EQ(h.drops(DropReason::SessionTableFull), 3u);
    EXPECT_EQ(h.counters().drop_total(), 3u);
    EXPECT_EQ(h.counters().sessions_evicted, 0u);
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);
    EXPECT_EQ(h.worker().hosts().size(), 1u);  // the refused hosts left nothing behind
    EXPECT_TRUE(gauges_consistent(h));
    // Every session still works.
    for (Tcp& c : conns) ASSERT_NO_FATAL_FAILURE(c.data_in(6000));
}

TEST(NatSessionTableFull, OldestEmbryonicIsEvicted) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    const uint32_t a = inside_ip(1);
    std::vector<Tcp> conns;
    for (uint16_t i = 0; i < kSmallTable; ++i) {
        conns.push_back(Tcp{h, a, static_cast<uint16_t>(40000 + i)});
        ASSERT_NO_FATAL_FAILURE(conns.back().syn(1000 + i * 1500u));
    }
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), kSmallTable);
    uint32_t now = 30000;
    // Two new connections: each evicts the oldest embryonic session.
    Tcp n1{h, inside_ip(2), 41000}, n2{h, inside_ip(2), 41001};
    ASSERT_NO_FATAL_FAILURE(n1.syn(now));
    EXPECT_EQ(h.counters().sessions_evicted, 1u);
    ASSERT_NO_FATAL_FAILURE(n2.syn(now));
    EXPECT_EQ(h.counters().sessions_evicted, 2u);
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);
    EXPECT_EQ(h.drops(DropReason::SessionTableFull), 0u);

    now += 100;
    for (std::size_t i = 0; i < conns.size(); ++i) {
        const NatOutcome r =
            tcp_in(h, kServer, 80, conns[i].m, TCP_SYN | TCP_ACK, 499999, 1000, now);
        if (i < 2) {
            EXPECT_TRUE(dropped(r, DropReason::NoSession)) << "session " << i;
        } else {
            EXPECT_TRUE(forwarded_in(r, a, conns[i].iport)) << "session " << i;
        }
    }
    ASSERT_NO_FATAL_FAILURE(n1.synack(now));
    ASSERT_NO_FATAL_FAILURE(n2.synack(now));
    EXPECT_TRUE(gauges_consistent(h));
}

TEST(NatSessionTableFull, OldestUdpIsEvictedWhenNoEmbryonic) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    const uint32_t a = inside_ip(1), b = inside_ip(2);
    std::vector<Tcp> conns;
    for (uint16_t i = 0; i < 12; ++i) {
        conns.push_back(Tcp{h, a, static_cast<uint16_t>(40000 + i)});
        ASSERT_NO_FATAL_FAILURE(conns.back().open(1000));
    }
    Mapped udp[4];
    for (uint16_t i = 0; i < 4; ++i)
        ASSERT_NO_FATAL_FAILURE(open_udp(h, b, static_cast<uint16_t>(5000 + i), kServer, 53,
                                         2000 + i * 2000u, &udp[i]));
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);

    Tcp n{h, inside_ip(3), 42000};
    ASSERT_NO_FATAL_FAILURE(n.syn(10000));
    EXPECT_EQ(h.counters().sessions_evicted, 1u);
    EXPECT_EQ(h.counters().udp_sessions, 3u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 12u);
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 1u);
    EXPECT_TRUE(dropped(udp_in(h, kServer, 53, udp[0], 10100), DropReason::NoSession));
    for (uint16_t i = 1; i < 4; ++i)
        EXPECT_TRUE(forwarded_in(udp_in(h, kServer, 53, udp[i], 10100), b,
                                 static_cast<uint16_t>(5000 + i)));
    for (Tcp& c : conns) ASSERT_NO_FATAL_FAILURE(c.data_in(10100));
    EXPECT_TRUE(gauges_consistent(h));
}

TEST(NatSessionTableFull, EvictionOrderLingerThenEmbryonicThenUdp) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    const uint32_t a = inside_ip(1), b = inside_ip(2), c4 = inside_ip(4);
    for (uint16_t i = 0; i < 13; ++i) {
        Tcp t{h, a, static_cast<uint16_t>(40000 + i)};
        ASSERT_NO_FATAL_FAILURE(t.open(1000));
    }
    // Oldest first: a UDP session, an embryonic one, then one closed by RST (linger).
    Mapped u0;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, b, 5000, kServer, 53, 2000, &u0));
    Tcp e0{h, b, 43000};
    ASSERT_NO_FATAL_FAILURE(e0.syn(3000));
    Tcp l0{h, b, 44000};
    ASSERT_NO_FATAL_FAILURE(l0.open(4000));
    ASSERT_NO_FATAL_FAILURE(l0.rst_out(4000));
    EXPECT_EQ(tcp_gauge(h, TcpState::Closed), 1u);
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);

    Mapped u[3];
    ASSERT_NO_FATAL_FAILURE(open_udp(h, c4, 6001, kServer, 53, 5000, &u[0]));
    EXPECT_EQ(h.counters().sessions_evicted, 1u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Closed), 0u) << "the lingering session goes first";
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 1u);
    EXPECT_EQ(h.counters().udp_sessions, 2u);

    ASSERT_NO_FATAL_FAILURE(open_udp(h, c4, 6002, kServer, 53, 5000, &u[1]));
    EXPECT_EQ(h.counters().sessions_evicted, 2u);
    EXPECT_EQ(tcp_gauge(h, TcpState::SynSent), 0u) << "then the embryonic one";
    EXPECT_EQ(h.counters().udp_sessions, 3u);
    EXPECT_TRUE(dropped(tcp_in(h, kServer, 80, e0.m, TCP_SYN | TCP_ACK, 1, 1000, 5000),
                        DropReason::NoSession));

    ASSERT_NO_FATAL_FAILURE(open_udp(h, c4, 6003, kServer, 53, 5000, &u[2]));
    EXPECT_EQ(h.counters().sessions_evicted, 3u);
    EXPECT_EQ(h.counters().udp_sessions, 3u);
    EXPECT_TRUE(dropped(udp_in(h, kServer, 53, u0, 5100), DropReason::NoSession))
        << "then the oldest UDP";
    for (uint16_t i = 0; i < 3; ++i)
        EXPECT_TRUE(
            forwarded_in(udp_in(h, kServer, 53, u[i], 5100), c4, static_cast<uint16_t>(6001 + i)));
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 13u);
    EXPECT_EQ(h.drops(DropReason::SessionTableFull), 0u);
    EXPECT_TRUE(gauges_consistent(h));
}

// Sessions holding a pair for the quarantine (remote closed first, or expired) are not
// evictable: their pair must not be reused early.
TEST(NatSessionTableFull, QuarantinedSessionsAreNotEvicted) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    const uint32_t a = inside_ip(1);
    for (uint16_t i = 0; i < kSmallTable - 1; ++i) {
        Tcp t{h, a, static_cast<uint16_t>(40000 + i)};
        ASSERT_NO_FATAL_FAILURE(t.open(1000));
    }
    Tcp q{h, a, 41000};
    ASSERT_NO_FATAL_FAILURE(q.open(1000));
    ASSERT_NO_FATAL_FAILURE(q.fin_in(2000));  // remote closes first
    ASSERT_NO_FATAL_FAILURE(q.ack(2000));
    ASSERT_NO_FATAL_FAILURE(q.fin_out(2000));
    ASSERT_NO_FATAL_FAILURE(q.ack_in(2000));
    EXPECT_EQ(tcp_gauge(h, TcpState::TimeWait), 1u);
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(2), 42000, kServer, 80, TCP_SYN, 1, 0, 3000),
                        DropReason::SessionTableFull));
    EXPECT_TRUE(
        dropped(udp_out(h, inside_ip(2), 5000, kServer, 53, 3000), DropReason::SessionTableFull));
    EXPECT_EQ(h.counters().sessions_evicted, 0u);

    // All idle: the established ones expire into quarantine, the TIME_WAIT one is freed.
    const uint32_t t1 = 1000 + 7441100;
    h.worker().expire(t1, kBigBudget);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), kSmallTable - 1);
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable - 1);
    // An ICMP session (not evictable either) takes the last slot; then nothing is evictable.
    ASSERT_TRUE(forwarded_out(ping_out(h, inside_ip(2), 7, kServer, t1 + 10)));
    EXPECT_EQ(h.worker().sessions().size(), kSmallTable);
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(3), 42001, kServer, 80, TCP_SYN, 1, 0, t1 + 20),
                        DropReason::SessionTableFull));
    EXPECT_TRUE(dropped(udp_out(h, inside_ip(3), 5000, kServer, 53, t1 + 20),
                        DropReason::SessionTableFull));
    EXPECT_EQ(h.counters().sessions_evicted, 0u);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), kSmallTable - 1);
    EXPECT_TRUE(gauges_consistent(h));
}

// Random churn on a tiny table: every verdict is a forward or an expected drop, and the
// bookkeeping (gauges, hosts, ports) always matches the table.
TEST(NatSessionTableFull, ChurnKeepsBookkeepingConsistent) {
    NatHarness h({lab_pool()}, 1, 0, kSmallTable);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    auto next = [&](uint32_t n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return static_cast<uint32_t>(rng % n);
    };
    uint32_t now = 1000;
    struct Udp {
        Mapped m;
        uint32_t remote;
        uint16_t rport;
    };
    std::vector<Udp> recent;  // UDP sessions opened so far (some since evicted or expired)
    for (int i = 0; i < 3000; ++i) {
        now += 1 + next(400);
        const uint32_t src = inside_ip(1 + static_cast<int>(next(20)));
        const uint32_t dst = kServer + next(4);
        const uint16_t sport = static_cast<uint16_t>(30000 + next(50));
        NatOutcome o;
        switch (next(5)) {
            case 0:
            case 1: {
                const uint16_t dport = static_cast<uint16_t>(1000 + next(3));
                o = udp_out(h, src, sport, dst, dport, now);
                Mapped m;
                if (o.result.verdict == Verdict::Forward && forwarded_out(o, &m))
                    recent.push_back({m, dst, dport});
                break;
            }
            case 2: o = tcp_out(h, src, sport, dst, 80, TCP_SYN, 1, 0, now); break;
            case 3: o = ping_out(h, src, sport, dst, now); break;
            default:
                if (!recent.empty()) {
                    const Udp& u = recent[next(static_cast<uint32_t>(recent.size()))];
                    o = udp_in(h, u.remote, u.rport, u.m, now);
                    ASSERT_TRUE(o.result.verdict == Verdict::Forward ||
                                (o.result.verdict == Verdict::Drop &&
                                 o.result.reason == DropReason::NoSession))
                        << describe(o.result);
                    continue;
                }
                o = udp_out(h, src, sport, dst, 1000, now);
                break;
        }
        ASSERT_TRUE(
            o.result.verdict == Verdict::Forward ||
            (o.result.verdict == Verdict::Drop && o.result.reason == DropReason::SessionTableFull))
            << "step " << i << ": " << describe(o.result);
        if (o.result.verdict == Verdict::Forward) {
            ASSERT_TRUE(verify_checksums(o.frame).ok) << verify_checksums(o.frame).detail;
        }
        if (i % 97 == 0) h.worker().expire(now, 4);
        ASSERT_LE(h.worker().sessions().size(), kSmallTable);
        ASSERT_TRUE(gauges_consistent(h)) << "step " << i;
    }
    EXPECT_GT(h.counters().sessions_evicted, 0u);
    // Everything eventually goes.
    now += 300000;
    h.worker().expire(now, kBigBudget);
    now += 130000;
    h.worker().expire(now, kBigBudget);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1}));
}

// ---------------------------------------------------------------------------------------------
// Per-host session cap.
// ---------------------------------------------------------------------------------------------

TEST(NatSessionHostLimit, SixthSessionOfHostIsRefused) {
    PoolSpec p = lab_pool();
    p.max_sessions_per_host = 5;
    NatHarness h({p});
    const uint32_t a = inside_ip(1), b = inside_ip(2);
    Mapped first, second;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5000, kServer, 53, 1000, &first));
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5001, kServer, 53, 60000, &second));
    for (uint16_t i = 2; i < 5; ++i)
        ASSERT_NO_FATAL_FAILURE(
            open_udp(h, a, static_cast<uint16_t>(5000 + i), kServer, 53, 60000, nullptr));

    EXPECT_TRUE(dropped(udp_out(h, a, 5005, kServer, 53, 60000), DropReason::HostSessionLimit));
    EXPECT_TRUE(dropped(tcp_out(h, a, 40000, kServer, 80, TCP_SYN, 1, 0, 60000),
                        DropReason::HostSessionLimit));
    EXPECT_TRUE(dropped(ping_out(h, a, 77, kServer, 60000), DropReason::HostSessionLimit));
    EXPECT_EQ(h.drops(DropReason::HostSessionLimit), 3u);
    EXPECT_EQ(h.worker().sessions().size(), 5u);
    // Its existing sessions still pass, both ways.
    EXPECT_TRUE(forwarded_out(udp_out(h, a, 5001, kServer, 53, 60000)));
    EXPECT_TRUE(forwarded_in(udp_in(h, kServer, 53, second, 60000), a, 5001));

    // Another host is not affected.
    for (uint16_t i = 0; i < 5; ++i)
        ASSERT_NO_FATAL_FAILURE(
            open_udp(h, b, static_cast<uint16_t>(5000 + i), kServer, 53, 60000, nullptr));
    EXPECT_TRUE(dropped(udp_out(h, b, 5005, kServer, 53, 60000), DropReason::HostSessionLimit));
    EXPECT_EQ(h.drops(DropReason::HostSessionLimit), 4u);

    // When one of A's sessions is gone, A may open one more (and no more).
    EXPECT_EQ(h.worker().expire(1000 + 121100, kBigBudget), 1u);
    EXPECT_TRUE(forwarded_out(udp_out(h, a, 5005, kServer, 53, 122200)));
    EXPECT_TRUE(dropped(udp_out(h, a, 5006, kServer, 53, 122200), DropReason::HostSessionLimit));
    EXPECT_EQ(h.worker().sessions().size(), 10u);
}

// ---------------------------------------------------------------------------------------------
// Paired pooling (RFC 4787 REQ-2): one public address per inside host while it has sessions.
// ---------------------------------------------------------------------------------------------

TEST(NatSessionPairedPooling, HostKeepsItsAddressWhileItHasSessions) {
    NatHarness h;
    uint32_t now = 1000;
    std::set<uint32_t> used;
    for (int hn = 1; hn <= 8; ++hn) {
        const uint32_t src = inside_ip(hn);
        std::set<uint32_t> addrs;
        for (int j = 0; j < 10; ++j) {
            Mapped m;
            ASSERT_NO_FATAL_FAILURE(open_udp(h, src, static_cast<uint16_t>(5000 + j),
                                             kServer + static_cast<uint32_t>(j),
                                             static_cast<uint16_t>(53 + j), now, &m));
            addrs.insert(m.addr);
        }
        for (int j = 0; j < 5; ++j) {
            Tcp t{h, src, static_cast<uint16_t>(40000 + j), kServer + static_cast<uint32_t>(j)};
            ASSERT_NO_FATAL_FAILURE(t.syn(now));
            addrs.insert(t.m.addr);
        }
        for (int j = 0; j < 3; ++j) {
            Mapped m;
            ASSERT_TRUE(forwarded_out(ping_out(h, src, static_cast<uint16_t>(100 + j),
                                               kServer + static_cast<uint32_t>(j), now),
                                      &m));
            addrs.insert(m.addr);
        }
        EXPECT_EQ(addrs.size(), 1u) << "host " << host(hn) << " got several public addresses";
        EXPECT_TRUE(*addrs.begin() == kPub0 || *addrs.begin() == kPub1);
        used.insert(*addrs.begin());
    }
    EXPECT_EQ(h.worker().hosts().size(), 8u);
}

// One port per address: host A is paired with address P. When P's only port toward remote R is
// taken, A (still holding a session on P) gets no port toward R rather than the other address;
// once all of A's sessions are gone, A is free to use the other address.
TEST(NatSessionPairedPooling, PairedAddressIsKeptUnderPressureAndDroppedWhenIdle) {
    PoolSpec p = lab_pool();
    p.ports = "5000-5000";
    NatHarness h({p});
    const uint32_t a = inside_ip(1);
    const uint32_t r = ip("198.19.0.200");
    uint32_t now = 1000;

    Mapped ma;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 6000, kServer, 53, now, &ma));
    const uint32_t pa = ma.addr;
    ASSERT_EQ(ma.port, 5000);

    // Find another host B that lands on the same address (each probe to its own remote).
    uint32_t b = 0;
    for (int hn = 2; hn < 60 && b == 0; ++hn) {
        Mapped mb;
        ASSERT_NO_FATAL_FAILURE(open_udp(
            h, inside_ip(hn), 6000, ip("198.19.1.0") + static_cast<uint32_t>(hn), 53, now, &mb));
        if (mb.addr == pa) b = inside_ip(hn);
    }
    ASSERT_NE(b, 0u) << "no inside host hashes to " << ip_str(pa);

    // B takes (P, 5000, R).
    Mapped mbr;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, b, 6001, r, 53, now, &mbr));
    EXPECT_EQ(mbr.addr, pa);
    // A toward R: its address has no free pair; it must not move to the other address.
    const NatOutcome o = udp_out(h, a, 6001, r, 53, now);
    if (o.result.verdict == Verdict::Forward) {
        const auto d = decode(o.frame);
        ASSERT_TRUE(d);
        ADD_FAILURE() << "host A with live sessions on " << ip_str(pa) << " was given "
                      << ip_str(d->src) << ":" << d->sport;
    } else {
        EXPECT_TRUE(dropped(o, DropReason::PortsExhausted));
    }

    // Keep B's session to R alive; let A's (and the probes') expire.
    now = 101000;
    ASSERT_TRUE(forwarded_out(udp_out(h, b, 6001, r, 53, now)));
    now = 1000 + 121100;
    h.worker().expire(now, kBigBudget);
    EXPECT_TRUE(dropped(udp_in(h, kServer, 53, ma, now), DropReason::NoSession));
    EXPECT_TRUE(forwarded_in(udp_in(h, r, 53, mbr, now), b, 6001));

    // A has no session left: toward R it now gets the other address.
    Mapped ma2;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 6001, r, 53, now, &ma2));
    EXPECT_NE(ma2.addr, pa);
    EXPECT_TRUE(ma2.addr == kPub0 || ma2.addr == kPub1);
    EXPECT_EQ(ma2.port, 5000);
    // And keeps that one while it has sessions.
    Mapped ma3;
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 6002, kServer, 53, now, &ma3));
    EXPECT_EQ(ma3.addr, ma2.addr);
}

// ---------------------------------------------------------------------------------------------
// Port exhaustion: one address, 10 ports.
// ---------------------------------------------------------------------------------------------

TEST(NatSessionExhaustion, TenPortsTenSessionsToOneRemote) {
    PoolSpec p = lab_pool();
    p.addresses = "198.19.0.10";
    p.ports = "3000-3009";
    NatHarness h({p});
    uint32_t now = 1000;

    std::vector<Tcp> conns;
    std::set<uint16_t> ports;
    for (int hn = 1; hn <= 10; ++hn) {
        conns.push_back(Tcp{h, inside_ip(hn), 40000});
        ASSERT_NO_FATAL_FAILURE(conns.back().syn(now));
        EXPECT_EQ(conns.back().m.addr, kPub0);
        EXPECT_GE(conns.back().m.port, 3000);
        EXPECT_LE(conns.back().m.port, 3009);
        ports.insert(conns.back().m.port);
    }
    EXPECT_EQ(ports.size(), 10u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(kPub0), PortSpace::Tcp), 10u);

    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(11), 40000, kServer, 80, TCP_SYN, 1, 0, now),
                        DropReason::PortsExhausted));
    EXPECT_EQ(h.drops(DropReason::PortsExhausted), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 10u);
    EXPECT_EQ(h.worker().hosts().size(), 10u);

    // The existing sessions translate both ways.
    for (Tcp& c : conns) {
        ASSERT_NO_FATAL_FAILURE(c.synack(now));
        ASSERT_NO_FATAL_FAILURE(c.ack(now));
        ASSERT_NO_FATAL_FAILURE(c.data_in(now));
    }
    EXPECT_EQ(tcp_gauge(h, TcpState::Established), 10u);

    // Endpoint-dependent: toward another remote the same ports are free again.
    Tcp other{h, inside_ip(11), 40000, ip("198.19.0.101")};
    ASSERT_NO_FATAL_FAILURE(other.open(now));
    EXPECT_EQ(other.m.addr, kPub0);
    EXPECT_TRUE(ports.count(other.m.port));

    // Closing one (inside RST: linger 2 s) frees its pair for a new host.
    ASSERT_NO_FATAL_FAILURE(conns[3].rst_out(now));
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(12), 40000, kServer, 80, TCP_SYN, 1, 0, now + 500),
                        DropReason::PortsExhausted));
    now += 3500;
    h.worker().expire(now, kBigBudget);
    Tcp late{h, inside_ip(12), 40000};
    ASSERT_NO_FATAL_FAILURE(late.syn(now));
    EXPECT_EQ(late.m.port, conns[3].m.port);
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(13), 40000, kServer, 80, TCP_SYN, 1, 0, now),
                        DropReason::PortsExhausted));

    // Everything expires: the opened pairs are quarantined first, then free; the unanswered
    // handshake (late) is freed at once, so its pair is the only one to take meanwhile.
    const uint32_t t1 = now + 7441100;
    h.worker().expire(t1, kBigBudget);
    EXPECT_EQ(tcp_gauge(h, TcpState::Expired), h.worker().sessions().size());
    EXPECT_EQ(h.worker().sessions().size(), 10u);
    Tcp again{h, inside_ip(13), 40000};
    ASSERT_NO_FATAL_FAILURE(again.syn(t1 + 1000));
    EXPECT_EQ(again.m.port, conns[3].m.port);
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(14), 40000, kServer, 80, TCP_SYN, 1, 0, t1 + 1000),
                        DropReason::PortsExhausted));
    // again's SYN retransmitted (its handshake lives tcp_syn_sent, 120 s, from its last SYN).
    EXPECT_TRUE(forwarded_out(tcp_out(h, inside_ip(13), 40000, kServer, 80, TCP_SYN, 1, 0, t1 + 60000)));
    h.worker().expire(t1 + 119000, kBigBudget);
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(14), 40000, kServer, 80, TCP_SYN, 1, 0, t1 + 119000),
                        DropReason::PortsExhausted));
    h.worker().expire(t1 + 121100, kBigBudget);
    EXPECT_EQ(h.worker().sessions().size(), 1u);  // again, still in its handshake
    for (int hn = 14; hn <= 22; ++hn) {
        Tcp t{h, inside_ip(hn), 40000};
        ASSERT_NO_FATAL_FAILURE(t.syn(t1 + 121200));
    }
    EXPECT_TRUE(dropped(tcp_out(h, inside_ip(23), 40000, kServer, 80, TCP_SYN, 1, 0, t1 + 121200),
                        DropReason::PortsExhausted));
    EXPECT_EQ(h.drops(DropReason::PortsExhausted), 6u);
}

TEST(NatSessionExhaustion, UdpPortsToOneRemoteAndExpiry) {
    PoolSpec p = lab_pool();
    p.addresses = "198.19.0.10";
    p.ports = "3000-3009";
    NatHarness h({p});
    std::vector<Mapped> maps(10);
    for (int hn = 1; hn <= 10; ++hn)
        ASSERT_NO_FATAL_FAILURE(open_udp(h, inside_ip(hn), 5353, kServer, 53, 1000, &maps[hn - 1]));
    EXPECT_TRUE(
        dropped(udp_out(h, inside_ip(11), 5353, kServer, 53, 1000), DropReason::PortsExhausted));
    for (int hn = 1; hn <= 10; ++hn)
        EXPECT_TRUE(forwarded_in(udp_in(h, kServer, 53, maps[hn - 1], 2000), inside_ip(hn), 5353));
    // UDP has no quarantine: after 120 s all are free.
    h.worker().expire(2000 + 121100, kBigBudget);
    EXPECT_TRUE(all_clear(h, {kPub0}));
    ASSERT_NO_FATAL_FAILURE(open_udp(h, inside_ip(11), 5353, kServer, 53, 2000 + 121200, nullptr));
}

// ---------------------------------------------------------------------------------------------
// Gauges.
// ---------------------------------------------------------------------------------------------

TEST(NatSessionGauges, FollowStatesAndReturnToZero) {
    NatHarness h;
    const uint32_t t0 = 1000;
    const uint32_t a = inside_ip(1), b = inside_ip(2);
    Tcp syn_sent{h, a, 40001}, syn_recv{h, a, 40002}, est{h, a, 40003}, fin_wait{h, a, 40004},
        time_wait{h, b, 40005}, closed{h, b, 40006};
    ASSERT_NO_FATAL_FAILURE(syn_sent.syn(t0));
    ASSERT_NO_FATAL_FAILURE(syn_recv.syn(t0));
    ASSERT_NO_FATAL_FAILURE(syn_recv.synack(t0));
    ASSERT_NO_FATAL_FAILURE(est.open(t0));
    ASSERT_NO_FATAL_FAILURE(fin_wait.open(t0));
    ASSERT_NO_FATAL_FAILURE(fin_wait.fin_out(t0));
    ASSERT_NO_FATAL_FAILURE(time_wait.open(t0));
    ASSERT_NO_FATAL_FAILURE(time_wait.close(t0));
    ASSERT_NO_FATAL_FAILURE(closed.open(t0));
    ASSERT_NO_FATAL_FAILURE(closed.rst_out(t0));
    ASSERT_NO_FATAL_FAILURE(open_udp(h, a, 5000, kServer, 53, t0, nullptr));
    ASSERT_NO_FATAL_FAILURE(open_udp(h, b, 5000, kServer, 53, t0, nullptr));
    for (uint16_t id = 1; id <= 3; ++id)
        ASSERT_TRUE(forwarded_out(ping_out(h, b, id, kServer, t0)));

    const auto& g = h.counters().tcp_state;
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::SynSent)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::SynRecv)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Established)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::FinWait)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::TimeWait)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Closed)], 1u);
    EXPECT_EQ(tcp_gauge_total(h), 6u);
    EXPECT_EQ(h.counters().udp_sessions, 2u);
    EXPECT_EQ(h.counters().icmp_sessions, 3u);
    EXPECT_EQ(h.worker().sessions().size(), 11u);
    EXPECT_TRUE(gauges_consistent(h));

    h.worker().expire(t0 + 3500, kBigBudget);  // linger: TIME_WAIT (inside first) and CLOSED
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::TimeWait)], 0u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Closed)], 0u);
    EXPECT_EQ(h.worker().sessions().size(), 9u);
    h.worker().expire(t0 + 61100, kBigBudget);
    EXPECT_EQ(h.counters().icmp_sessions, 0u);
    h.worker().expire(t0 + 121100, kBigBudget);
    EXPECT_EQ(h.counters().udp_sessions, 0u);
    // The handshakes are gone too (tcp_syn_recv 60 s, tcp_syn_sent 120 s): ESTABLISHED and
    // FIN_WAIT are left.
    EXPECT_EQ(h.worker().sessions().size(), 2u);
    h.worker().expire(t0 + 241100, kBigBudget);  // handshakes: freed; closing -> Expired
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::SynSent)], 0u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::SynRecv)], 0u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::FinWait)], 0u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Expired)], 1u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Established)], 1u);
    EXPECT_TRUE(gauges_consistent(h));
    h.worker().expire(t0 + 7441100, kBigBudget);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Established)], 0u);
    EXPECT_EQ(g[static_cast<std::size_t>(TcpState::Expired)], 1u);
    h.worker().expire(t0 + 7441100 + 121100, kBigBudget);
    EXPECT_TRUE(all_clear(h, {kPub0, kPub1}));
}

}  // namespace
}  // namespace snatgw::test
