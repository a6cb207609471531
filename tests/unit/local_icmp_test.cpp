// LocalIcmp*: echo replies built in place from requests (plain, tagged, with IP options, padded),
// ICMP errors about forwarded packets (fields, quoted bytes, 576-byte limit, every case RFC 1812
// forbids, truncations) and the token bucket that rate limits them. Every frame built is checked
// with verify_checksums (which also verifies the quoted packet when it is complete).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "local_icmp.h"
#include "packet_builder.h"

namespace snatgw::test {
namespace {

const MacAddr kGwMac{0x02, 0xaa, 0, 0, 0, 0x01};
const MacAddr kHostMac{0x02, 0xbb, 0, 0, 0, 0x02};

PacketBuilder echo_request(const char* from, const char* to) {
    PacketBuilder b;
    b.eth(kHostMac, kGwMac).ipv4(ip(from), ip(to)).ttl(63).ip_id(0x4242);
    b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, 0x1234, 7).payload(56);
    return b;
}

MacAddr mac_at(const std::vector<uint8_t>& f, size_t off) {
    return {f[off], f[off + 1], f[off + 2], f[off + 3], f[off + 4], f[off + 5]};
}

// Runs build_echo_reply and checks the reply against the request it came from.
void expect_echo_reply(std::vector<uint8_t> frame, const std::string& what) {
    SCOPED_TRACE(what);
    const auto req = decode(frame);
    ASSERT_TRUE(req);
    const std::vector<uint8_t> req_payload(frame.begin() + static_cast<std::ptrdiff_t>(req->payload_offset),
                                           frame.begin() + static_cast<std::ptrdiff_t>(req->payload_offset + req->payload_len));
    const uint32_t n = build_echo_reply(frame.data(), static_cast<uint32_t>(frame.size()));
    ASSERT_EQ(n, req->l3_offset + 20 + 8 + req->payload_len);
    frame.resize(n);
    const ChecksumReport cs = verify_checksums(frame);
    EXPECT_TRUE(cs.ok) << cs.detail;
    const auto rep = decode(frame);
    ASSERT_TRUE(rep);
    EXPECT_EQ(mac_at(frame, 0), kHostMac);
    EXPECT_EQ(mac_at(frame, 6), kGwMac);
    EXPECT_EQ(rep->vlan, req->vlan);
    EXPECT_EQ(rep->vlan_id, req->vlan_id);
    EXPECT_EQ(rep->src, req->dst);
    EXPECT_EQ(rep->dst, req->src);
    EXPECT_EQ(rep->ttl, 64);
    EXPECT_EQ(rep->ihl_bytes, 20);
    EXPECT_EQ(rep->proto, PROTO_ICMP);
    EXPECT_EQ(rep->icmp_type, ICMP_TYPE_ECHO_REPLY);
    EXPECT_EQ(rep->icmp_code, 0);
    EXPECT_EQ(rep->icmp_id, req->icmp_id);
    EXPECT_EQ(rep->icmp_seq, req->icmp_seq);
    EXPECT_FALSE(rep->mf);
    EXPECT_EQ(rep->frag_offset, 0);
    EXPECT_EQ(std::vector<uint8_t>(frame.begin() + static_cast<std::ptrdiff_t>(rep->payload_offset), frame.end()),
              req_payload);
}

TEST(LocalIcmpEcho, RequestBecomesReply) {
    expect_echo_reply(echo_request("198.18.0.2", "198.18.0.1").build(), "plain");
    expect_echo_reply(echo_request("198.19.0.2", "198.19.0.10").vlan(100, 3).build(), "vlan");
    expect_echo_reply(echo_request("198.18.0.2", "198.18.0.1").ip_options(8).build(), "ip options");
    expect_echo_reply(echo_request("198.18.0.2", "198.18.0.1").payload(0).pad_to(60).build(), "padded");
    expect_echo_reply(echo_request("198.18.0.2", "198.18.0.1").payload(1).build(), "odd length");
    expect_echo_reply(echo_request("198.18.0.2", "198.18.0.1").payload(1472).build(), "full size");
}

TEST(LocalIcmpEcho, ChecksumIsRightForAllIdentifiersAndSequences) {
    // The incremental update must hold across the 0x0000/0xffff corner cases.
    for (uint16_t id : {0x0000, 0x0001, 0x7fff, 0xf7ff, 0xffff})
        for (uint16_t seq : {0x0000, 0x0800, 0xffff}) {
            PacketBuilder b = echo_request("198.18.0.2", "198.18.0.1");
            b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, id, seq).payload(0);
            expect_echo_reply(b.build(), "id " + std::to_string(id) + " seq " + std::to_string(seq));
        }
}

