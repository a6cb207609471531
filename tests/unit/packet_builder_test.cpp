// Tests for tests/unit/packet_builder.h: the builder produces frames with
// correct checksums, the verifier detects every single-byte corruption and
// truncation, and the decoder round-trips the fields.
#include "packet_builder.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace snatgw::test;

namespace {

const uint32_t kA = ip("10.0.0.1");
const uint32_t kB = ip("198.51.100.7");

std::vector<uint8_t> tcp_frame() {
    PacketBuilder b;
    return b.eth().ipv4(kA, kB).tcp(40000, 443, 1000, 2000, TCP_SYN | TCP_ACK, 29200).tcp_option_wscale(7).payload(33).build();
}
std::vector<uint8_t> udp_frame() {
    PacketBuilder b;
    return b.eth().ipv4(kA, kB).udp(5353, 53).payload(41).build();
}
std::vector<uint8_t> icmp_echo_frame() {
    PacketBuilder b;
    return b.eth().ipv4(kA, kB).icmp_echo(8, 0x4242, 3).payload(56).build();
}
std::vector<uint8_t> embedded_tcp() {
    PacketBuilder b;
    return b.ipv4(kB, kA).ttl(1).tcp(443, 40000, 77, 88, TCP_ACK, 1024).payload(20).build_ip();
}
std::vector<uint8_t> embedded_udp() {
    PacketBuilder b;
    return b.ipv4(kB, kA).udp(53, 5353).payload(17).build_ip();
}
std::vector<uint8_t> icmp_error_frame(const std::vector<uint8_t>& inner, uint8_t type = 11, uint8_t code = 0) {
    PacketBuilder b;
    return b.eth().vlan(7).ipv4(ip("203.0.113.1"), kB).icmp_error(type, code, inner).build();
}

// Flips each byte from l3_offset to the end of the IP packet with several
// masks and expects verification to fail every time.
void expect_every_flip_fails(const std::vector<uint8_t>& frame, const char* name) {
    auto d = decode(frame);
    ASSERT_TRUE(d.has_value()) << name;
    const size_t end = d->l3_offset + d->ip_total_len;
    for (size_t i = d->l3_offset; i < end; ++i) {
        for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xff}, uint8_t{0x5a}}) {
            auto f = frame;
            f[i] ^= mask;
            EXPECT_FALSE(verify_checksums(f).ok) << name << ": flip byte " << i << " mask " << int(mask);
        }
    }
}

void expect_every_truncation_fails(const std::vector<uint8_t>& frame, const char* name) {
    for (size_t n = 0; n < frame.size(); ++n) {
        EXPECT_FALSE(verify_checksums(frame.data(), n).ok) << name << ": truncated to " << n;
    }
}

}  // namespace

TEST(Checksum, Rfc1071Example) {
    // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to 0xddf2 -> checksum 0x220d.
    const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(inet_checksum(data, sizeof data), 0x220d);
}

TEST(Checksum, WellKnownIpv4HeaderExample) {
    const uint8_t hdr[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                             0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(inet_checksum(hdr, sizeof hdr), 0xb861);

    // The builder produces exactly this header for the same fields.
    PacketBuilder b;
    auto pkt = b.ipv4(ip("192.168.0.1"), ip("192.168.0.199")).ip_id(0).df().ttl(64).udp(1, 2).payload(0x73 - 28).build_ip();
    ASSERT_EQ(pkt.size(), 0x73u);
    std::vector<uint8_t> expected(hdr, hdr + 20);
    expected[10] = 0xb8;
    expected[11] = 0x61;
    EXPECT_EQ(std::vector<uint8_t>(pkt.begin(), pkt.begin() + 20), expected);
}

TEST(Checksum, OddLengthPadsHighByte) {
    const uint8_t data[] = {0x12, 0x34, 0x56};
    EXPECT_EQ(inet_checksum(data, 3), static_cast<uint16_t>(~(0x1234 + 0x5600)));
}

TEST(Address, ParseAndFormat) {
    EXPECT_EQ(ip("192.168.0.1"), 0xc0a80001u);
    EXPECT_EQ(ip("0.0.0.0"), 0u);
    EXPECT_EQ(ip("255.255.255.255"), 0xffffffffu);
    EXPECT_EQ(ip_str(0xc0a80001u), "192.168.0.1");
    EXPECT_EQ(ip_str(ip("10.20.30.40")), "10.20.30.40");
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1..2.3", "a.b.c.d",
                            "1.2.3.01", "1.2.3.", "1.2.3.1000"}) {
        EXPECT_THROW(ip(bad), std::invalid_argument) << bad;
    }
    EXPECT_THROW(ip(nullptr), std::invalid_argument);
}

