// TCP through the NAT: states, window policies, RST, window scaling, flags, port reuse (I4).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "nat_fixture.h"

namespace snatgw::test {
namespace {

const uint32_t kClient = ip("198.18.0.1");
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
    if (r.verdict == Verdict::Drop || r.verdict == Verdict::TtlExceeded) {
        s += " reason ";
        if (r.reason < DropReason::Count)
            s += std::string(drop_reason_name(r.reason));
        else
            s += "(none)";
    }
    return s;
}

// The TCP state gauges hold exactly `n` sessions in `want` and none in any other state.
::testing::AssertionResult only_state(const NatHarness& h, TcpState want, uint64_t n = 1) {
    const auto& g = h.counters().tcp_state;
    for (std::size_t i = 0; i < g.size(); ++i) {
        const uint64_t expect = i == static_cast<std::size_t>(want) ? n : 0;
        if (g[i] != expect)
            return ::testing::AssertionFailure()
                   << "tcp_state[" << tcp_state_name(static_cast<TcpState>(i)) << "] = " << g[i]
                   << ", expected " << expect << " (want " << n << " in " << tcp_state_name(want)
                   << ")";
    }
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult no_tcp_sessions(const NatHarness& h) {
    const auto& g = h.counters().tcp_state;
    for (std::size_t i = 0; i < g.size(); ++i)
        if (g[i] != 0)
            return ::testing::AssertionFailure()
                   << "tcp_state[" << tcp_state_name(static_cast<TcpState>(i)) << "] = " << g[i];
    return ::testing::AssertionSuccess();
}

struct Sent {
    std::vector<uint8_t> input;
    NatOutcome o;
    Verdict verdict() const { return o.result.verdict; }
    DropReason reason() const { return o.result.reason; }
};

// One TCP connection, inside client -> outside server, driven through the engine. Keeps both
// sides' sequence numbers and the public mapping (learnt from the first forwarded SYN).
class TcpConn {
public:
    TcpConn(NatHarness& h, uint32_t& clock, uint32_t inside_addr = kClient,
            uint16_t inside_port = 40000, uint32_t server_addr = kServer, uint16_t server_port = 80)
        : inside(inside_addr),
          server(server_addr),
          iport(inside_port),
          sport(server_port),
          h_(h),
          clock_(clock) {}

    uint32_t inside, server;
    uint16_t iport, sport;
    uint32_t pub_addr = 0;
    uint16_t pub_port = 0;

    uint32_t c_isn = 0x9a3c1f00u;     // client initial sequence number
    uint32_t s_isn = 0x2b7d4e00u;     // server initial sequence number
    int c_ws = -1, s_ws = -1;         // window-scale option on the SYN / SYN-ACK (-1: none)
    uint16_t c_win = 65535;           // raw window field of the client's segments
    uint16_t s_win = 65535;           // raw window field of the server's segments
    uint32_t c_next = 0, s_next = 0;  // next sequence number of each side
    int64_t c_ts = -1;                // the client's TSval on every segment (-1: no timestamps)

    // Raw segments (nothing asserted).
    Sent out(uint8_t flags, uint32_t seq, uint32_t ack, std::size_t len = 0, uint16_t win = 65535,
             int wscale = -1) {
        PacketBuilder b;
        b.eth().ipv4(inside, server).tcp(iport, sport, seq, ack, flags, win);
        if (wscale >= 0) b.tcp_option_mss(1460).tcp_option_wscale(static_cast<uint8_t>(wscale));
        if (c_ts >= 0) {
            const auto ts = static_cast<uint32_t>(c_ts);
            b.tcp_options_raw({1, 1, 8, 10, static_cast<uint8_t>(ts >> 24),
                               static_cast<uint8_t>(ts >> 16), static_cast<uint8_t>(ts >> 8),
                               static_cast<uint8_t>(ts), 0, 0, 0, 0});
        }
        b.payload(len);
        Sent s;
        s.input = b.build();
        s.o = h_.out(s.input, clock_);
        return s;
    }
    Sent in(uint8_t flags, uint32_t seq, uint32_t ack, std::size_t len = 0, uint16_t win = 65535,
            int wscale = -1) {
        PacketBuilder b;
        b.eth().ipv4(server, pub_addr).tcp(sport, pub_port, seq, ack, flags, win);
        if (wscale >= 0) b.tcp_option_mss(1460).tcp_option_wscale(static_cast<uint8_t>(wscale));
        b.payload(len);
        Sent s;
        s.input = b.build();
        s.o = h_.in(s.input, clock_);
        return s;
    }

    // `s` (arrived on `side`) was forwarded as the same segment with only the inside end
    // translated: valid checksums, TTL - 1, every TCP field and the payload unchanged.
    ::testing::AssertionResult translated(const Sent& s, Side side) const {
        if (s.o.result.verdict != Verdict::Forward)
            return ::testing::AssertionFailure() << "not forwarded: " << describe(s.o.result);
        const auto ck = verify_checksums(s.o.frame);
        if (!ck.ok) return ::testing::AssertionFailure() << "bad checksums: " << ck.detail;
        const auto i = decode(s.input);
        const auto o = decode(s.o.frame);
        if (!i || !o) return ::testing::AssertionFailure() << "cannot decode";
        if (o->proto != PROTO_TCP) return ::testing::AssertionFailure() << "not TCP";
        if (side == Side::Inside) {
            if (o->src != pub_addr || o->sport != pub_port || o->dst != server || o->dport != sport)
                return ::testing::AssertionFailure()
                       << "outbound " << ip_str(o->src) << ":" << o->sport << " -> "
                       << ip_str(o->dst) << ":" << o->dport << ", expected " << ip_str(pub_addr)
                       << ":" << pub_port << " -> " << ip_str(server) << ":" << sport;
        } else {
            if (o->src != server || o->sport != sport || o->dst != inside || o->dport != iport)
                return ::testing::AssertionFailure()
                       << "inbound " << ip_str(o->src) << ":" << o->sport << " -> "
                       << ip_str(o->dst) << ":" << o->dport << ", expected " << ip_str(server)
                       << ":" << sport << " -> " << ip_str(inside) << ":" << iport;
            if (o->dst == pub_addr)
                return ::testing::AssertionFailure() << "inbound left on the public address";
        }
        if (o->seq != i->seq || o->ack != i->ack || o->tcp_flags != i->tcp_flags ||
            o->window != i->window || o->tcp_hdr_len != i->tcp_hdr_len ||
            o->payload_len != i->payload_len)
            return ::testing::AssertionFailure()
                   << "TCP fields changed: flags " << int(i->tcp_flags) << " -> "
                   << int(o->tcp_flags) << ", seq " << i->seq << " -> " << o->seq;
        if (o->ttl + 1 != i->ttl)
            return ::testing::AssertionFailure() << "ttl " << int(i->ttl) << " -> " << int(o->ttl);
        if (!std::equal(s.input.begin() + static_cast<long>(i->payload_offset),
                        s.input.begin() + static_cast<long>(i->payload_offset + i->payload_len),
                        s.o.frame.begin() + static_cast<long>(o->payload_offset)))
            return ::testing::AssertionFailure() << "payload changed";
        return ::testing::AssertionSuccess();
    }

    // Segments that must be forwarded (asserted).
    void pass_out(uint8_t flags, uint32_t seq, uint32_t ack, std::size_t len = 0, int wscale = -1) {
        const Sent s = out(flags, seq, ack, len, (flags & TCP_SYN) ? 65535 : c_win, wscale);
        ASSERT_TRUE(translated(s, Side::Inside)) << "flags " << int(flags);
    }
    void pass_in(uint8_t flags, uint32_t seq, uint32_t ack, std::size_t len = 0, int wscale = -1) {
        const Sent s = in(flags, seq, ack, len, (flags & TCP_SYN) ? 65535 : s_win, wscale);
        ASSERT_TRUE(translated(s, Side::Outside)) << "flags " << int(flags);
    }

    void syn() {
        const Sent s = out(TCP_SYN, c_isn, 0, 0, 65535, c_ws);
        ASSERT_EQ(s.verdict(), Verdict::Forward) << describe(s.o.result);
        if (pub_port == 0) {
            const auto d = decode(s.o.frame);
            ASSERT_TRUE(d);
            pub_addr = d->src;
            pub_port = d->sport;
        }
        ASSERT_TRUE(translated(s, Side::Inside));
        c_next = c_isn + 1;
    }
    void synack() {
        ASSERT_NO_FATAL_FAILURE(pass_in(TCP_SYN | TCP_ACK, s_isn, c_next, 0, s_ws));
        s_next = s_isn + 1;
    }
    void ack_out() { ASSERT_NO_FATAL_FAILURE(pass_out(TCP_ACK, c_next, s_next)); }
    void ack_in() { ASSERT_NO_FATAL_FAILURE(pass_in(TCP_ACK, s_next, c_next)); }
    void data_out(std::size_t n) {
        ASSERT_NO_FATAL_FAILURE(pass_out(TCP_PSH | TCP_ACK, c_next, s_next, n));
        c_next += static_cast<uint32_t>(n);
    }
    void data_in(std::size_t n) {
        ASSERT_NO_FATAL_FAILURE(pass_in(TCP_PSH | TCP_ACK, s_next, c_next, n));
        s_next += static_cast<uint32_t>(n);
    }
    void fin_out() {
        ASSERT_NO_FATAL_FAILURE(pass_out(TCP_FIN | TCP_ACK, c_next, s_next));
        ++c_next;
    }
    void fin_in() {
        ASSERT_NO_FATAL_FAILURE(pass_in(TCP_FIN | TCP_ACK, s_next, c_next));
        ++s_next;
    }
    void rst_in() { ASSERT_NO_FATAL_FAILURE(pass_in(TCP_RST | TCP_ACK, s_next, c_next)); }
    void rst_out() { ASSERT_NO_FATAL_FAILURE(pass_out(TCP_RST | TCP_ACK, c_next, s_next)); }

    // SYN, SYN/ACK, ACK.
    void handshake() {
        ASSERT_NO_FATAL_FAILURE(syn());
        ASSERT_NO_FATAL_FAILURE(synack());
        ASSERT_NO_FATAL_FAILURE(ack_out());
    }
    // Handshake, a request, a response, its ACK.
    void establish() {
        ASSERT_NO_FATAL_FAILURE(handshake());
        ASSERT_NO_FATAL_FAILURE(data_out(100));
        ASSERT_NO_FATAL_FAILURE(data_in(1000));
        ASSERT_NO_FATAL_FAILURE(ack_out());
    }

    // A new connection on the same 4-tuple (new ISNs); the public mapping is kept, so the next
    // syn() asserts the same public address and port.
    void reconnect(uint32_t new_c_isn, uint32_t new_s_isn) {
        c_isn = new_c_isn;
        s_isn = new_s_isn;
        c_next = s_next = 0;
    }

private:
    NatHarness& h_;
    uint32_t& clock_;
};

std::string policy_test_name(const ::testing::TestParamInfo<std::string>& info) {
    std::string n;
    for (char ch : info.param) n += ch == '-' ? '_' : ch;
    return n;
}

const std::vector<std::string> kPolicies = {"liberal", "strict", "retrans-ok"};

// ---------------------------------------------------------------------------------------------
// State machine: handshake, data, close in every order, under every policy.
// ---------------------------------------------------------------------------------------------

class NatTcpLifecycle : public ::testing::TestWithParam<std::string> {};

TEST_P(NatTcpLifecycle, ClientFirstCloseWalksEveryState) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    c.c_ws = 7;
    c.s_ws = 8;
    c.c_win = 502;  // 64256 bytes scaled
    c.s_win = 256;  // 65536 bytes scaled

    ASSERT_NO_FATAL_FAILURE(c.syn());
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    EXPECT_TRUE(c.pub_addr == kPub0 || c.pub_addr == kPub1) << ip_str(c.pub_addr);
    EXPECT_GE(c.pub_port, 1024);
    ASSERT_NO_FATAL_FAILURE(c.synack());
    EXPECT_TRUE(only_state(h, TcpState::SynRecv));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_out(517));
    ASSERT_NO_FATAL_FAILURE(c.data_in(1448));
    ASSERT_NO_FATAL_FAILURE(c.data_in(1448));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));

    now += 50;
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    EXPECT_TRUE(only_state(h, TcpState::FinWait));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::CloseWait));
    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));

    EXPECT_EQ(h.counters().forwarded[0], 6u);  // SYN, ACK, data, ACK, FIN, ACK
    EXPECT_EQ(h.counters().forwarded[1], 5u);  // SYN/ACK, data, data, ACK, FIN
    EXPECT_EQ(h.counters().drop_total(), 0u);
    EXPECT_EQ(h.counters().sessions_created, 1u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);

    // Inside closed first: the pair only lingers (2 s), never early.
    const uint32_t closed = now;
    EXPECT_EQ(h.worker().expire(closed + 1500, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().expire(closed + 3500, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.counters().sessions_freed, 1u);
    EXPECT_TRUE(no_tcp_sessions(h));
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(c.pub_addr), PortSpace::Tcp), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
}