TEST(LocalIcmpEcho, OnlyWellFormedEchoRequestsAreAnswered) {
    struct Case {
        const char* what;
        std::vector<uint8_t> frame;
    };
    const std::vector<Case> cases = {
        {"echo reply", PacketBuilder().ipv4(ip("198.18.0.2"), ip("198.18.0.1")).icmp_echo(0, 1, 1).build()},
        {"udp", PacketBuilder().ipv4(ip("198.18.0.2"), ip("198.18.0.1")).udp(1, 7).payload(8).build()},
        {"tcp", PacketBuilder().ipv4(ip("198.18.0.2"), ip("198.18.0.1")).tcp(1, 7).build()},
        {"bad icmp checksum", echo_request("198.18.0.2", "198.18.0.1").l4_checksum_override(0x1111).build()},
        {"bad ip checksum", echo_request("198.18.0.2", "198.18.0.1").ip_checksum_override(0x1111).build()},
        {"fragment", echo_request("198.18.0.2", "198.18.0.1").frag(0, true).build()},
        {"from 0.0.0.0", echo_request("0.0.0.0", "198.18.0.1").build()},
        {"from broadcast", echo_request("255.255.255.255", "198.18.0.1").build()},
        {"from multicast", echo_request("224.0.0.5", "198.18.0.1").build()},
        {"from loopback", echo_request("127.0.0.1", "198.18.0.1").build()},
        {"error", PacketBuilder()
                      .ipv4(ip("198.18.0.2"), ip("198.18.0.1"))
                      .icmp_error(11, 0, PacketBuilder().ipv4(ip("198.18.0.1"), ip("198.18.0.2")).udp(1, 2).build_ip())
                      .build()},
    };
    for (const Case& c : cases) {
        std::vector<uint8_t> f = c.frame;
        const std::vector<uint8_t> before = f;
        EXPECT_EQ(build_echo_reply(f.data(), static_cast<uint32_t>(f.size())), 0u) << c.what;
        EXPECT_EQ(f, before) << c.what << ": frame changed although no reply was built";
    }
    EXPECT_EQ(build_echo_reply(nullptr, 100), 0u);
}

TEST(LocalIcmpEcho, EveryTruncationIsRejected) {
    const std::vector<uint8_t> full = echo_request("198.18.0.2", "198.18.0.1").payload(12).build();
    for (size_t n = 0; n < full.size(); ++n) {
        std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ(build_echo_reply(cut.data(), static_cast<uint32_t>(n)), 0u) << n;
    }
}

// ---------------------------------------------------------------------------------------------

// A packet from an inside host to the server, as it arrives at the gateway with its TTL run out.
PacketBuilder expiring(uint8_t ttl = 1) {
    PacketBuilder b;
    b.ipv4(ip("198.18.0.2"), ip("198.19.0.2")).ttl(ttl);
    return b;
}

// build_icmp_error(time exceeded) about orig into out (cap bytes).
uint32_t time_exceeded(uint8_t* out, uint32_t cap, const uint8_t* orig, size_t orig_len) {
    return build_icmp_error(out, cap, orig, static_cast<uint32_t>(orig_len), 11, 0, ip("198.18.0.1"),
                            kGwMac, kHostMac);
}