TEST(Builder, TcpFrameVerifiesAndDecodes) {
    auto f = tcp_frame();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_FALSE(d->vlan);
    EXPECT_EQ(d->l3_offset, 14u);
    EXPECT_EQ(d->src, kA);
    EXPECT_EQ(d->dst, kB);
    EXPECT_EQ(d->ttl, 64);
    EXPECT_EQ(d->ip_id, 0x1234);
    EXPECT_FALSE(d->df);
    EXPECT_EQ(d->proto, PROTO_TCP);
    EXPECT_EQ(d->ihl_bytes, 20);
    EXPECT_EQ(d->l4_offset, 34u);
    EXPECT_EQ(d->sport, 40000);
    EXPECT_EQ(d->dport, 443);
    EXPECT_EQ(d->seq, 1000u);
    EXPECT_EQ(d->ack, 2000u);
    EXPECT_EQ(d->tcp_flags, TCP_SYN | TCP_ACK);
    EXPECT_EQ(d->window, 29200);
    EXPECT_EQ(d->tcp_hdr_len, 24);
    EXPECT_EQ(d->ip_total_len, 20 + 24 + 33);
    EXPECT_EQ(d->payload_len, 33u);
    EXPECT_EQ(f.size(), 14u + 20 + 24 + 33);
    // wscale option: NOP, kind 3, len 3, shift 7; data offset 6 words.
    EXPECT_EQ(f[34 + 12], 6 << 4);
    EXPECT_EQ(f[54], 0x01);
    EXPECT_EQ(f[55], 0x03);
    EXPECT_EQ(f[56], 0x03);
    EXPECT_EQ(f[57], 0x07);
    // Payload pattern.
    for (size_t i = 0; i < 33; ++i) EXPECT_EQ(f[d->payload_offset + i], i & 0xff);
    // Default MACs: dst first on the wire.
    EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + 12),
              (std::vector<uint8_t>{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}));
}

TEST(Builder, TtlIdDfDecode) {
    PacketBuilder b;
    auto f = b.eth().ipv4(kA, kB).ttl(1).ip_id(7).df().tos(0xb8).tcp(1, 2, 3, 4, TCP_RST, 0).build();
    EXPECT_TRUE(verify_checksums(f).ok);
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->ttl, 1);
    EXPECT_EQ(d->ip_id, 7);
    EXPECT_TRUE(d->df);
    EXPECT_EQ(d->tos, 0xb8);
    EXPECT_EQ(d->tcp_flags, TCP_RST);
}

TEST(Builder, UdpFrameVerifiesAndDecodes) {
    auto f = udp_frame();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->proto, PROTO_UDP);
    EXPECT_EQ(d->sport, 5353);
    EXPECT_EQ(d->dport, 53);
    EXPECT_NE(d->udp_checksum, 0);
    EXPECT_EQ(d->payload_len, 41u);
}

TEST(Builder, UdpZeroChecksumStaysZero) {
    PacketBuilder b;
    auto f = b.eth().ipv4(kA, kB).udp(1000, 2000).udp_zero_checksum().payload(10).build();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->udp_checksum, 0);
}

TEST(Builder, UdpComputedZeroBecomesFfff) {
    // Choose a 2-byte payload equal to the checksum obtained with payload 0000:
    // then the one's-complement sum becomes 0xffff and the computed checksum 0.
    PacketBuilder b;
    b.eth().ipv4(kA, kB).udp(1000, 2000).payload(std::vector<uint8_t>{0, 0});
    auto d0 = decode(b.build());
    ASSERT_TRUE(d0);
    const uint16_t c = d0->udp_checksum;
    auto f = b.payload(std::vector<uint8_t>{uint8_t(c >> 8), uint8_t(c & 0xff)}).build();
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->udp_checksum, 0xffff);
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
}

TEST(Builder, IcmpEchoVerifiesAndDecodes) {
    auto f = icmp_echo_frame();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->proto, PROTO_ICMP);
    EXPECT_EQ(d->icmp_type, 8);
    EXPECT_EQ(d->icmp_code, 0);
    EXPECT_EQ(d->icmp_id, 0x4242);
    EXPECT_EQ(d->icmp_seq, 3);
    EXPECT_EQ(d->sport, 0x4242);
    EXPECT_EQ(d->dport, 0x4242);
    EXPECT_FALSE(d->has_inner);

    PacketBuilder b2;
    auto reply = b2.eth().ipv4(kB, kA).icmp_echo(0, 9, 1).build();
    EXPECT_TRUE(verify_checksums(reply).ok);
    EXPECT_EQ(decode(reply)->icmp_type, 0);
}