TEST_P(NatTcpLifecycle, ServerFirstCloseWalksEveryStateAndQuarantines) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    ASSERT_NO_FATAL_FAILURE(c.synack());
    EXPECT_TRUE(only_state(h, TcpState::SynRecv));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_out(80));
    ASSERT_NO_FATAL_FAILURE(c.data_in(3000));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());

    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    EXPECT_TRUE(only_state(h, TcpState::FinWait));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::CloseWait));
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
    EXPECT_EQ(h.counters().drop_total(), 0u);

    // Remote closed first: the pair is held for the quarantine (120 s), not the linger.
    const uint32_t closed = now;
    EXPECT_EQ(h.worker().expire(closed + 3500, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(closed + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
    EXPECT_EQ(h.worker().expire(closed + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_TRUE(no_tcp_sessions(h));
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(c.pub_addr), PortSpace::Tcp), 0u);
}

TEST_P(NatTcpLifecycle, SimultaneousCloseReachesTimeWait) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    EXPECT_TRUE(only_state(h, TcpState::FinWait));
    // The server's FIN also acknowledges the client's FIN.
    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
    EXPECT_EQ(h.counters().drop_total(), 0u);
}

TEST_P(NatTcpLifecycle, InWindowRstFromOutsideCloses) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    ASSERT_NO_FATAL_FAILURE(c.rst_in());
    EXPECT_TRUE(only_state(h, TcpState::Closed));
    EXPECT_EQ(h.counters().drop_total(), 0u);
    // RST: linger only.
    EXPECT_EQ(h.worker().expire(now + 1500, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(now + 3500, kBigBudget), 1u);
    EXPECT_TRUE(no_tcp_sessions(h));
    EXPECT_EQ(h.worker().sessions().size(), 0u);
}

TEST_P(NatTcpLifecycle, InWindowRstFromInsideCloses) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    ASSERT_NO_FATAL_FAILURE(c.rst_out());
    EXPECT_TRUE(only_state(h, TcpState::Closed));
    EXPECT_EQ(h.counters().drop_total(), 0u);
}

TEST_P(NatTcpLifecycle, RefusedConnectionRstAckForSynIsForwarded) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    // RFC 793: the answer to a SYN on a closed port is RST|ACK, seq 0, ack = ISN + 1.
    const Sent r = c.in(TCP_RST | TCP_ACK, 0, c.c_isn + 1, 0, 0);
    EXPECT_TRUE(c.translated(r, Side::Outside));
    EXPECT_TRUE(only_state(h, TcpState::Closed));
}

TEST_P(NatTcpLifecycle, RetransmittedSynAndSynAckDuringHandshakeAreForwarded) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    const uint16_t port = c.pub_port;
    now += 1000;
    ASSERT_NO_FATAL_FAILURE(c.syn());  // retransmitted SYN in SYN_SENT: same port
    EXPECT_EQ(c.pub_port, port);
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    ASSERT_NO_FATAL_FAILURE(c.synack());
    EXPECT_TRUE(only_state(h, TcpState::SynRecv));
    // The SYN/ACK got lost behind the NAT: the client retransmits its SYN, the server its
    // SYN/ACK.
    now += 1000;
    ASSERT_NO_FATAL_FAILURE(c.pass_out(TCP_SYN, c.c_isn, 0));
    EXPECT_TRUE(only_state(h, TcpState::SynRecv));
    ASSERT_NO_FATAL_FAILURE(c.pass_in(TCP_SYN | TCP_ACK, c.s_isn, c.c_isn + 1));
    EXPECT_TRUE(only_state(h, TcpState::SynRecv));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
    EXPECT_EQ(h.counters().sessions_created, 1u);
    EXPECT_EQ(h.counters().sessions_reopened, 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.counters().drop_total(), 0u);
}