// The original packet (as it arrived at the gateway) and the error built about it.
struct Built {
    std::vector<uint8_t> orig;
    std::vector<uint8_t> err;
};

Built make_error(const PacketBuilder& b, uint8_t type, uint8_t code, uint32_t rest = 0) {
    Built r;
    r.orig = b.build();
    std::vector<uint8_t> out(2048, 0xee);
    const uint32_t n = build_icmp_error(out.data(), static_cast<uint32_t>(out.size()), r.orig.data(),
                                        static_cast<uint32_t>(r.orig.size()), type, code,
                                        ip("198.18.0.1"), kGwMac, kHostMac, rest);
    out.resize(n);
    r.err = out;
    return r;
}

// Checks an error frame: addresses, TTL, type/code, checksums, and that it quotes exactly the
// first `quoted` bytes of the original IP packet.
void expect_error(const Built& b, uint8_t type, uint8_t code, size_t quoted) {
    ASSERT_FALSE(b.err.empty());
    const ChecksumReport cs = verify_checksums(b.err);
    EXPECT_TRUE(cs.ok) << cs.detail;
    const auto o = decode(b.orig);
    const auto e = decode(b.err);
    ASSERT_TRUE(o && e);
    EXPECT_EQ(mac_at(b.err, 0), kHostMac);
    EXPECT_EQ(mac_at(b.err, 6), kGwMac);
    EXPECT_EQ(e->vlan, o->vlan);
    EXPECT_EQ(e->vlan_id, o->vlan_id);
    EXPECT_EQ(e->src, ip("198.18.0.1"));
    EXPECT_EQ(e->dst, o->src);
    EXPECT_EQ(e->ttl, 64);
    EXPECT_EQ(e->proto, PROTO_ICMP);
    EXPECT_EQ(e->icmp_type, type);
    EXPECT_EQ(e->icmp_code, code);
    EXPECT_EQ(e->ip_total_len, 20 + 8 + quoted);
    EXPECT_LE(e->ip_total_len, 576);
    ASSERT_TRUE(e->has_inner);
    EXPECT_EQ(e->inner_src, o->src);
    EXPECT_EQ(e->inner_dst, o->dst);
    EXPECT_EQ(e->inner_ttl, o->ttl);
    ASSERT_EQ(e->payload_len, quoted);
    const auto orig_ip = b.orig.begin() + static_cast<std::ptrdiff_t>(o->l3_offset);
    EXPECT_EQ(std::vector<uint8_t>(b.err.begin() + static_cast<std::ptrdiff_t>(e->payload_offset),
                                   b.err.begin() + static_cast<std::ptrdiff_t>(e->payload_offset + quoted)),
              std::vector<uint8_t>(orig_ip, orig_ip + static_cast<std::ptrdiff_t>(quoted)));
}

TEST(LocalIcmpError, TimeExceededQuotesTheWholeSmallPacket) {
    const Built b = make_error(
        expiring().eth(kHostMac, kGwMac).udp(33434, 33435).payload(32), 11, 0);
    expect_error(b, 11, 0, 20 + 8 + 32);
    const auto e = decode(b.err);
    EXPECT_EQ(e->inner_sport, 33434);
    EXPECT_EQ(e->inner_dport, 33435);
    EXPECT_EQ(e->inner_ttl, 1);
    EXPECT_EQ(e->tos, 0xc0);
}

TEST(LocalIcmpError, LargePacketIsQuotedUpTo576Bytes) {
    const Built b = make_error(expiring().tcp(40000, 80, 1, 2).payload(1400), 11, 0);
    expect_error(b, 11, 0, 576 - 28);
    EXPECT_EQ(b.err.size(), 14u + 576u);
    const auto e = decode(b.err);
    EXPECT_EQ(e->inner_sport, 40000);
    EXPECT_EQ(e->inner_seq, 1u);
}