TEST(Builder, VlanAndIpOptionsDecode) {
    PacketBuilder b;
    auto f = b.eth().vlan(100, 5).ipv4(kA, kB).ip_options(8).udp(1, 2).payload(4).build();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    EXPECT_EQ(f[12], 0x81);
    EXPECT_EQ(f[13], 0x00);
    EXPECT_EQ(f[16], 0x08);
    EXPECT_EQ(f[17], 0x00);
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_TRUE(d->vlan);
    EXPECT_EQ(d->vlan_id, 100);
    EXPECT_EQ(d->vlan_pcp, 5);
    EXPECT_EQ(d->l3_offset, 18u);
    EXPECT_EQ(d->ihl_bytes, 28);
    EXPECT_EQ(d->l4_offset, 18u + 28);
    EXPECT_EQ(f[18] & 0x0f, 7);
    for (size_t i = 18 + 20; i < 18 + 27; ++i) EXPECT_EQ(f[i], 0x01);
    EXPECT_EQ(f[18 + 27], 0x00);
    EXPECT_EQ(d->sport, 1);
    EXPECT_EQ(d->dport, 2);
    EXPECT_EQ(d->ip_total_len, 28 + 8 + 4);
    expect_every_flip_fails(f, "vlan+options udp");
}

TEST(Builder, IpOptionsValidation) {
    PacketBuilder b;
    EXPECT_THROW(b.ip_options(3), std::invalid_argument);
    EXPECT_THROW(b.ip_options(44), std::invalid_argument);
    EXPECT_THROW(b.build(), std::logic_error);  // ipv4() not called
    EXPECT_THROW(b.vlan(4096), std::invalid_argument);
}

TEST(Builder, IcmpErrorEmbeddedTcpVerifiesIncludingInner) {
    auto inner = embedded_tcp();
    auto f = icmp_error_frame(inner, 11, 0);
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->icmp_type, 11);
    EXPECT_TRUE(d->has_inner);
    EXPECT_EQ(d->inner_src, kB);
    EXPECT_EQ(d->inner_dst, kA);
    EXPECT_EQ(d->inner_proto, PROTO_TCP);
    EXPECT_EQ(d->inner_sport, 443);
    EXPECT_EQ(d->inner_dport, 40000);
    EXPECT_EQ(d->inner_seq, 77u);
    EXPECT_EQ(d->inner_ttl, 1);
    EXPECT_EQ(d->inner_l3_offset, d->l4_offset + 8);
    EXPECT_EQ(std::vector<uint8_t>(f.begin() + d->inner_l3_offset, f.end()), inner);
}

TEST(Builder, IcmpErrorEmbeddedUdpFragNeeded) {
    auto inner = embedded_udp();
    PacketBuilder b;
    auto f = b.eth().ipv4(ip("203.0.113.1"), kB).icmp_error(3, 4, inner).mtu(1400).build();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->icmp_type, 3);
    EXPECT_EQ(d->icmp_code, 4);
    EXPECT_EQ(d->icmp_mtu, 1400);
    EXPECT_EQ(f[d->l4_offset + 6], 1400 >> 8);
    EXPECT_EQ(f[d->l4_offset + 7], 1400 & 0xff);
    ASSERT_TRUE(d->has_inner);
    EXPECT_EQ(d->inner_proto, PROTO_UDP);
    EXPECT_EQ(d->inner_sport, 53);
    EXPECT_EQ(d->inner_dport, 5353);
}

TEST(Builder, IcmpErrorEmbeddedIcmpEcho) {
    PacketBuilder ib;
    auto inner = ib.ipv4(kB, kA).icmp_echo(8, 0x777, 1).payload(8).build_ip();
    auto f = icmp_error_frame(inner, 3, 1);
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d && d->has_inner);
    EXPECT_EQ(d->inner_proto, PROTO_ICMP);
    EXPECT_EQ(d->inner_icmp_id, 0x777);
    EXPECT_EQ(d->inner_sport, 0x777);
}

TEST(Builder, IcmpErrorTruncatedEmbeddedSkipsInnerL4) {
    auto inner = embedded_tcp();
    inner.resize(28);  // IP header + first 8 bytes of TCP (RFC 792 minimum)
    auto f = icmp_error_frame(inner);
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d && d->has_inner);
    EXPECT_EQ(d->inner_sport, 443);
    EXPECT_EQ(d->inner_dport, 40000);

    // Embedded header itself truncated -> failure.
    auto short_inner = embedded_tcp();
    short_inner.resize(12);
    auto r2 = verify_checksums(icmp_error_frame(short_inner));
    EXPECT_FALSE(r2.ok);
    EXPECT_NE(r2.detail.find("inner ipv4 header truncated"), std::string::npos) << r2.detail;
}