INSTANTIATE_TEST_SUITE_P(, NatTcpLifecycle, ::testing::ValuesIn(kPolicies), policy_test_name);

// ---------------------------------------------------------------------------------------------
// Window policies: old duplicates below the window (spurious retransmissions) and data beyond.
// ---------------------------------------------------------------------------------------------

class NatTcpWindowPolicy : public ::testing::TestWithParam<std::string> {
protected:
    // An established connection without window scaling: both windows 65535. The ISNs are
    // chosen so that sequence arithmetic wraps around 2^32 in both directions.
    void open(NatHarness& h, uint32_t& now, TcpConn& c) {
        (void)h;
        (void)now;
        c.c_isn = 0xffffff00u;
        c.s_isn = 0x00010000u;
        ASSERT_NO_FATAL_FAILURE(c.establish());
        ASSERT_NO_FATAL_FAILURE(c.data_out(300));  // crosses 2^32
        ASSERT_NO_FATAL_FAILURE(c.ack_in());
        ASSERT_TRUE(only_state(h, TcpState::Established));
        ASSERT_EQ(h.counters().drop_total(), 0u);
    }
    bool strict() const { return GetParam() == "strict"; }
    bool liberal() const { return GetParam() == "liberal"; }
};

// The key test: an old duplicate from outside, entirely below the window.
TEST_P(NatTcpWindowPolicy, OldDuplicateFromOutsideBelowWindow) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    const uint64_t fwd_in = h.counters().forwarded[1];
    const uint64_t fwd_out = h.counters().forwarded[0];

    // 200000 bytes back, more than the 65535-byte window: wraps below 0.
    const uint32_t old_seq = c.s_isn + 1 - 200000;
    const Sent s = c.in(TCP_PSH | TCP_ACK, old_seq, c.c_next, 100);
    if (strict()) {
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpOutOfWindow) << describe(s.o.result);
        EXPECT_EQ(h.drops(DropReason::TcpOutOfWindow), 1u);
        EXPECT_EQ(h.counters().drop_total(), 1u);
        EXPECT_EQ(h.counters().forwarded[1], fwd_in);
    } else {
        ASSERT_EQ(s.verdict(), Verdict::Forward) << describe(s.o.result);
        EXPECT_TRUE(c.translated(s, Side::Outside));
        const auto d = decode(s.o.frame);
        ASSERT_TRUE(d);
        EXPECT_NE(d->dst, c.pub_addr);  // never forwarded untranslated
        EXPECT_EQ(d->dst, kClient);
        EXPECT_EQ(d->dport, 40000);
        EXPECT_EQ(d->tcp_flags, TCP_PSH | TCP_ACK);  // no RST made of it
        EXPECT_EQ(d->seq, old_seq);
        EXPECT_EQ(h.counters().drop_total(), 0u);
        EXPECT_EQ(h.counters().forwarded[1], fwd_in + 1);
    }
    // The engine emits nothing toward the server in reaction.
    EXPECT_EQ(h.counters().forwarded[0], fwd_out);
    EXPECT_TRUE(only_state(h, TcpState::Established));

    // The connection keeps working under every policy.
    ASSERT_NO_FATAL_FAILURE(c.data_in(1200));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    ASSERT_NO_FATAL_FAILURE(c.data_out(64));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

TEST_P(NatTcpWindowPolicy, OldDuplicateFromInsideBelowWindow) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    const uint32_t old_seq = c.c_isn + 1 - 200000;
    const Sent s = c.out(TCP_PSH | TCP_ACK, old_seq, c.s_next, 100);
    if (strict()) {
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpOutOfWindow) << describe(s.o.result);
        EXPECT_EQ(h.drops(DropReason::TcpOutOfWindow), 1u);
    } else {
        EXPECT_TRUE(c.translated(s, Side::Inside));
        EXPECT_EQ(h.counters().drop_total(), 0u);
    }
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_out(10));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
}

TEST_P(NatTcpWindowPolicy, RetransmissionOfAckedDataInsideWindowIsForwarded) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    // The server resends its 1000 bytes that were already acknowledged (a spurious
    // retransmission within the window): every policy forwards it.
    const Sent s = c.in(TCP_PSH | TCP_ACK, c.s_isn + 1, c.c_next, 1000);
    EXPECT_TRUE(c.translated(s, Side::Outside));
    const Sent t = c.out(TCP_PSH | TCP_ACK, c.c_isn + 1, c.s_next, 100);
    EXPECT_TRUE(c.translated(t, Side::Inside));
    EXPECT_EQ(h.counters().drop_total(), 0u);
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

TEST_P(NatTcpWindowPolicy, DataBeyondWindowFromOutside) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    const uint64_t fwd_out = h.counters().forwarded[0];
    const uint32_t far_seq = c.s_next + 200000;  // far above what the client allowed
    const Sent s = c.in(TCP_PSH | TCP_ACK, far_seq, c.c_next, 100);
    if (liberal()) {
        EXPECT_TRUE(c.translated(s, Side::Outside));
        EXPECT_EQ(h.counters().drop_total(), 0u);
    } else {
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpOutOfWindow) << describe(s.o.result);
        EXPECT_EQ(h.drops(DropReason::TcpOutOfWindow), 1u);
        EXPECT_EQ(h.counters().drop_total(), 1u);
    }
    EXPECT_EQ(h.counters().forwarded[0], fwd_out);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    // The next in-window segment passes under every policy.
    ASSERT_NO_FATAL_FAILURE(c.data_in(500));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

TEST_P(NatTcpWindowPolicy, DataBeyondWindowFromInside) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    const Sent s = c.out(TCP_PSH | TCP_ACK, c.c_next + 200000, c.s_next, 100);
    if (liberal()) {
        EXPECT_TRUE(c.translated(s, Side::Inside));
    } else {
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpOutOfWindow) << describe(s.o.result);
    }
    ASSERT_NO_FATAL_FAILURE(c.data_out(10));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

TEST_P(NatTcpWindowPolicy, AckForDataNeverSentFromOutside) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    // Acknowledges 1 MB the client never sent: "beyond".
    const Sent s = c.in(TCP_ACK, c.s_next, c.c_next + 1000000, 0);
    if (liberal()) {
        EXPECT_TRUE(c.translated(s, Side::Outside));
    } else {
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpOutOfWindow) << describe(s.o.result);
    }
    ASSERT_NO_FATAL_FAILURE(c.data_in(10));
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

// TCP keepalives (seq = next - 1, 0 or 1 byte) are in window for every policy, and keep an
// idle established session from expiring.
TEST_P(NatTcpWindowPolicy, KeepaliveProbesPassAndRefreshTheSession) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(open(h, now, c));
    now += 7000 * 1000;  // idle for almost the whole tcp_established timeout
    const Sent probe = c.out(TCP_ACK, c.c_next - 1, c.s_next, 1);
    EXPECT_TRUE(c.translated(probe, Side::Inside));
    const Sent answer = c.in(TCP_ACK, c.s_next, c.c_next, 0);
    EXPECT_TRUE(c.translated(answer, Side::Outside));
    const Sent probe_in = c.in(TCP_ACK, c.s_next - 1, c.c_next, 0);
    EXPECT_TRUE(c.translated(probe_in, Side::Outside));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_EQ(h.counters().drop_total(), 0u);
    // 7441.1 s after the connection opened, but only 441 s after the keepalives.
    EXPECT_EQ(h.worker().expire(1000 + 7441100, kBigBudget), 0u);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_out(10));
}

INSTANTIATE_TEST_SUITE_P(, NatTcpWindowPolicy, ::testing::ValuesIn(kPolicies), policy_test_name);

