// natperf's test frames (tools/natperf/frame_builder.h) and ARP duties (arp_responder.h):
// checksums verified by full recomputation, our own frames parsed back field by field, every
// truncation of a frame rejected without reading past it, foreign frames told apart.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "arp_responder.h"
#include "byte_order.h"
#include "checksum.h"
#include "frame_builder.h"

using namespace natperf;

namespace {

FrameSpec udp_spec(uint32_t frame_len) {
    FrameSpec f;
    f.proto = Proto::Udp;
    f.frame_len = frame_len;
    f.src_mac = {0x02, 0, 0, 0, 0, 1};
    f.dst_mac = {0x02, 0, 0, 0, 0, 2};
    f.src_ip = 0xc6120064;  // 198.18.0.100
    f.dst_ip = 0xc6130002;  // 198.19.0.2
    f.src_port = 10042;
    f.dst_port = 83;
    f.kind = Kind::Forward;
    f.flags = static_cast<uint8_t>((5 << 1) | kFlagTimestamp);
    f.index = 123456;
    f.tsc = 0x0123456789abcdefull;
    return f;
}

// Full recomputation: IPv4 header sum and L4 sum over pseudo-header + segment fold to 0xffff.
void expect_checksums_valid(const uint8_t* frame) {
    const uint8_t* ip = frame + kEthLen;
    EXPECT_EQ(snatgw::csum::fold(snatgw::csum::partial(ip, kIpLen)), 0xffff);
    const uint32_t total = snatgw::load_be16(ip + 2);
    const uint32_t l4_len = total - kIpLen;
    uint8_t ph[12];
    std::memcpy(ph, ip + 12, 8);
    ph[8] = 0;
    ph[9] = ip[9];
    snatgw::store_be16(ph + 10, static_cast<uint16_t>(l4_len));
    uint32_t sum = snatgw::csum::partial(ph, 12);
    sum = snatgw::csum::partial(ip + kIpLen, l4_len, sum);
    EXPECT_EQ(snatgw::csum::fold(sum), 0xffff);
}

}  // namespace

TEST(NatperfFrame, UdpMinimumFrameFitsAndParses) {
    std::vector<uint8_t> buf(2048, 0xaa);  // dirty buffer: padding must be zeroed
    const FrameSpec f = udp_spec(kMinFrameLen);
    ASSERT_EQ(build_frame(buf.data(), static_cast<uint32_t>(buf.size()), f), 60u);
    expect_checksums_valid(buf.data());
    EXPECT_EQ(buf[59], 0);  // padding zeroed
    ParsedFrame p;
    ASSERT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Ours);
    EXPECT_EQ(p.proto, Proto::Udp);
    EXPECT_EQ(p.kind, Kind::Forward);
    EXPECT_EQ(p.flags, f.flags);
    EXPECT_EQ(p.index, 123456u);
    EXPECT_EQ(p.tsc, f.tsc);
    EXPECT_EQ(p.src_ip, f.src_ip);
    EXPECT_EQ(p.dst_ip, f.dst_ip);
    EXPECT_EQ(p.src_port, 10042);
    EXPECT_EQ(p.dst_port, 83);
    EXPECT_EQ(p.src_mac, f.src_mac);
    EXPECT_EQ(p.dst_mac, f.dst_mac);
}

TEST(NatperfFrame, EverySizeHasValidChecksums) {
    std::vector<uint8_t> buf(2048);
    for (uint32_t len : {60u, 61u, 124u, 508u, 1000u, 1513u, 1514u}) {
        FrameSpec f = udp_spec(len);
        f.index = len * 7919;
        f.src_port = static_cast<uint16_t>(len);
        std::fill(buf.begin(), buf.end(), static_cast<uint8_t>(len));
        ASSERT_EQ(build_frame(buf.data(), static_cast<uint32_t>(buf.size()), f), len);
        expect_checksums_valid(buf.data());
        ParsedFrame p;
        ASSERT_EQ(parse_frame(buf.data(), len, p), ParseStatus::Ours) << len;
        EXPECT_EQ(p.index, len * 7919);
    }
    FrameSpec f = udp_spec(59);
    EXPECT_EQ(build_frame(buf.data(), 2048, f), 0u);
    f = udp_spec(1515);
    EXPECT_EQ(build_frame(buf.data(), 2048, f), 0u);
    f = udp_spec(100);
    EXPECT_EQ(build_frame(buf.data(), 99, f), 0u);
}

TEST(NatperfFrame, TcpSynAndSynAckCarryTheIndex) {
    std::vector<uint8_t> buf(2048);
    FrameSpec f = udp_spec(kMinFrameLen);
    f.proto = Proto::Tcp;
    f.kind = Kind::Phase1;
    ASSERT_EQ(build_frame(buf.data(), 2048, f), 60u);
    expect_checksums_valid(buf.data());
    EXPECT_EQ(buf[kEthLen + kIpLen + 13], 0x02);  // SYN
    ParsedFrame p;
    ASSERT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Ours);
    EXPECT_EQ(p.kind, Kind::Phase1);
    EXPECT_EQ(p.index, 123456u);

    f.kind = Kind::Validation;
    ASSERT_EQ(build_frame(buf.data(), 2048, f), 60u);
    expect_checksums_valid(buf.data());
    EXPECT_EQ(buf[kEthLen + kIpLen + 13], 0x12);  // SYN/ACK
    ASSERT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Ours);
    EXPECT_EQ(p.kind, Kind::Validation);
    EXPECT_EQ(p.index, 123456u);
}