TEST(Verifier, DetectsBadInnerChecksums) {
    {
        auto inner = embedded_tcp();
        inner[20 + 16] ^= 0x01;  // inner TCP checksum
        auto r = verify_checksums(icmp_error_frame(inner));
        EXPECT_FALSE(r.ok);
        EXPECT_NE(r.detail.find("inner tcp checksum"), std::string::npos) << r.detail;
    }
    {
        auto inner = embedded_udp();
        inner[12] ^= 0x01;  // inner source address: breaks inner IP checksum
        auto r = verify_checksums(icmp_error_frame(inner));
        EXPECT_FALSE(r.ok);
        EXPECT_NE(r.detail.find("inner ipv4 header checksum"), std::string::npos) << r.detail;
    }
    {
        auto inner = embedded_udp();
        inner[20 + 7] ^= 0x01;  // inner UDP checksum
        auto r = verify_checksums(icmp_error_frame(inner));
        EXPECT_FALSE(r.ok);
        EXPECT_NE(r.detail.find("inner udp checksum"), std::string::npos) << r.detail;
    }
}

TEST(Verifier, EverySingleByteFlipInIpPacketFails) {
    expect_every_flip_fails(tcp_frame(), "tcp");
    expect_every_flip_fails(udp_frame(), "udp");
    expect_every_flip_fails(icmp_echo_frame(), "icmp echo");
    expect_every_flip_fails(icmp_error_frame(embedded_tcp()), "icmp error tcp");
    expect_every_flip_fails(icmp_error_frame(embedded_udp()), "icmp error udp");
}

TEST(Verifier, UdpZeroChecksumFlipsInHeadersFail) {
    PacketBuilder b;
    auto f = b.eth().ipv4(kA, kB).udp(1000, 2000).udp_zero_checksum().payload(10).build();
    // Without a UDP checksum only the IP header and the UDP length are protected.
    for (size_t i = 14; i < 14 + 20; ++i) {
        auto g = f;
        g[i] ^= 0x01;
        EXPECT_FALSE(verify_checksums(g).ok) << "ip byte " << i;
    }
    for (size_t i = 34 + 4; i < 34 + 8; ++i) {  // UDP length, checksum
        auto g = f;
        g[i] ^= 0x01;
        EXPECT_FALSE(verify_checksums(g).ok) << "udp byte " << i;
    }
}

TEST(Verifier, EveryTruncationFails) {
    expect_every_truncation_fails(tcp_frame(), "tcp");
    expect_every_truncation_fails(udp_frame(), "udp");
    expect_every_truncation_fails(icmp_echo_frame(), "icmp echo");
    expect_every_truncation_fails(icmp_error_frame(embedded_tcp()), "icmp error");
    EXPECT_FALSE(verify_checksums(nullptr, 0).ok);
}

TEST(Verifier, DetailNamesTheProblem) {
    PacketBuilder b;
    b.eth().ipv4(kA, kB).tcp(1, 2, 3, 4, TCP_ACK, 100).payload(5);
    auto good = decode(b.build());
    ASSERT_TRUE(good);
    auto bad = b.l4_checksum_override(0x1234).build();
    auto r = verify_checksums(bad);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.detail, "outer tcp checksum 0x1234 expected " + [&] {
        std::string s = "0x";
        const char* hx = "0123456789abcdef";
        for (int sh = 12; sh >= 0; sh -= 4) s += hx[(good->l4_checksum >> sh) & 0xf];
        return s;
    }());

    PacketBuilder b2;
    auto bad_ip = b2.eth().ipv4(kA, kB).udp(1, 2).ip_checksum_override(0).build();
    auto r2 = verify_checksums(bad_ip);
    EXPECT_FALSE(r2.ok);
    EXPECT_EQ(r2.detail.rfind("outer ipv4 header checksum 0x0000 expected 0x", 0), 0u) << r2.detail;

    std::vector<uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    EXPECT_FALSE(verify_checksums(arp).ok);
    EXPECT_FALSE(decode(arp).has_value());
}

TEST(Verifier, AcceptsEthernetPadding) {
    PacketBuilder b;
    auto f = b.eth().ipv4(kA, kB).tcp(1, 2, 0, 0, TCP_SYN, 1000).pad_to(60).build();
    EXPECT_EQ(f.size(), 60u);
    EXPECT_TRUE(verify_checksums(f).ok);
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->ip_total_len, 40);
}

TEST(Verifier, NonFirstFragmentChecksOnlyIpHeader) {
    PacketBuilder b;
    auto f = b.eth().ipv4(kA, kB).frag(185, false).ip_proto(PROTO_UDP).payload(100).build();
    auto r = verify_checksums(f);
    EXPECT_TRUE(r.ok) << r.detail;
    auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->frag_offset, 185);
    EXPECT_EQ(d->sport, 0);
}

TEST(Decode, RejectsShortInput) {
    auto f = tcp_frame();
    for (size_t n = 0; n < 14 + 20 + 24 + 33; ++n) {
        EXPECT_FALSE(decode(f.data(), n).has_value()) << n;
    }
    EXPECT_FALSE(decode(nullptr, 0).has_value());
}