// Liberal means "track state, never drop for window reasons" (nat_config.h), as conntrack with
// tcp_be_liberal, which treats such segments as in window and updates its tracking data. A
// server that overruns the client's advertised window (what the liberal policy exists to
// tolerate) must not freeze the state machine: the close that follows still reaches TIME_WAIT.
TEST(NatTcpLiberal, WindowOverrunDoesNotFreezeStateMachine) {
    NatHarness h({lab_pool("liberal")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    c.c_win = 1000;  // the client offers 1000 bytes
    ASSERT_NO_FATAL_FAILURE(c.handshake());
    // The server sends 3 x 1400 bytes anyway: forwarded, as the policy promises.
    for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(c.data_in(1400));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_EQ(h.counters().drop_total(), 0u);
    // An ordinary inside-first close.
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    EXPECT_TRUE(only_state(h, TcpState::FinWait));
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::CloseWait));
    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
    // So the pair lingers 2 s instead of being held for tcp_established (7440 s).
    EXPECT_EQ(h.worker().expire(now + 3500, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// RST
// ---------------------------------------------------------------------------------------------

TEST(NatTcpRst, StrictDropsOutOfWindowRstAndKeepsSession) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());

    const Sent beyond = c.in(TCP_RST, c.s_next + 200000, 0);
    EXPECT_EQ(beyond.verdict(), Verdict::Drop) << describe(beyond.o.result);
    EXPECT_EQ(beyond.reason(), DropReason::TcpRstOutOfWindow) << describe(beyond.o.result);
    EXPECT_TRUE(only_state(h, TcpState::Established));

    const Sent old = c.in(TCP_RST | TCP_ACK, c.s_next - 200000, c.c_next);
    EXPECT_EQ(old.verdict(), Verdict::Drop) << describe(old.o.result);
    EXPECT_EQ(old.reason(), DropReason::TcpRstOutOfWindow) << describe(old.o.result);
    EXPECT_TRUE(only_state(h, TcpState::Established));

    EXPECT_EQ(h.drops(DropReason::TcpRstOutOfWindow), 2u);
    EXPECT_EQ(h.counters().drop_total(), 2u);

    // Still established and working.
    ASSERT_NO_FATAL_FAILURE(c.data_in(100));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));

    // An in-window RST (no ACK, seq = next expected) closes it.
    const Sent rst = c.in(TCP_RST, c.s_next, 0);
    EXPECT_TRUE(c.translated(rst, Side::Outside));
    EXPECT_TRUE(only_state(h, TcpState::Closed));
}

TEST(NatTcpRst, StrictDropsOutOfWindowRstFromInside) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const Sent s = c.out(TCP_RST, c.c_next + 500000, 0);
    EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
    EXPECT_EQ(s.reason(), DropReason::TcpRstOutOfWindow) << describe(s.o.result);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.rst_out());
    EXPECT_TRUE(only_state(h, TcpState::Closed));
}

TEST(NatTcpRst, LiberalAcceptsOutOfWindowRst) {
    NatHarness h({lab_pool("liberal")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const Sent s = c.in(TCP_RST, c.s_next + 200000, 0);
    EXPECT_TRUE(c.translated(s, Side::Outside));
    // Forwarded, but the endpoints ignore it (RFC 5961): the session stays, its pair is not
    // handed to anyone else.
    EXPECT_TRUE(only_state(h, TcpState::Established));
    EXPECT_EQ(h.counters().tcp_rst_ignored, 1u);
    EXPECT_EQ(h.counters().drop_total(), 0u);
    ASSERT_NO_FATAL_FAILURE(c.data_out(10));
    ASSERT_NO_FATAL_FAILURE(c.data_in(10));
    // From the inside too.
    EXPECT_TRUE(c.translated(c.out(TCP_RST | TCP_ACK, c.c_next - 500000, c.s_next), Side::Inside));
    EXPECT_TRUE(only_state(h, TcpState::Established));
    EXPECT_EQ(h.counters().tcp_rst_ignored, 2u);
}

// ---------------------------------------------------------------------------------------------
// Window scaling (RFC 7323): in force only when both SYNs carry the option.
// ---------------------------------------------------------------------------------------------

// Both sides advertise a raw window of 1000: 128000 bytes when scaled by 7, 1000 when not. After
// the handshake and a pure ACK from the server (so each side has announced a non-SYN window),
// each side sends 1000 bytes at offset 100000: inside the scaled window only.
struct FarSegments {
    Sent from_client;
    Sent from_server;
};

FarSegments far_segments_after_handshake(TcpConn& c, int c_ws, int s_ws) {
    c.c_ws = c_ws;
    c.s_ws = s_ws;
    c.c_win = 1000;
    c.s_win = 1000;
    FarSegments f;
    [&] {
        ASSERT_NO_FATAL_FAILURE(c.handshake());
        ASSERT_NO_FATAL_FAILURE(c.ack_in());
    }();
    if (::testing::Test::HasFatalFailure()) return f;
    f.from_client = c.out(TCP_PSH | TCP_ACK, c.c_next + 100000, c.s_next, 1000, c.c_win);
    f.from_server = c.in(TCP_PSH | TCP_ACK, c.s_next + 100000, c.c_next, 1000, c.s_win);
    return f;
}

TEST(NatTcpWindowScale, ScaledWindowAcceptsSegmentBeyondUnscaledWindow) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    const FarSegments f = far_segments_after_handshake(c, 7, 7);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(c.translated(f.from_client, Side::Inside));
    EXPECT_TRUE(c.translated(f.from_server, Side::Outside));
    EXPECT_EQ(h.counters().drop_total(), 0u);
    // Beyond the scaled window too (128000 bytes): dropped.
    const Sent t = c.in(TCP_PSH | TCP_ACK, c.s_next + 130000, c.c_next, 1000, c.s_win);
    EXPECT_EQ(t.verdict(), Verdict::Drop) << describe(t.o.result);
    EXPECT_EQ(t.reason(), DropReason::TcpOutOfWindow) << describe(t.o.result);
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

class NatTcpWindowScaleOneSided : public ::testing::TestWithParam<bool> {};

TEST_P(NatTcpWindowScaleOneSided, OptionOnOneSynOnlyMeansNoScaling) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    const bool client_sends_option = GetParam();
    const FarSegments f =
        far_segments_after_handshake(c, client_sends_option ? 7 : -1, client_sends_option ? -1 : 7);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(f.from_client.verdict(), Verdict::Drop) << describe(f.from_client.o.result);
    EXPECT_EQ(f.from_client.reason(), DropReason::TcpOutOfWindow);
    EXPECT_EQ(f.from_server.verdict(), Verdict::Drop) << describe(f.from_server.o.result);
    EXPECT_EQ(f.from_server.reason(), DropReason::TcpOutOfWindow);
    EXPECT_EQ(h.drops(DropReason::TcpOutOfWindow), 2u);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    // Within the unscaled 1000 bytes all is well.
    ASSERT_NO_FATAL_FAILURE(c.data_in(900));
    ASSERT_NO_FATAL_FAILURE(c.data_out(900));
}

INSTANTIATE_TEST_SUITE_P(, NatTcpWindowScaleOneSided, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                             return std::string(info.param ? "ClientOnly" : "ServerOnly");
                         });

// ---------------------------------------------------------------------------------------------
// Flag combinations no TCP stack sends.
// ---------------------------------------------------------------------------------------------

const uint8_t kInvalidFlags[] = {
    TCP_SYN | TCP_FIN,
    0,        // null scan
    TCP_FIN,  // FIN without ACK
    TCP_SYN | TCP_FIN | TCP_ACK,
    TCP_SYN | TCP_RST,
    TCP_FIN | TCP_RST | TCP_ACK,
    TCP_FIN | TCP_PSH | TCP_URG,  // xmas scan
    TCP_SYN | TCP_FIN | TCP_PSH | TCP_URG,
};

class NatTcpFlags : public ::testing::TestWithParam<std::string> {};