TEST(NatperfFrame, EveryTruncationIsRejected) {
    std::vector<uint8_t> buf(2048);
    for (Proto proto : {Proto::Udp, Proto::Tcp}) {
        FrameSpec f = udp_spec(kMinFrameLen);
        f.proto = proto;
        const uint32_t len = build_frame(buf.data(), 2048, f);
        // Ethernet padding past the IP datagram may be cut; the datagram itself may not.
        const uint32_t datagram_end = kEthLen + snatgw::load_be16(buf.data() + kEthLen + 2);
        for (uint32_t cut = 0; cut < len; ++cut) {
            std::vector<uint8_t> copy(buf.begin(), buf.begin() + cut);  // exact size: ASan sees overreads
            ParsedFrame p;
            const ParseStatus st = parse_frame(copy.data(), cut, p);
            if (cut < datagram_end) {
                EXPECT_EQ(st, ParseStatus::Malformed) << "cut " << cut;
            } else {
                EXPECT_EQ(st, ParseStatus::Ours) << "cut " << cut;
            }
        }
    }
}

TEST(NatperfFrame, ForeignFramesAreToldApart) {
    std::vector<uint8_t> buf(2048);
    const FrameSpec f = udp_spec(kMinFrameLen);
    ParsedFrame p;
    build_frame(buf.data(), 2048, f);
    buf[kEthLen + kIpLen + kUdpLen] ^= 0xff;  // magic
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Foreign);
    build_frame(buf.data(), 2048, f);
    buf[kEthLen + kIpLen + kUdpLen + 2] = 9;  // unknown kind
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Foreign);
    build_frame(buf.data(), 2048, f);
    buf[kEthLen + 9] = 1;  // ICMP
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Foreign);
    build_frame(buf.data(), 2048, f);
    buf[12] = 0x86;  // IPv6 ethertype
    buf[13] = 0xdd;
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Foreign);
    build_frame(buf.data(), 2048, f);
    buf[kEthLen] = 0x65;  // IP version 6
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Malformed);
    build_frame(buf.data(), 2048, f);
    snatgw::store_be16(buf.data() + kEthLen + 2, 200);  // total length beyond the frame
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Malformed);
    build_frame(buf.data(), 2048, f);
    buf[12] = 0x08;
    buf[13] = 0x06;
    EXPECT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Arp);
}

TEST(NatperfFrame, TranslatedFrameStillParses) {
    // What the NAT does: rewrite the source address and port (checksums updated by the DUT).
    std::vector<uint8_t> buf(2048);
    const FrameSpec f = udp_spec(kMinFrameLen);
    build_frame(buf.data(), 2048, f);
    snatgw::store_be32(buf.data() + kEthLen + 12, 0xc6130001);
    snatgw::store_be16(buf.data() + kEthLen + kIpLen, 40000);
    ParsedFrame p;
    ASSERT_EQ(parse_frame(buf.data(), 60, p), ParseStatus::Ours);
    EXPECT_EQ(p.src_ip, 0xc6130001u);
    EXPECT_EQ(p.src_port, 40000);
    EXPECT_EQ(p.index, 123456u);
}

TEST(NatperfArp, AnswersForItsAddressAndLearnsTheGateway) {
    const snatgw::MacAddr ours{0x02, 0, 0, 0, 0, 0x10}, gw{0x02, 0, 0, 0, 0, 0x20};
    ArpState st(ours, 0xc6120064, 0xc6120001);
    uint8_t req[64], out[64];
    // Our request for the gateway, as it goes out.
    ASSERT_EQ(build_gateway_request(st, req, sizeof req), snatgw::kArpFrameLen);
    auto parsed = snatgw::parse_arp(req, snatgw::kArpFrameLen);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->target_ip, 0xc6120001u);
    EXPECT_EQ(parsed->sender_ip, 0xc6120064u);
    // The gateway asks for us: answered, and its MAC learned on the way.
    const uint32_t n = snatgw::build_arp_request(req, sizeof req, gw, 0xc6120001, 0xc6120064);
    const uint32_t r = handle_arp(st, req, n, out, sizeof out);
    ASSERT_EQ(r, snatgw::kArpFrameLen);
    EXPECT_TRUE(st.gateway_known);
    EXPECT_EQ(st.gateway_mac, gw);
    parsed = snatgw::parse_arp(out, r);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->op, snatgw::kArpOpReply);
    EXPECT_EQ(parsed->sender_mac, ours);
    EXPECT_EQ(parsed->target_mac, gw);
    // A request for another address: no answer.
    const uint32_t m = snatgw::build_arp_request(req, sizeof req, gw, 0xc6120001, 0xc6120099);
    EXPECT_EQ(handle_arp(st, req, m, out, sizeof out), 0u);
    // Garbage: ignored.
    EXPECT_EQ(handle_arp(st, req, 10, out, sizeof out), 0u);
    EXPECT_EQ(st.requests_answered, 1u);
}
