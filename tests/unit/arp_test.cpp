// Arp*: ARP parsing (well-formed, tagged, every malformed variant and truncation), the frames the
// gateway builds (checked byte by byte against hand-written frames), and the per-port responder.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

#include "arp.h"
#include "packet_builder.h"

namespace snatgw::test {
namespace {

const MacAddr kOurMac{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01};
const MacAddr kHostMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

// An ARP frame written field by field, independently of the code under test.
struct RawArp {
    MacAddr eth_dst = kBroadcastMac;
    MacAddr eth_src = kHostMac;
    bool vlan = false;
    uint16_t tci = 0;
    uint16_t ethertype = 0x0806;
    uint16_t htype = 1, ptype = 0x0800;
    uint8_t hlen = 6, plen = 4;
    uint16_t op = 1;
    MacAddr sha = kHostMac;
    uint32_t spa = 0;
    MacAddr tha{};
    uint32_t tpa = 0;
    size_t pad_to = 0;

    std::vector<uint8_t> bytes() const {
        std::vector<uint8_t> f;
        auto be16 = [&f](uint16_t v) {
            f.push_back(static_cast<uint8_t>(v >> 8));
            f.push_back(static_cast<uint8_t>(v));
        };
        auto be32 = [&f](uint32_t v) {
            for (int s = 24; s >= 0; s -= 8) f.push_back(static_cast<uint8_t>(v >> s));
        };
        auto mac = [&f](const MacAddr& m) { f.insert(f.end(), m.begin(), m.end()); };
        mac(eth_dst);
        mac(eth_src);
        if (vlan) {
            be16(0x8100);
            be16(tci);
        }
        be16(ethertype);
        be16(htype);
        be16(ptype);
        f.push_back(hlen);
        f.push_back(plen);
        be16(op);
        mac(sha);
        be32(spa);
        mac(tha);
        be32(tpa);
        if (f.size() < pad_to) f.resize(pad_to, 0);
        return f;
    }
};

RawArp who_has(const char* target, const char* sender) {
    RawArp r;
    r.spa = ip(sender);
    r.tpa = ip(target);
    return r;
}

// ---------------------------------------------------------------------------------------------

TEST(ArpFormat, MacIsLowerCaseColonSeparated) {
    EXPECT_EQ(format_mac(MacAddr{0x02, 0x00, 0xab, 0xcd, 0xef, 0x09}), "02:00:ab:cd:ef:09");
    EXPECT_EQ(format_mac(kBroadcastMac), "ff:ff:ff:ff:ff:ff");
    EXPECT_TRUE(is_unicast_mac(kHostMac));
    EXPECT_FALSE(is_unicast_mac(kBroadcastMac));
    EXPECT_FALSE(is_unicast_mac(kZeroMac));
    EXPECT_FALSE(is_unicast_mac(MacAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}));
}

TEST(ArpParse, RequestFieldsAreDecoded) {
    RawArp r = who_has("198.18.0.1", "198.18.0.2");
    r.tha = MacAddr{1, 2, 3, 4, 5, 6};
    r.pad_to = 60;
    const std::vector<uint8_t> f = r.bytes();
    const auto p = parse_arp(f.data(), static_cast<uint32_t>(f.size()));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->op, kArpOpRequest);
    EXPECT_EQ(p->sender_mac, kHostMac);
    EXPECT_EQ(p->sender_ip, ip("198.18.0.2"));
    EXPECT_EQ(p->target_mac, (MacAddr{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(p->target_ip, ip("198.18.0.1"));
    EXPECT_FALSE(p->vlan);
}

TEST(ArpParse, ReplyAndUnpaddedFramesParse) {
    RawArp r = who_has("198.18.0.2", "198.18.0.1");
    r.op = 2;
    const std::vector<uint8_t> f = r.bytes();  // 42 bytes, no padding
    ASSERT_EQ(f.size(), 42u);
    const auto p = parse_arp(f.data(), 42);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->op, kArpOpReply);
}

TEST(ArpParse, OneVlanTagIsAccepted) {
    RawArp r = who_has("198.19.0.1", "198.19.0.2");
    r.vlan = true;
    r.tci = 0x2064;  // pcp 1, vid 100
    const std::vector<uint8_t> f = r.bytes();
    const auto p = parse_arp(f.data(), static_cast<uint32_t>(f.size()));
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->vlan);
    EXPECT_EQ(p->vlan_tci, 0x2064);
    EXPECT_EQ(p->target_ip, ip("198.19.0.1"));
}

TEST(ArpParse, NonEthernetIpv4ArpIsRejected) {
    const RawArp base = who_has("198.18.0.1", "198.18.0.2");
    std::vector<RawArp> bad(7, base);
    bad[0].htype = 6;        // IEEE 802
    bad[1].ptype = 0x86dd;   // IPv6
    bad[2].hlen = 8;
    bad[3].plen = 16;
    bad[4].op = 3;           // RARP request
    bad[5].op = 0;
    bad[6].ethertype = 0x0800;
    for (size_t i = 0; i < bad.size(); ++i) {
        const std::vector<uint8_t> f = bad[i].bytes();
        EXPECT_FALSE(parse_arp(f.data(), static_cast<uint32_t>(f.size()))) << "variant " << i;
    }
    // Two stacked tags (QinQ) are not parsed.
    RawArp q = base;
    q.vlan = true;
    q.ethertype = 0x8100;
    std::vector<uint8_t> f = q.bytes();
    EXPECT_FALSE(parse_arp(f.data(), static_cast<uint32_t>(f.size())));
    EXPECT_FALSE(parse_arp(nullptr, 60));
}

TEST(ArpParse, EveryTruncationIsRejected) {
    for (bool vlan : {false, true}) {
        RawArp r = who_has("198.18.0.1", "198.18.0.2");
        r.vlan = vlan;
        const std::vector<uint8_t> full = r.bytes();
        for (size_t n = 0; n < full.size(); ++n) {
            // A fresh heap buffer of exactly n bytes, so ASan catches any read beyond it.
            std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
            EXPECT_FALSE(parse_arp(cut.data(), static_cast<uint32_t>(n))) << "len " << n << " vlan " << vlan;
        }
        EXPECT_TRUE(parse_arp(full.data(), static_cast<uint32_t>(full.size())));
    }
}

TEST(ArpParse, IpFrameIsNotArp) {
    const std::vector<uint8_t> f = PacketBuilder().ipv4(ip("198.18.0.2"), ip("198.19.0.2")).udp(1, 2).payload(30).build();
    EXPECT_FALSE(parse_arp(f.data(), static_cast<uint32_t>(f.size())));
}

// ---------------------------------------------------------------------------------------------

TEST(ArpBuild, ReplyMatchesHandWrittenFrame) {
    const std::vector<uint8_t> req = who_has("198.18.0.1", "198.18.0.2").bytes();
    const auto p = parse_arp(req.data(), static_cast<uint32_t>(req.size()));
    ASSERT_TRUE(p);
    uint8_t out[128];
    std::fill(std::begin(out), std::end(out), 0xee);
    ASSERT_EQ(build_arp_reply(out, sizeof out, *p, kOurMac), kArpFrameLen);

    RawArp want;
    want.eth_dst = kHostMac;
    want.eth_src = kOurMac;
    want.op = 2;
    want.sha = kOurMac;
    want.spa = ip("198.18.0.1");
    want.tha = kHostMac;
    want.tpa = ip("198.18.0.2");
    want.pad_to = 60;
    EXPECT_EQ(std::vector<uint8_t>(out, out + kArpFrameLen), want.bytes());
    EXPECT_EQ(out[kArpFrameLen], 0xee) << "wrote beyond the frame";
}

TEST(ArpBuild, ReplyKeepsTheRequestsVlanTag) {
    RawArp r = who_has("198.19.0.10", "198.19.0.2");
    r.vlan = true;
    r.tci = 0x0064;
    const std::vector<uint8_t> req = r.bytes();
    const auto p = parse_arp(req.data(), static_cast<uint32_t>(req.size()));
    ASSERT_TRUE(p);
    uint8_t out[64];
    ASSERT_EQ(build_arp_reply(out, sizeof out, *p, kOurMac), 60u);
    const auto back = parse_arp(out, 60);
    ASSERT_TRUE(back);
    EXPECT_TRUE(back->vlan);
    EXPECT_EQ(back->vlan_tci, 0x0064);
    EXPECT_EQ(back->op, kArpOpReply);
    EXPECT_EQ(back->sender_ip, ip("198.19.0.10"));
    EXPECT_EQ(back->sender_mac, kOurMac);
    EXPECT_EQ(back->target_ip, ip("198.19.0.2"));
    EXPECT_EQ(back->target_mac, kHostMac);
    // Padding after the 46 bytes of a tagged ARP frame is zero.
    for (uint32_t i = 46; i < 60; ++i) EXPECT_EQ(out[i], 0) << i;
}

TEST(ArpBuild, RequestMatchesHandWrittenFrame) {
    uint8_t out[60];
    ASSERT_EQ(build_arp_request(out, sizeof out, kOurMac, ip("198.19.0.1"), ip("198.19.0.2")), 60u);
    RawArp want;
    want.eth_dst = kBroadcastMac;
    want.eth_src = kOurMac;
    want.sha = kOurMac;
    want.spa = ip("198.19.0.1");
    want.tpa = ip("198.19.0.2");
    want.pad_to = 60;
    EXPECT_EQ(std::vector<uint8_t>(out, out + 60), want.bytes());
}

TEST(ArpBuild, GratuitousArpAnnouncesOurAddress) {
    uint8_t out[60];
    ASSERT_EQ(build_gratuitous_arp(out, sizeof out, kOurMac, ip("198.19.0.11")), 60u);
    const auto g = parse_arp(out, 60);
    ASSERT_TRUE(g);
    EXPECT_EQ(g->op, kArpOpRequest);
    EXPECT_EQ(g->sender_ip, ip("198.19.0.11"));
    EXPECT_EQ(g->target_ip, ip("198.19.0.11"));
    EXPECT_EQ(g->sender_mac, kOurMac);
    EXPECT_EQ((MacAddr{out[0], out[1], out[2], out[3], out[4], out[5]}), kBroadcastMac);
    EXPECT_EQ((MacAddr{out[6], out[7], out[8], out[9], out[10], out[11]}), kOurMac);
}

TEST(ArpBuild, TooSmallBufferWritesNothing) {
    const std::vector<uint8_t> req = who_has("198.18.0.1", "198.18.0.2").bytes();
    const auto p = parse_arp(req.data(), static_cast<uint32_t>(req.size()));
    ASSERT_TRUE(p);
    std::vector<uint8_t> out(59, 0xee);
    EXPECT_EQ(build_arp_reply(out.data(), 59, *p, kOurMac), 0u);
    EXPECT_EQ(build_arp_request(out.data(), 59, kOurMac, 1, 2), 0u);
    EXPECT_EQ(build_gratuitous_arp(out.data(), 59, kOurMac, 1), 0u);
    EXPECT_EQ(build_arp_request(nullptr, 60, kOurMac, 1, 2), 0u);
    for (uint8_t b : out) EXPECT_EQ(b, 0xee);
}

// ---------------------------------------------------------------------------------------------

ArpPacket parsed(const RawArp& r) {
    const std::vector<uint8_t> f = r.bytes();
    return *parse_arp(f.data(), static_cast<uint32_t>(f.size()));
}

TEST(ArpResponder, AnswersOnlyForItsAddresses) {
    const ArpResponder outside(kOurMac, {ip("198.19.0.11"), ip("198.19.0.1"), ip("198.19.0.10"), ip("198.19.0.1")});
    EXPECT_EQ(outside.addresses().size(), 3u);
    EXPECT_TRUE(outside.answers_for(ip("198.19.0.1")));
    EXPECT_TRUE(outside.answers_for(ip("198.19.0.10")));
    EXPECT_TRUE(outside.answers_for(ip("198.19.0.11")));
    EXPECT_FALSE(outside.answers_for(ip("198.19.0.12")));
    EXPECT_FALSE(outside.answers_for(ip("198.18.0.1")));
    EXPECT_FALSE(outside.answers_for(0));

    ArpResponder inside(kOurMac, {});
    EXPECT_FALSE(inside.answers_for(ip("198.18.0.1")));
    inside.add(ip("198.18.0.1"));
    EXPECT_TRUE(inside.answers_for(ip("198.18.0.1")));
}

TEST(ArpResponder, RepliesToRequestsAndProbesOnly) {
    const ArpResponder r(kOurMac, {ip("198.19.0.1"), ip("198.19.0.10")});
    EXPECT_TRUE(r.should_reply(parsed(who_has("198.19.0.10", "198.19.0.2"))));

    RawArp probe = who_has("198.19.0.1", "198.19.0.2");
    probe.spa = 0;  // RFC 5227 probe
    EXPECT_TRUE(r.should_reply(parsed(probe)));

    RawArp reply = who_has("198.19.0.1", "198.19.0.2");
    reply.op = 2;
    EXPECT_FALSE(r.should_reply(parsed(reply)));

    EXPECT_FALSE(r.should_reply(parsed(who_has("198.19.0.3", "198.19.0.2"))));  // not ours

    RawArp announce = who_has("198.19.0.1", "198.19.0.1");  // someone else claims our address
    EXPECT_FALSE(r.should_reply(parsed(announce)));

    RawArp mcast = who_has("198.19.0.1", "198.19.0.2");
    mcast.sha = MacAddr{0x01, 0, 0x5e, 0, 0, 1};
    EXPECT_FALSE(r.should_reply(parsed(mcast)));

    RawArp own = who_has("198.19.0.1", "198.19.0.2");
    own.sha = kOurMac;  // our own request looped back
    EXPECT_FALSE(r.should_reply(parsed(own)));

    RawArp bcast_sender = who_has("198.19.0.1", "255.255.255.255");
    EXPECT_FALSE(r.should_reply(parsed(bcast_sender)));
}

TEST(ArpResponder, ReplyBuildsTheFrameOrNothing) {
    const ArpResponder r(kOurMac, {ip("198.18.0.1")});
    uint8_t out[60];
    ASSERT_EQ(r.reply(parsed(who_has("198.18.0.1", "198.18.0.7")), out, sizeof out), 60u);
    const auto back = parse_arp(out, 60);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->sender_mac, kOurMac);
    EXPECT_EQ(back->sender_ip, ip("198.18.0.1"));
    EXPECT_EQ(back->target_ip, ip("198.18.0.7"));
    EXPECT_EQ(r.reply(parsed(who_has("198.18.0.9", "198.18.0.7")), out, sizeof out), 0u);
    EXPECT_EQ(r.reply(parsed(who_has("198.18.0.1", "198.18.0.7")), out, 40), 0u);
}

TEST(ArpLearn, OnlyRealSendersAreLearnable) {
    EXPECT_TRUE(arp_sender_learnable(parsed(who_has("198.18.0.1", "198.18.0.2"))));
    RawArp probe = who_has("198.18.0.1", "198.18.0.2");
    probe.spa = 0;
    EXPECT_FALSE(arp_sender_learnable(parsed(probe)));
    RawArp mc = who_has("198.18.0.1", "224.0.0.1");
    EXPECT_FALSE(arp_sender_learnable(parsed(mc)));
    RawArp bmac = who_has("198.18.0.1", "198.18.0.2");
    bmac.sha = kBroadcastMac;
    EXPECT_FALSE(arp_sender_learnable(parsed(bmac)));
}

}  // namespace
}  // namespace snatgw::test