TEST_P(NatTcpFlags, InvalidCombinationsOnSessionAreDropped) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const uint64_t fwd0 = h.counters().forwarded[0], fwd1 = h.counters().forwarded[1];
    uint64_t n = 0;
    for (uint8_t f : kInvalidFlags) {
        const Sent i = c.in(f, c.s_next, c.c_next);
        EXPECT_EQ(i.verdict(), Verdict::Drop) << "flags " << int(f) << ": " << describe(i.o.result);
        EXPECT_EQ(i.reason(), DropReason::TcpInvalidFlags) << "flags " << int(f);
        const Sent o = c.out(f, c.c_next, c.s_next);
        EXPECT_EQ(o.verdict(), Verdict::Drop) << "flags " << int(f) << ": " << describe(o.o.result);
        EXPECT_EQ(o.reason(), DropReason::TcpInvalidFlags) << "flags " << int(f);
        n += 2;
    }
    EXPECT_EQ(h.drops(DropReason::TcpInvalidFlags), n);
    EXPECT_EQ(h.counters().drop_total(), n);
    EXPECT_EQ(h.counters().forwarded[0], fwd0);
    EXPECT_EQ(h.counters().forwarded[1], fwd1);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_in(10));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
}

TEST_P(NatTcpFlags, InvalidCombinationsOpenNothing) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    uint16_t port = 41000;
    for (uint8_t f : kInvalidFlags) {
        TcpConn c(h, now, kClient, port++);
        const Sent o = c.out(f, 12345, 0);
        EXPECT_EQ(o.verdict(), Verdict::Drop) << "flags " << int(f) << ": " << describe(o.o.result);
        EXPECT_EQ(o.reason(), DropReason::TcpInvalidFlags) << "flags " << int(f);
    }
    EXPECT_EQ(h.drops(DropReason::TcpInvalidFlags), sizeof(kInvalidFlags));
    EXPECT_EQ(h.counters().sessions_created, 0u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(, NatTcpFlags, ::testing::ValuesIn(kPolicies), policy_test_name);

// ---------------------------------------------------------------------------------------------
// Port reuse (invariant I4): the same inside flow reconnecting keeps its public port.
// ---------------------------------------------------------------------------------------------

enum class Ending { ClientFirst, ServerFirst, Rst, Expired };

const char* ending_name(Ending e) {
    switch (e) {
        case Ending::ClientFirst: return "ClientFirst";
        case Ending::ServerFirst: return "ServerFirst";
        case Ending::Rst: return "Rst";
        case Ending::Expired: return "Expired";
    }
    return "?";
}

void PrintTo(Ending e, std::ostream* os) { *os << ending_name(e); }

std::string ending_test_name(const ::testing::TestParamInfo<Ending>& info) {
    return ending_name(info.param);
}

// Ends an established connection the given way; `now` is left at the moment it ended.
void end_connection(NatHarness& h, uint32_t& now, TcpConn& c, Ending e) {
    switch (e) {
        case Ending::ClientFirst:
            ASSERT_NO_FATAL_FAILURE(c.fin_out());
            ASSERT_NO_FATAL_FAILURE(c.ack_in());
            ASSERT_NO_FATAL_FAILURE(c.fin_in());
            ASSERT_NO_FATAL_FAILURE(c.ack_out());
            break;
        case Ending::ServerFirst:
            ASSERT_NO_FATAL_FAILURE(c.fin_in());
            ASSERT_NO_FATAL_FAILURE(c.ack_out());
            ASSERT_NO_FATAL_FAILURE(c.fin_out());
            ASSERT_NO_FATAL_FAILURE(c.ack_in());
            break;
        case Ending::Rst: ASSERT_NO_FATAL_FAILURE(c.rst_in()); break;
        case Ending::Expired: {
            // Idle past tcp_established (7440 s); expiry may be up to ~1 s late.
            const uint64_t expired_before = h.counters().sessions_expired;
            now += 7440 * 1000 + 1100;
            h.worker().expire(now, kBigBudget);
            ASSERT_EQ(h.counters().sessions_expired, expired_before + 1u);
            break;
        }
    }
}

TcpState state_after(Ending e) {
    switch (e) {
        case Ending::ClientFirst:
        case Ending::ServerFirst: return TcpState::TimeWait;
        case Ending::Rst: return TcpState::Closed;
        case Ending::Expired: return TcpState::Expired;
    }
    return TcpState::None;
}

class NatTcpPortReuse : public ::testing::TestWithParam<Ending> {};

TEST_P(NatTcpPortReuse, SameInsideFlowReopensWithSamePort) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const uint32_t pub_addr = c.pub_addr;
    const uint16_t pub_port = c.pub_port;
    now += 1000;
    ASSERT_NO_FATAL_FAILURE(end_connection(h, now, c, GetParam()));
    EXPECT_TRUE(only_state(h, state_after(GetParam())));
    EXPECT_EQ(h.worker().sessions().size(), 1u);

    // The same inside addr:port connects to the same server again (new ISNs) before the old
    // session is gone.
    now += 500;
    c.reconnect(c.c_isn + 0x01000000u, c.s_isn + 0x02000000u);
    ASSERT_NO_FATAL_FAILURE(c.syn());  // asserts the same public address and port
    EXPECT_EQ(c.pub_addr, pub_addr);
    EXPECT_EQ(c.pub_port, pub_port);
    EXPECT_EQ(h.counters().sessions_reopened, 1u);
    EXPECT_EQ(h.counters().sessions_created, 1u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_TRUE(only_state(h, TcpState::SynSent));

    // The new connection works normally, under the strict policy.
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
    ASSERT_NO_FATAL_FAILURE(c.data_out(200));
    ASSERT_NO_FATAL_FAILURE(c.data_in(2000));
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_EQ(h.counters().drop_total(), 0u);
    EXPECT_TRUE(h.worker().ports().owned(htonl(pub_addr), PortSpace::Tcp, pub_port));
}

// The tiny pool: one address, 4 ports. Hosts .2-.4 hold three ports toward the server, host .1
// the fourth; after host .1's connection ends, host .5 connecting to the same server can only
// get host .1's (port, server) pair.
TEST_P(NatTcpPortReuse, PairGoesToAnotherHostOnlyAfterHoldTime) {
    PoolSpec tiny;
    tiny.name = "lab";
    tiny.addresses = "198.19.0.10";
    tiny.ports = "2000-2003";
    tiny.policy = "strict";
    NatHarness h({tiny}, 1);
    uint32_t now = 1000;

    TcpConn a(h, now, ip("198.18.0.1"), 40000);
    ASSERT_NO_FATAL_FAILURE(a.establish());
    std::vector<TcpConn> busy;
    busy.reserve(3);
    for (int i = 0; i < 3; ++i) {
        std::string addr = "198.18.0.";
        addr += std::to_string(2 + i);
        busy.emplace_back(h, now, ip(addr.c_str()), static_cast<uint16_t>(50000 + i));
        ASSERT_NO_FATAL_FAILURE(busy.back().establish());
    }
    std::set<uint16_t> ports = {a.pub_port};
    for (const TcpConn& b : busy) {
        EXPECT_EQ(b.pub_addr, kPub0);
        ports.insert(b.pub_port);
    }
    EXPECT_EQ(ports, (std::set<uint16_t>{2000, 2001, 2002, 2003}));
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(kPub0), PortSpace::Tcp), 4u);

    if (GetParam() == Ending::Expired) {
        // Keep the other three alive past host .1's expiry.
        // (The clock goes back to 1000 only so end_connection() expires host .1 at ~7443 s, when
        // these were last seen ~2443 s before.)
        now = 5000 * 1000;
        for (TcpConn& b : busy) ASSERT_NO_FATAL_FAILURE(b.data_out(10));
        now = 1000;
    }
    now += 1000;
    ASSERT_NO_FATAL_FAILURE(end_connection(h, now, a, GetParam()));
    const uint32_t ended = now;
    EXPECT_EQ(h.worker().sessions().size(), 4u);

    const bool long_hold = GetParam() == Ending::ServerFirst || GetParam() == Ending::Expired;
    // Moments (after the end) when the pair must still be held, and when it must be free.
    const std::vector<uint32_t> held_at = long_hold
                                              ? std::vector<uint32_t>{100, 3500, 60000, 119000}
                                              : std::vector<uint32_t>{100, 1500};
    const uint32_t released = long_hold ? 121100 : 3500;

    TcpConn e(h, now, ip("198.18.0.5"), 45000);
    auto try_e = [&](uint32_t t) {
        now = t;
        h.worker().expire(now, kBigBudget);
        // Its ISN lies below the old connection's sequence numbers: a remote in TIME_WAIT would
        // not accept it, so the held pair must not go to it (RFC 6191; see NatTcpTimeWaitReuse).
        return e.out(TCP_SYN, a.c_isn, 0, 0, 65535, -1);
    };
    // Right away, and until just before the hold time ends: the pair is not given away.
    uint64_t exhausted = 0;
    for (uint32_t dt : held_at) {
        const Sent s = try_e(ended + dt);
        if (s.verdict() == Verdict::Forward) {
            const auto d = decode(s.o.frame);
            ASSERT_TRUE(d);
            EXPECT_FALSE(d->src == kPub0 && d->sport == a.pub_port)
                << "host .5 got the held pair " << ip_str(d->src) << ":" << d->sport << " at +"
                << dt << " ms";
            FAIL() << "no other pair exists, expected PortsExhausted, got port " << d->sport;
        }
        EXPECT_EQ(s.verdict(), Verdict::Drop) << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::PortsExhausted) << describe(s.o.result);
        ++exhausted;
        EXPECT_EQ(h.drops(DropReason::PortsExhausted), exhausted);
        EXPECT_EQ(h.worker().sessions().size(), 4u);
    }
    // Host .1's own flow could still reopen here; another host cannot. After the hold time:
    const Sent s = try_e(ended + released);
    EXPECT_EQ(h.worker().sessions().size(), 4u);
    ASSERT_EQ(s.verdict(), Verdict::Forward) << describe(s.o.result);
    const auto d = decode(s.o.frame);
    ASSERT_TRUE(d);
    EXPECT_TRUE(verify_checksums(s.o.frame).ok) << verify_checksums(s.o.frame).detail;
    EXPECT_EQ(d->src, kPub0);
    EXPECT_EQ(d->sport, a.pub_port);
    EXPECT_EQ(d->dst, kServer);
    EXPECT_EQ(d->dport, 80);
    EXPECT_EQ(h.counters().sessions_reopened, 0u);
    // The others still work.
    for (TcpConn& b : busy) ASSERT_NO_FATAL_FAILURE(b.data_in(10));
}