TEST(LocalIcmpError, OptionsVlanAndPaddingOfTheOriginal) {
    // IP options are quoted with the header; Ethernet padding is not (the total length counts).
    const Built opt = make_error(expiring().ip_options(12).udp(1, 2).payload(4), 11, 0);
    expect_error(opt, 11, 0, 32 + 8 + 4);
    const Built pad = make_error(expiring().udp(1, 2).pad_to(60), 11, 0);
    expect_error(pad, 11, 0, 28);
    const Built tagged = make_error(expiring().vlan(42, 5).udp(1, 2).payload(10), 11, 0);
    expect_error(tagged, 11, 0, 38);
    EXPECT_EQ(decode(tagged.err)->vlan_pcp, 5);
}

TEST(LocalIcmpError, DestinationUnreachableCarriesTheMtu) {
    const Built b = make_error(expiring(64).df().udp(1, 2).payload(100), ICMP_TYPE_DEST_UNREACH,
                               ICMP_CODE_FRAG_NEEDED, 1400);
    expect_error(b, ICMP_TYPE_DEST_UNREACH, ICMP_CODE_FRAG_NEEDED, 128);
    EXPECT_EQ(decode(b.err)->icmp_mtu, 1400);
    const Built h = make_error(expiring(64).udp(1, 2), ICMP_TYPE_DEST_UNREACH, 1);
    expect_error(h, ICMP_TYPE_DEST_UNREACH, 1, 28);
}

TEST(LocalIcmpError, EchoAndFirstFragmentsGetErrors) {
    // traceroute -I probes are echo requests; a first fragment carries the L4 header.
    const Built echo = make_error(expiring().icmp_echo(8, 9, 1).payload(20), 11, 0);
    expect_error(echo, 11, 0, 48);
    const Built first = make_error(expiring().frag(0, true).udp(1, 2).payload(64), 11, 0);
    ASSERT_EQ(first.err.size(), 14u + 28 + 92);
    EXPECT_TRUE(verify_checksums(first.err).ok) << verify_checksums(first.err).detail;
}

TEST(LocalIcmpError, NeverAboutErrorsFragmentsOrSpecialAddresses) {
    const std::vector<uint8_t> inner = PacketBuilder().ipv4(ip("198.19.0.2"), ip("198.18.0.2")).udp(1, 2).build_ip();
    struct Case {
        const char* what;
        PacketBuilder b;
    };
    auto base = [](const char* src, const char* dst) {
        PacketBuilder b;
        b.ipv4(ip(src), ip(dst)).ttl(1);
        return b;
    };
    std::vector<Case> cases = {
        {"time exceeded", base("198.18.0.2", "198.19.0.2").icmp_error(11, 0, inner)},
        {"dest unreachable", base("198.18.0.2", "198.19.0.2").icmp_error(3, 3, inner)},
        {"parameter problem", base("198.18.0.2", "198.19.0.2").icmp_error(12, 0, inner)},
        {"redirect", base("198.18.0.2", "198.19.0.2").icmp_error(5, 1, inner)},
        {"unknown icmp type", base("198.18.0.2", "198.19.0.2").icmp_error(44, 0, inner)},
        {"icmp without header", base("198.18.0.2", "198.19.0.2").ip_proto(PROTO_ICMP)},
        {"later fragment", base("198.18.0.2", "198.19.0.2").frag(10, false).ip_proto(PROTO_UDP).payload(16)},
        {"from 0.0.0.0", base("0.0.0.0", "198.19.0.2").udp(1, 2)},
        {"from broadcast", base("255.255.255.255", "198.19.0.2").udp(1, 2)},
        {"from multicast", base("239.1.1.1", "198.19.0.2").udp(1, 2)},
        {"from loopback", base("127.0.0.1", "198.19.0.2").udp(1, 2)},
        {"from class e", base("240.0.0.1", "198.19.0.2").udp(1, 2)},
        {"to broadcast", base("198.18.0.2", "255.255.255.255").udp(1, 2)},
        {"to multicast", base("198.18.0.2", "224.0.0.251").udp(1, 2)},
        {"bad ip checksum", base("198.18.0.2", "198.19.0.2").udp(1, 2).ip_checksum_override(0x1111)},
    };
    std::vector<uint8_t> out(1024, 0xee);
    for (const Case& c : cases) {
        const std::vector<uint8_t> f = c.b.build();
        EXPECT_EQ(time_exceeded(out.data(), 1024, f.data(), f.size()), 0u) << c.what;
    }
    // Not IPv4 at all: an ARP frame.
    std::vector<uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    EXPECT_EQ(time_exceeded(out.data(), 1024, arp.data(), arp.size()), 0u);
    EXPECT_EQ(time_exceeded(out.data(), 1024, nullptr, 60), 0u);
}

