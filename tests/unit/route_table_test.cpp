// RouteTable*: static routes over rte_lpm: longest prefix wins, the default route, directly
// connected prefixes (next hop = destination), no route, replacing and removing routes, bad
// prefixes, the route limit, and a comparison against a brute-force longest-prefix match.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "packet_builder.h"
#include "route_table.h"

namespace snatgw::test {
namespace {

// DPDK object names are process-wide: one per test.
std::string unique_name(const char* base) {
    static int n = 0;
    std::string s = "rt_";
    s += base;
    s += '_';
    s += std::to_string(n++);
    return s;
}

TEST(RouteTable, EmptyTableHasNoRoute) {
    RouteTable rt(unique_name("empty"), 16);
    EXPECT_FALSE(rt.next_hop(ip("198.19.0.2")));
    EXPECT_FALSE(rt.next_hop(0));
    EXPECT_EQ(rt.size(), 0u);
}

TEST(RouteTable, LabRoutes) {
    // The lab: two connected subnets and a default route via the outside next hop.
    RouteTable rt(unique_name("lab"), 16);
    ASSERT_TRUE(rt.add(ip("198.18.0.0"), 24, 0));
    ASSERT_TRUE(rt.add(ip("198.19.0.0"), 24, 0));
    ASSERT_TRUE(rt.add(0, 0, ip("198.19.0.2")));
    EXPECT_EQ(rt.size(), 3u);
    EXPECT_EQ(rt.next_hop(ip("198.18.0.7")), ip("198.18.0.7"));    // connected: itself
    EXPECT_EQ(rt.next_hop(ip("198.19.0.2")), ip("198.19.0.2"));
    EXPECT_EQ(rt.next_hop(ip("203.0.113.5")), ip("198.19.0.2"));   // default
    EXPECT_EQ(rt.next_hop(ip("198.18.1.1")), ip("198.19.0.2"));
    EXPECT_EQ(rt.next_hop(ip("255.255.255.255")), ip("198.19.0.2"));
}

TEST(RouteTable, LongestPrefixWins) {
    RouteTable rt(unique_name("lpm"), 16);
    ASSERT_TRUE(rt.add(ip("10.0.0.0"), 8, ip("198.19.0.2")));
    ASSERT_TRUE(rt.add(ip("10.1.0.0"), 16, ip("198.19.0.3")));
    ASSERT_TRUE(rt.add(ip("10.1.2.0"), 24, ip("198.19.0.4")));
    ASSERT_TRUE(rt.add(ip("10.1.2.128"), 25, ip("198.19.0.5")));  // beyond /24: a tbl8 group
    ASSERT_TRUE(rt.add(ip("10.1.2.200"), 32, ip("198.19.0.6")));
    EXPECT_EQ(rt.next_hop(ip("10.9.9.9")), ip("198.19.0.2"));
    EXPECT_EQ(rt.next_hop(ip("10.1.9.9")), ip("198.19.0.3"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.1")), ip("198.19.0.4"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.127")), ip("198.19.0.4"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.128")), ip("198.19.0.5"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.199")), ip("198.19.0.5"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.200")), ip("198.19.0.6"));
    EXPECT_EQ(rt.next_hop(ip("10.1.2.201")), ip("198.19.0.5"));
    EXPECT_FALSE(rt.next_hop(ip("11.0.0.1")));  // no default
    // A connected prefix inside a routed one.
    ASSERT_TRUE(rt.add(ip("10.1.3.0"), 24, 0));
    EXPECT_EQ(rt.next_hop(ip("10.1.3.77")), ip("10.1.3.77"));
}

TEST(RouteTable, ConnectedDefaultRoute) {
    RouteTable rt(unique_name("condef"), 4);
    ASSERT_TRUE(rt.add(0, 0, 0));
    EXPECT_EQ(rt.next_hop(ip("8.8.8.8")), ip("8.8.8.8"));
}

TEST(RouteTable, ReplaceAndRemove) {
    RouteTable rt(unique_name("replace"), 8);
    ASSERT_TRUE(rt.add(ip("192.0.2.0"), 24, ip("198.19.0.2")));
    ASSERT_TRUE(rt.add(ip("192.0.2.0"), 24, ip("198.19.0.3")));  // replaces
    EXPECT_EQ(rt.size(), 1u);
    EXPECT_EQ(rt.next_hop(ip("192.0.2.1")), ip("198.19.0.3"));
    ASSERT_TRUE(rt.add(0, 0, ip("198.19.0.2")));
    ASSERT_TRUE(rt.add(0, 0, ip("198.19.0.9")));
    EXPECT_EQ(rt.size(), 2u);
    EXPECT_EQ(rt.next_hop(ip("1.1.1.1")), ip("198.19.0.9"));

    EXPECT_TRUE(rt.remove(ip("192.0.2.0"), 24));
    EXPECT_FALSE(rt.remove(ip("192.0.2.0"), 24));
    EXPECT_EQ(rt.next_hop(ip("192.0.2.1")), ip("198.19.0.9"));  // falls back to the default
    EXPECT_TRUE(rt.remove(0, 0));
    EXPECT_FALSE(rt.remove(0, 0));
    EXPECT_FALSE(rt.next_hop(ip("192.0.2.1")));
    EXPECT_EQ(rt.size(), 0u);
}

TEST(RouteTable, BadPrefixesAreRefused) {
    RouteTable rt(unique_name("bad"), 8);
    EXPECT_FALSE(rt.add(ip("198.18.0.1"), 24, 0));  // host bits set
    EXPECT_FALSE(rt.add(ip("198.18.0.0"), 33, 0));
    EXPECT_FALSE(rt.add(ip("0.0.0.1"), 0, 0));
    EXPECT_TRUE(rt.add(ip("198.18.0.1"), 32, 0));
    EXPECT_EQ(rt.size(), 1u);
}

TEST(RouteTable, RouteLimitIsEnforced) {
    RouteTable rt(unique_name("limit"), 3);
    EXPECT_TRUE(rt.add(ip("10.0.0.0"), 8, 1));
    EXPECT_TRUE(rt.add(ip("11.0.0.0"), 8, 2));
    EXPECT_TRUE(rt.add(0, 0, 3));
    EXPECT_FALSE(rt.add(ip("12.0.0.0"), 8, 4));
    EXPECT_FALSE(rt.next_hop(ip("12.0.0.1")) == std::optional<uint32_t>(4));
    EXPECT_TRUE(rt.add(ip("10.0.0.0"), 8, 5));  // replacing needs no room
    EXPECT_EQ(rt.next_hop(ip("10.0.0.1")), 5u);
}

TEST(RouteTable, DuplicateNamesAreAnError) {
    const std::string name = unique_name("dup");
    RouteTable a(name, 4);
    EXPECT_THROW(RouteTable(name, 4), std::runtime_error);
}

TEST(RouteTable, MatchesBruteForceOnRandomRoutes) {
    struct Route {
        uint32_t prefix;
        uint8_t len;
        uint32_t hop;
    };
    std::mt19937 rng(12345);
    RouteTable rt(unique_name("random"), 512);
    std::vector<Route> routes;
    // Prefixes clustered under 10.0.0.0/8 so they nest; next hops from a small set.
    for (int i = 0; i < 400; ++i) {
        const uint8_t len = static_cast<uint8_t>(8 + rng() % 25);
        const uint32_t prefix = (ip("10.0.0.0") | (rng() & 0x00ffffffu)) & (~uint32_t{0} << (32 - len));
        const uint32_t hop = (rng() % 4 == 0) ? 0 : ip("198.19.0.0") + 2 + rng() % 8;
        ASSERT_TRUE(rt.add(prefix, len, hop));
        bool replaced = false;
        for (Route& r : routes)
            if (r.prefix == prefix && r.len == len) {
                r.hop = hop;
                replaced = true;
            }
        if (!replaced) routes.push_back({prefix, len, hop});
    }
    EXPECT_EQ(rt.size(), routes.size());
    for (int i = 0; i < 20000; ++i) {
        const uint32_t dst = (i % 10 == 0) ? static_cast<uint32_t>(rng()) : (ip("10.0.0.0") | (rng() & 0x00ffffffu));
        std::optional<uint32_t> want;
        int best = -1;
        for (const Route& r : routes) {
            const uint32_t mask = ~uint32_t{0} << (32 - r.len);
            if ((dst & mask) == r.prefix && r.len > best) {
                best = r.len;
                want = r.hop == 0 ? dst : r.hop;
            }
        }
        ASSERT_EQ(rt.next_hop(dst), want) << ip_str(dst);
    }
}

}  // namespace
}  // namespace snatgw::test