INSTANTIATE_TEST_SUITE_P(, NatTcpPortReuse,
                         ::testing::Values(Ending::ClientFirst, Ending::ServerFirst, Ending::Rst,
                                           Ending::Expired),
                         ending_test_name);

TEST(NatTcpPortReuseHandshake, RetransmittedSynOnSynSentKeepsPort) {
    NatHarness h({lab_pool("strict")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    const uint16_t port = c.pub_port;
    for (int i = 0; i < 3; ++i) {
        now += 1000u << i;  // 1 s, 2 s, 4 s backoff
        ASSERT_NO_FATAL_FAILURE(c.syn());
        EXPECT_EQ(c.pub_port, port);
    }
    EXPECT_EQ(h.counters().sessions_created, 1u);
    EXPECT_EQ(h.counters().sessions_reopened, 0u);
    EXPECT_EQ(h.counters().forwarded[0], 4u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

// ---------------------------------------------------------------------------------------------
// Expired sessions: nothing passes until the inside flow sends a SYN.
// ---------------------------------------------------------------------------------------------

TEST(NatTcpExpired, ExpiredSessionPassesNothingButAnInsideSyn) {
    NatHarness h({lab_pool("liberal")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const uint32_t last = now;

    // Never early: one second before tcp_established is up, nothing happens.
    EXPECT_EQ(h.worker().expire(last + 7439000, kBigBudget), 0u);
    EXPECT_TRUE(only_state(h, TcpState::Established));
    now = last + 7441100;
    EXPECT_EQ(h.worker().expire(now, kBigBudget), 1u);
    EXPECT_TRUE(only_state(h, TcpState::Expired));
    EXPECT_EQ(h.counters().sessions_expired, 1u);
    EXPECT_EQ(h.counters().sessions_freed, 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_TRUE(h.worker().ports().owned(htonl(c.pub_addr), PortSpace::Tcp, c.pub_port));

    now += 10;
    const uint8_t outside_flags[] = {TCP_ACK, TCP_PSH | TCP_ACK, TCP_SYN | TCP_ACK, TCP_RST,
                                     TCP_FIN | TCP_ACK};
    for (uint8_t f : outside_flags) {
        const Sent s = c.in(f, c.s_next, c.c_next, f == TCP_RST ? 0 : 20);
        EXPECT_EQ(s.verdict(), Verdict::Drop) << "flags " << int(f) << ": " << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::NoSession) << "flags " << int(f);
    }
    const uint8_t inside_flags[] = {TCP_ACK, TCP_PSH | TCP_ACK, TCP_FIN | TCP_ACK,
                                    TCP_RST, TCP_RST | TCP_ACK, TCP_SYN | TCP_ACK};
    for (uint8_t f : inside_flags) {
        const Sent s = c.out(f, c.c_next, c.s_next, 0);
        EXPECT_EQ(s.verdict(), Verdict::Drop) << "flags " << int(f) << ": " << describe(s.o.result);
        EXPECT_EQ(s.reason(), DropReason::TcpNotSyn) << "flags " << int(f);
    }
    EXPECT_EQ(h.drops(DropReason::NoSession), sizeof(outside_flags));
    EXPECT_EQ(h.drops(DropReason::TcpNotSyn), sizeof(inside_flags));
    EXPECT_TRUE(only_state(h, TcpState::Expired));

    // A SYN from the same inside flow reopens it with the same public port.
    const uint16_t port = c.pub_port;
    c.reconnect(0x11111111u, 0x22222222u);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    EXPECT_EQ(c.pub_port, port);
    EXPECT_EQ(h.counters().sessions_reopened, 1u);
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

TEST(NatTcpExpired, ExpiredSessionIsFreedAfterQuarantine) {
    NatHarness h({lab_pool("liberal")});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    now += 7441100;
    EXPECT_EQ(h.worker().expire(now, kBigBudget), 1u);
    EXPECT_TRUE(only_state(h, TcpState::Expired));
    EXPECT_EQ(h.worker().expire(now + 119000, kBigBudget), 0u);
    EXPECT_EQ(h.worker().sessions().size(), 1u);
    EXPECT_EQ(h.worker().expire(now + 121100, kBigBudget), 1u);
    EXPECT_EQ(h.worker().sessions().size(), 0u);
    EXPECT_TRUE(no_tcp_sessions(h));
    EXPECT_EQ(h.counters().sessions_freed, 1u);
    EXPECT_EQ(h.worker().ports().ports_in_use(htonl(c.pub_addr), PortSpace::Tcp), 0u);
    EXPECT_EQ(h.worker().hosts().size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Who holds TIME_WAIT (invariant I4): every way a connection ends, and whether its pair is held
// for the quarantine (the remote may hold TIME_WAIT) or only lingers (it cannot).
// ---------------------------------------------------------------------------------------------

struct CloseCase {
    const char* name;
    void (*end)(TcpConn& c);  // from an established connection
    bool remote_holds;        // quarantine (true) or linger (false)
};

const CloseCase kCloseCases[] = {
    {"inside_first_remote_passive",  // the remote's FIN acknowledges the inside's
     [](TcpConn& c) {
         c.fin_out();
         c.fin_in();
         c.ack_out();
     },
     false},
    {"inside_first_remote_acks_then_fins",
     [](TcpConn& c) {
         c.fin_out();
         c.ack_in();
         c.fin_in();
         c.ack_out();
     },
     false},
    {"remote_first",
     [](TcpConn& c) {
         c.fin_in();
         c.ack_out();
         c.fin_out();
         c.ack_in();
     },
     true},
    {"simultaneous_inside_fin_seen_first",  // the FINs crossed: the remote's does not ack ours
     [](TcpConn& c) {
         c.fin_out();
         c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next - 1);
         ++c.s_next;
         c.ack_out();
         c.ack_in();
     },
     true},
    {"simultaneous_then_remote_fin_retransmitted",  // the retransmission acks ours: still held
     [](TcpConn& c) {
         c.fin_out();
         c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next - 1);
         c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next);
         ++c.s_next;
         c.ack_out();
     },
     true},
    {"remote_first_then_inside_rst",  // an RST after the remote's FIN: RFC 1337 keeps TIME_WAIT
     [](TcpConn& c) {
         c.fin_in();
         c.ack_out();
         c.rst_out();
     },
     true},
    {"remote_first_then_remote_rst",
     [](TcpConn& c) {
         c.fin_in();
         c.ack_out();
         c.fin_out();
         c.pass_in(TCP_RST, c.s_next, 0);
     },
     true},
    {"in_window_rst_from_outside", [](TcpConn& c) { c.rst_in(); }, false},
    {"in_window_rst_from_inside", [](TcpConn& c) { c.rst_out(); }, false},
    {"inside_first_then_rst",  // no remote FIN: the remote holds nothing
     [](TcpConn& c) {
         c.fin_out();
         c.ack_in();
         c.rst_in();
     },
     false},
};

class NatTcpWhoHoldsTimeWait
    : public ::testing::TestWithParam<std::tuple<std::string, std::size_t>> {};

TEST_P(NatTcpWhoHoldsTimeWait, PairHeldOnlyWhereTheRemoteMayHoldIt) {
    const auto& [policy, i] = GetParam();
    const CloseCase& cc = kCloseCases[i];
    NatHarness h({lab_pool(policy)});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    now += 100;
    cc.end(c);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(h.counters().drop_total(), 0u);
    const uint32_t ended = now;
    EXPECT_EQ(h.worker().expire(ended + 3500, kBigBudget), cc.remote_holds ? 0u : 1u) << cc.name;
    EXPECT_EQ(h.worker().sessions().size(), cc.remote_holds ? 1u : 0u) << cc.name;
    h.worker().expire(ended + 121100, kBigBudget);
    EXPECT_EQ(h.worker().sessions().size(), 0u) << cc.name;
    EXPECT_TRUE(no_tcp_sessions(h));
}

// Simultaneous close: the inside's FIN retransmitted after the remote's crossed it does not
// acknowledge the remote's FIN, so the connection is not in TIME_WAIT yet (the remote is still
// in CLOSING and would not take a new SYN on the pair); the real ACK is.
TEST_P(NatTcpLifecycle, SimultaneousCloseWaitsForTheAckOfTheRemoteFin) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    ASSERT_NO_FATAL_FAILURE(c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next - 1));
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ASSERT_NO_FATAL_FAILURE(c.pass_out(TCP_FIN | TCP_ACK, c.c_next - 1, c.s_next));
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    ++c.s_next;
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
}

// Simultaneous close seen remote FIN first: the remote's ACK of the inside's FIN comes from
// CLOSING, not TIME_WAIT (a new SYN on the pair then would get a challenge ACK: seed storms),
// so the pair is in TIME_WAIT only once the inside acknowledges the remote's FIN.
TEST_P(NatTcpLifecycle, SimultaneousCloseRemoteFirstWaitsForTheInsideAck) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    // The remote's FIN, then the inside's, crossing it (it does not acknowledge the remote FIN).
    ASSERT_NO_FATAL_FAILURE(c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next));
    ASSERT_NO_FATAL_FAILURE(c.pass_out(TCP_FIN | TCP_ACK, c.c_next, c.s_next));
    ++c.c_next;
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    // The remote acknowledges the inside's FIN (from CLOSING): not TIME_WAIT yet.
    ASSERT_NO_FATAL_FAILURE(c.pass_in(TCP_ACK, c.s_next + 1, c.c_next));
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    // The inside acknowledges the remote's FIN: now the remote is in TIME_WAIT.
    ++c.s_next;
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
}

// A FIN while the handshake is still in SYN_RECV: the remote closed first.
TEST_P(NatTcpLifecycle, RemoteFinInSynRecvHoldsThePair) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    ASSERT_NO_FATAL_FAILURE(c.ack_in());
    EXPECT_TRUE(only_state(h, TcpState::TimeWait));
    EXPECT_EQ(h.worker().expire(now + 3500, kBigBudget), 0u);
    EXPECT_EQ(h.worker().expire(now + 121100, kBigBudget), 1u);
}

std::string close_case_name(
    const ::testing::TestParamInfo<std::tuple<std::string, std::size_t>>& info) {
    std::string n;
    for (char ch : std::get<0>(info.param)) n += ch == '-' ? '_' : ch;
    return n + "_" + kCloseCases[std::get<1>(info.param)].name;
}

INSTANTIATE_TEST_SUITE_P(, NatTcpWhoHoldsTimeWait,
                         ::testing::Combine(::testing::ValuesIn(kPolicies),
                                            ::testing::Range<std::size_t>(0, std::size(kCloseCases))),
                         close_case_name);

// ---------------------------------------------------------------------------------------------
// A new SYN of the same inside flow on an open session: the host rebooted and reused its port.
// ---------------------------------------------------------------------------------------------

TEST_P(NatTcpLifecycle, NewSynOnEstablishedSessionReopensIt) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    const uint16_t port = c.pub_port;
    // An old duplicate of the connection's own SYN is not a new connection.
    const Sent dup = c.out(TCP_SYN, c.c_isn, 0);
    (void)dup;
    EXPECT_TRUE(only_state(h, TcpState::Established));
    EXPECT_EQ(h.counters().sessions_reopened, 0u);
    // The rebooted host's SYN (a fresh ISN) reopens the session on the same public port.
    c.reconnect(c.c_isn + 0x40000000u, c.s_isn + 0x40000000u);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    EXPECT_EQ(c.pub_port, port);
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    EXPECT_EQ(h.counters().sessions_reopened, 1u);
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    ASSERT_NO_FATAL_FAILURE(c.data_out(10));
    ASSERT_NO_FATAL_FAILURE(c.data_in(10));
    EXPECT_TRUE(only_state(h, TcpState::Established));
    EXPECT_EQ(h.counters().drop_total(), 0u);
}

