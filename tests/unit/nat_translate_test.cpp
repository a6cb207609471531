// Table-driven translation tests: each case is an input frame, the side it arrives on, and
// what must come out. Every forwarded frame's checksums are verified by full recomputation.
#include <gtest/gtest.h>

#include "nat_fixture.h"

namespace snatgw::test {
namespace {

TEST(NatTranslate, SmokeUdpOutAndBack) {
    NatHarness h;
    auto o = h.out(PacketBuilder().eth().ipv4(ip("198.18.0.1"), ip("198.19.0.100")).udp(5000, 53).payload(10).build());
    ASSERT_EQ(o.result.verdict, Verdict::Forward);
    auto d = decode(o.frame);
    ASSERT_TRUE(d);
    EXPECT_TRUE(verify_checksums(o.frame).ok) << verify_checksums(o.frame).detail;
    EXPECT_TRUE(d->src == ip("198.19.0.10") || d->src == ip("198.19.0.11"));
    EXPECT_EQ(d->ttl, 63);
    auto back = h.in(PacketBuilder().eth().ipv4(ip("198.19.0.100"), d->src).udp(53, d->sport).payload(10).build());
    ASSERT_EQ(back.result.verdict, Verdict::Forward);
    auto b = decode(back.frame);
    EXPECT_EQ(b->dst, ip("198.18.0.1"));
    EXPECT_EQ(b->dport, 5000);
    EXPECT_TRUE(verify_checksums(back.frame).ok) << verify_checksums(back.frame).detail;
}

}  // namespace
}  // namespace snatgw::test
