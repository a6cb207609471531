// Steering rule construction: the rte_flow rules implement exactly owner(port) = port % W, and the
// software inside steering keeps a host on one worker and spreads hosts over all workers.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <set>

#include "packet_view.h"
#include "port_allocator.h"
#include "steering.h"

namespace snatgw {
namespace {

TEST(SteeringFlowRules, MatchExactlyTheOwnerOfEveryPort) {
    for (uint16_t workers : {2, 4, 8, 16}) {
        const auto rules = outside_flow_rules(workers);
        ASSERT_EQ(rules.size(), 3u * workers) << workers;
        for (uint8_t proto : {kProtoTcp, kProtoUdp, kProtoIcmp}) {
            for (uint32_t port = 0; port <= 65535; ++port) {
                int matches = 0;
                uint16_t queue = 0;
                for (const OutsideFlowRule& r : rules) {
                    if (r.proto != proto) continue;
                    if ((port & r.mask) == r.spec) {
                        ++matches;
                        queue = r.queue;
                    }
                }
                ASSERT_EQ(matches, 1) << "proto " << int(proto) << " port " << port;
                ASSERT_EQ(queue, port_owner(static_cast<uint16_t>(port), workers))
                    << "proto " << int(proto) << " port " << port << " W " << workers;
            }
        }
    }
}

TEST(SteeringFlowRules, NoRulesWhereAMaskCannotExpressTheModulo) {
    EXPECT_TRUE(outside_flow_rules(1).empty());
    EXPECT_TRUE(outside_flow_rules(3).empty());
    EXPECT_TRUE(outside_flow_rules(6).empty());
    std::string why;
    EXPECT_FALSE(install_outside_flow_rules(0, 3, why));
    EXPECT_NE(why.find("power of two"), std::string::npos) << why;
}

TEST(SteeringInside, OwnerIsStablePerHostAndSpreadsHosts) {
    for (uint16_t workers : {1, 2, 3, 4, 7}) {
        std::vector<uint32_t> per_worker(workers, 0);
        for (uint32_t h = 0; h < 4096; ++h) {
            const uint32_t addr = htonl((198u << 24) | (18u << 16) | h);
            const uint16_t owner = inside_owner(addr, workers);
            ASSERT_LT(owner, workers);
            ASSERT_EQ(owner, inside_owner(addr, workers));  // same host, same worker
            ++per_worker[owner];
        }
        for (uint32_t n : per_worker) EXPECT_GT(n, 4096u / workers / 2) << "W " << workers;
    }
}

TEST(SteeringPlan, DescribesTheStrategyInUse) {
    SteeringPlan p;
    EXPECT_EQ(p.describe(), "inside: software-handoff, outside: software-handoff");
    p.inside = InsideSteering::Rss;
    p.outside = OutsideSteering::Flow;
    EXPECT_EQ(p.describe(), "inside: rss-src, outside: rte_flow");
}

}  // namespace
}  // namespace snatgw