TEST_P(NatTcpLifecycle, NewSynOnLastAckSessionReopensIt) {
    NatHarness h({lab_pool(GetParam())});
    uint32_t now = 1000;
    TcpConn c(h, now);
    ASSERT_NO_FATAL_FAILURE(c.establish());
    ASSERT_NO_FATAL_FAILURE(c.fin_in());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    ASSERT_NO_FATAL_FAILURE(c.fin_out());
    EXPECT_TRUE(only_state(h, TcpState::LastAck));
    c.reconnect(c.c_isn + 0x40000000u, c.s_isn + 0x40000000u);
    ASSERT_NO_FATAL_FAILURE(c.syn());
    EXPECT_TRUE(only_state(h, TcpState::SynSent));
    EXPECT_EQ(h.counters().sessions_reopened, 1u);
    ASSERT_NO_FATAL_FAILURE(c.synack());
    ASSERT_NO_FATAL_FAILURE(c.ack_out());
    EXPECT_TRUE(only_state(h, TcpState::Established));
}

// ---------------------------------------------------------------------------------------------
// Reusing a pair held for the remote's TIME_WAIT, only where the remote accepts the new SYN
// (RFC 6191, as Linux's tcp_timewait_state_process).
// ---------------------------------------------------------------------------------------------

// Ends `c` by a simultaneous close: both ends in TIME_WAIT, the pair quarantined.
void simultaneous_close(TcpConn& c) {
    c.fin_out();
    c.pass_in(TCP_FIN | TCP_ACK, c.s_next, c.c_next - 1);
    ++c.s_next;
    c.ack_out();
    c.ack_in();
}

PoolSpec tiny_pool(const char* ports) {
    PoolSpec p;
    p.name = "lab";
    p.addresses = "198.19.0.10";
    p.ports = ports;
    return p;
}

// The public port a SYN went out with, or 0 when it was not forwarded.
uint16_t syn_port(const Sent& s) {
    if (s.verdict() != Verdict::Forward) return 0;
    const auto d = decode(s.o.frame);
    return d ? d->sport : 0;
}