TEST(LocalIcmpError, TruncatedOriginalOrSmallBufferGivesNothing) {
    const std::vector<uint8_t> full = expiring().vlan(7).udp(1, 2).payload(10).build();
    std::vector<uint8_t> out(1024, 0xee);
    for (size_t n = 0; n < full.size(); ++n) {
        std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_EQ(time_exceeded(out.data(), 1024, cut.data(), n), 0u) << n;
    }
    const uint32_t need = 18 + 20 + 8 + 38;
    std::vector<uint8_t> small(need - 1, 0xee);
    EXPECT_EQ(time_exceeded(small.data(), need - 1, full.data(), full.size()), 0u);
    for (uint8_t b : small) EXPECT_EQ(b, 0xee);
    std::vector<uint8_t> exact(need, 0);
    EXPECT_EQ(time_exceeded(exact.data(), need, full.data(), full.size()), need);
}

// ---------------------------------------------------------------------------------------------

TEST(LocalIcmpRateLimit, BurstThenRate) {
    TokenBucket tb(10, 3);  // 10 per second, 3 saved
    EXPECT_TRUE(tb.take(1'000));
    EXPECT_TRUE(tb.take(1'000));
    EXPECT_TRUE(tb.take(1'000));
    EXPECT_FALSE(tb.take(1'000));
    EXPECT_FALSE(tb.take(1'099));  // 0.99 token
    EXPECT_TRUE(tb.take(1'100));
    EXPECT_FALSE(tb.take(1'100));
    // Over 10 s at most 10/s (+ the burst) get through, however often we ask.
    int granted = 0;
    for (uint64_t t = 2'000; t < 12'000; ++t) granted += tb.take(t) ? 1 : 0;
    EXPECT_GE(granted, 100);
    EXPECT_LE(granted, 103);
}

TEST(LocalIcmpRateLimit, SlowRatesLongPausesAndClockSteps) {
    TokenBucket slow(1, 1);
    EXPECT_TRUE(slow.take(0));
    EXPECT_FALSE(slow.take(999));
    EXPECT_TRUE(slow.take(1'000));
    // A very long pause fills the bucket to the burst only (no overflow).
    EXPECT_TRUE(slow.take(UINT64_C(1) << 62));
    EXPECT_FALSE(slow.take(UINT64_C(1) << 62));
    // The clock going back does not mint tokens.
    EXPECT_FALSE(slow.take(5));
    TokenBucket big(1'000'000, 1'000'000);
    for (int i = 0; i < 1'000'000; ++i) ASSERT_TRUE(big.take(0));
    EXPECT_FALSE(big.take(0));
    EXPECT_TRUE(big.take(1));
    TokenBucket none(0, 2);
    EXPECT_TRUE(none.take(0));
    EXPECT_TRUE(none.take(10'000));
    EXPECT_FALSE(none.take(100'000));
}

}  // namespace
}  // namespace snatgw::test