TEST(NatTcpTimeWaitReuse, NewerTimestampTakesAHeldPairOlderIsRefused) {
    NatHarness h({tiny_pool("2000-2001")});
    uint32_t now = 1000;
    const uint32_t host_a = ip("198.18.0.1"), host_b = ip("198.18.0.2");
    TcpConn a1(h, now, host_a, 40000), a2(h, now, host_a, 40001);
    a1.c_ts = a2.c_ts = 5000;
    ASSERT_NO_FATAL_FAILURE(a1.establish());
    ASSERT_NO_FATAL_FAILURE(a2.establish());
    a1.c_ts = a2.c_ts = 5100;  // the closing segments carry the newest TSval
    ASSERT_NO_FATAL_FAILURE(simultaneous_close(a1));
    ASSERT_NO_FATAL_FAILURE(simultaneous_close(a2));
    ASSERT_EQ(h.worker().expire(now + 3500, kBigBudget), 0u);  // both held
    now += 3500;

    // Another host whose clock is behind: the remote would reject its SYN (PAWS).
    TcpConn b(h, now, host_b, 41000);
    b.c_ts = 5099;
    const Sent refused = b.out(TCP_SYN, b.c_isn, 0);
    EXPECT_EQ(refused.verdict(), Verdict::Drop);
    EXPECT_EQ(refused.reason(), DropReason::PortsExhausted);
    EXPECT_EQ(h.counters().pairs_reuse_refused, 1u);
    EXPECT_EQ(h.counters().pairs_reused_timewait, 0u);
    // Ahead: accepted by the remote, so the held pair goes to it.
    b.c_ts = 5200;
    ASSERT_NO_FATAL_FAILURE(b.syn());
    EXPECT_TRUE(b.pub_port == a1.pub_port || b.pub_port == a2.pub_port) << b.pub_port;
    EXPECT_EQ(h.counters().pairs_reused_timewait, 1u);
    EXPECT_EQ(h.worker().sessions().size(), 2u);
    ASSERT_NO_FATAL_FAILURE(b.synack());
    ASSERT_NO_FATAL_FAILURE(b.ack_out());
    EXPECT_EQ(h.counters().drop_total(), 1u);  // the refused SYN only
}

TEST(NatTcpTimeWaitReuse, WithoutTimestampsTheIsnMustBeBeyondTheOldConnection) {
    NatHarness h({tiny_pool("2000-2000")});
    uint32_t now = 1000;
    TcpConn a(h, now, ip("198.18.0.1"), 40000);
    ASSERT_NO_FATAL_FAILURE(a.establish());
    ASSERT_NO_FATAL_FAILURE(simultaneous_close(a));
    TcpConn b(h, now, ip("198.18.0.2"), 41000);
    EXPECT_EQ(syn_port(b.out(TCP_SYN, a.c_next - 10, 0)), 0);  // below: refused
    EXPECT_EQ(h.counters().pairs_reuse_refused, 1u);
    b.c_isn = a.c_next + 100000;
    ASSERT_NO_FATAL_FAILURE(b.syn());
    EXPECT_EQ(b.pub_port, a.pub_port);
    EXPECT_EQ(h.counters().pairs_reused_timewait, 1u);
}

TEST(NatTcpTimeWaitReuse, PairOfTheSameHostIsPreferred) {
    NatHarness h({tiny_pool("2000-2001")});
    uint32_t now = 1000;
    const uint32_t host_a = ip("198.18.0.1"), host_b = ip("198.18.0.2");
    TcpConn a(h, now, host_a, 40000), b(h, now, host_b, 41000);
    a.c_ts = 1000;
    b.c_ts = 500;
    ASSERT_NO_FATAL_FAILURE(a.establish());
    ASSERT_NO_FATAL_FAILURE(b.establish());
    ASSERT_NO_FATAL_FAILURE(simultaneous_close(a));
    ASSERT_NO_FATAL_FAILURE(simultaneous_close(b));
    ASSERT_NE(a.pub_port, b.pub_port);
    // Host a again, newer than both: it gets its own old pair (its clock is the one the remote
    // saw there), whichever the probe meets first.
    TcpConn a2(h, now, host_a, 40001);
    a2.c_ts = 2000;
    ASSERT_NO_FATAL_FAILURE(a2.syn());
    EXPECT_EQ(a2.pub_port, a.pub_port);
    EXPECT_EQ(h.counters().pairs_reused_timewait, 1u);
}

TEST(NatTcpTimeWaitReuse, ExpiredOpenConnectionIsNeverReused) {
    NatHarness h({tiny_pool("2000-2000")});
    uint32_t now = 1000;
    TcpConn a(h, now, ip("198.18.0.1"), 40000);
    a.c_ts = 100;
    ASSERT_NO_FATAL_FAILURE(a.establish());
    now += 7440 * 1000 + 1100;
    h.worker().expire(now, kBigBudget);
    ASSERT_TRUE(only_state(h, TcpState::Expired));
    TcpConn b(h, now, ip("198.18.0.2"), 41000);
    b.c_ts = 1000000;
    b.c_isn = a.c_next + 100000;
    EXPECT_EQ(syn_port(b.out(TCP_SYN, b.c_isn, 0)), 0);
    EXPECT_EQ(h.counters().pairs_reused_timewait, 0u);
}

// ---------------------------------------------------------------------------------------------
// SYN floods (invariant I7): a flooding host recycles its own handshakes; another host keeps
// getting fresh pairs.
// ---------------------------------------------------------------------------------------------

TEST(NatTcpFlood, HostAtItsHandshakeCapRecyclesItsOwnPairs) {
    PoolSpec p = tiny_pool("1024-65535");
    p.max_embryonic_per_host = 16;
    NatHarness h({p});
    const uint32_t flooder = ip("198.18.0.66");
    uint32_t now = 1000;
    std::set<uint16_t> flood_ports;
    for (uint16_t i = 0; i < 100; ++i) {
        TcpConn f(h, now, flooder, static_cast<uint16_t>(10000 + i));
        const uint16_t port = syn_port(f.out(TCP_SYN, 1000u + i, 0));
        ASSERT_NE(port, 0) << "flood SYN " << i << " not forwarded";
        flood_ports.insert(port);
        now += 1;
    }
    // The flood holds its cap and no more, and kept cycling through the same pairs.
    EXPECT_EQ(h.worker().sessions().size(), 16u);
    EXPECT_EQ(h.counters().sessions_reclaimed, 84u);
    EXPECT_EQ(flood_ports.size(), 16u);
    // The oldest went first: the first 84 flows are gone, the last 16 are there.
    TcpConn first(h, now, flooder, 10000);
    EXPECT_EQ(first.out(TCP_ACK, 1001, 1).reason(), DropReason::TcpNotSyn);
    // Another host connects normally, on a pair the flood never touched.
    TcpConn other(h, now, ip("198.18.0.7"), 40000);
    ASSERT_NO_FATAL_FAILURE(other.handshake());
    EXPECT_EQ(flood_ports.count(other.pub_port), 0u);
    EXPECT_EQ(Pool{}.max_embryonic_per_host, 4096u);  // the default
}

TEST(NatTcpFlood, NoPairLeftTakesTheFloodersOldestHandshake) {
    PoolSpec p = tiny_pool("2000-2299");  // 300 ports, no cap: the flood gets them all
    p.max_embryonic_per_host = 0;
    NatHarness h({p});
    const uint32_t flooder = ip("198.18.0.66");
    uint32_t now = 1000;
    uint16_t oldest = 0;
    for (uint16_t i = 0; i < 300; ++i) {
        TcpConn f(h, now, flooder, static_cast<uint16_t>(10000 + i));
        const uint16_t port = syn_port(f.out(TCP_SYN, 1000u + i, 0));
        ASSERT_NE(port, 0);
        if (i == 0) oldest = port;
        now += 10;
    }
    // The flooder itself is refused: it does not take its own handshakes without a cap.
    TcpConn more(h, now, flooder, 20000);
    EXPECT_EQ(more.out(TCP_SYN, 5, 0).reason(), DropReason::PortsExhausted);
    // Another host takes the flooder's oldest handshake (it holds 300, at least 256).
    TcpConn other(h, now, ip("198.18.0.7"), 40000);
    ASSERT_NO_FATAL_FAILURE(other.handshake());
    EXPECT_EQ(other.pub_port, oldest);
    EXPECT_EQ(h.counters().sessions_reclaimed, 1u);
    EXPECT_EQ(h.worker().sessions().size(), 300u);
}

}  // namespace
}  // namespace snatgw::test
