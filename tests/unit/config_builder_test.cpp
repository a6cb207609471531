// Tests build_nat_config and the address/prefix/port/policy parsers of control/config_builder.h, including every validation error and its message.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config_builder.h"
#include "packet_builder.h"

namespace snatgw::test {
namespace {

PoolSpec pool(const std::string& name, const std::string& addresses, const std::string& ports = "1024-65535",
              const std::string& policy = "liberal") {
    PoolSpec p;
    p.name = name;
    p.addresses = addresses;
    p.ports = ports;
    p.policy = policy;
    return p;
}

RuleSpec rule(const std::string& prefix, const std::string& pool_name) { return RuleSpec{prefix, pool_name}; }

// Runs build_nat_config and returns the ConfigError message ("" if it did not throw).
std::string error_of(uint16_t workers, const std::vector<PoolSpec>& pools, const std::vector<RuleSpec>& rules) {
    try {
        (void)build_nat_config(workers, pools, rules);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

template <typename F>
std::string parse_error(F&& f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

::testing::AssertionResult mentions(const std::string& msg, const std::vector<std::string>& parts) {
    if (msg.empty()) return ::testing::AssertionFailure() << "no ConfigError thrown";
    for (const std::string& p : parts)
        if (msg.find(p) == std::string::npos)
            return ::testing::AssertionFailure() << "message \"" << msg << "\" does not contain \"" << p << "\"";
    return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------------------------

TEST(ConfigBuilderParse, Ipv4) {
    EXPECT_EQ(parse_ipv4("198.18.0.1"), ip("198.18.0.1"));
    EXPECT_EQ(parse_ipv4(" 198.19.255.254\t"), ip("198.19.255.254"));
    for (const char* bad : {"", " ", "198.18.0", "198.18.0.1.5", "198.18.0.256", "198.18.0.-1", "198.18.0.0001",
                            "198.18..1", "198.18.0.1x", "x198.18.0.1", "198.18.0.+1", "198.18.0.1/24",
                            "198.18.0.1-198.18.0.2", "::1", "198.18.0.", ".198.18.0"}) {
        const std::string msg = parse_error([&] { (void)parse_ipv4(bad); });
        EXPECT_TRUE(mentions(msg, {"not an IPv4 address"})) << "'" << bad << "'";
    }
    EXPECT_EQ(format_ipv4(ip("198.19.0.10")), "198.19.0.10");
    for (uint32_t a = ip("198.18.0.0"); a < ip("198.18.0.0") + 0x20000; a += 4099) EXPECT_EQ(parse_ipv4(format_ipv4(a)), a);
}

TEST(ConfigBuilderParse, Prefix) {
    EXPECT_EQ(parse_prefix("198.18.0.0/15"), std::make_pair(ip("198.18.0.0"), uint8_t{15}));
    EXPECT_EQ(parse_prefix("198.18.1.0/24"), std::make_pair(ip("198.18.1.0"), uint8_t{24}));
    EXPECT_EQ(parse_prefix("198.18.1.7"), std::make_pair(ip("198.18.1.7"), uint8_t{32}));
    EXPECT_EQ(parse_prefix("198.18.1.7/32"), std::make_pair(ip("198.18.1.7"), uint8_t{32}));
    EXPECT_EQ(parse_prefix(" 198.18.1.128/25 "), std::make_pair(ip("198.18.1.128"), uint8_t{25}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.0.0/33"); }), {"198.18.0.0/33", "prefix length"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.0.0/"); }), {"prefix length"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.0.0/-1"); }), {"prefix length"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.0.0/2x"); }), {"prefix length"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.0.999/24"); }), {"not an IPv4 address"}));
    // Host bits set: the message suggests the right network.
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.1.5/24"); }), {"198.18.1.5/24", "bits set", "198.18.1.0/24"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.19.0.0/15"); }), {"bits set", "198.18.0.0/15"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_prefix("198.18.1.129/31"); }), {"bits set", "198.18.1.128/31"}));
}

TEST(ConfigBuilderParse, AddressList) {
    EXPECT_EQ(parse_address_list("198.19.0.10"), (std::vector<uint32_t>{ip("198.19.0.10")}));
    EXPECT_EQ(parse_address_list("198.19.0.10-198.19.0.12"),
              (std::vector<uint32_t>{ip("198.19.0.10"), ip("198.19.0.11"), ip("198.19.0.12")}));
    EXPECT_EQ(parse_address_list("198.19.0.10-198.19.0.10"), (std::vector<uint32_t>{ip("198.19.0.10")}));
    EXPECT_EQ(parse_address_list("198.19.1.0/30"),
              (std::vector<uint32_t>{ip("198.19.1.0"), ip("198.19.1.1"), ip("198.19.1.2"), ip("198.19.1.3")}));
    EXPECT_EQ(parse_address_list("198.19.0.20 , 198.19.1.0/31,198.19.0.254-198.19.1.0"),
              (std::vector<uint32_t>{ip("198.19.0.20"), ip("198.19.1.0"), ip("198.19.1.1"), ip("198.19.0.254"),
                                     ip("198.19.0.255"), ip("198.19.1.0")}));
    // Crossing an octet boundary.
    const auto r = parse_address_list("198.18.255.250-198.19.0.5");
    ASSERT_EQ(r.size(), 12u);
    for (std::size_t i = 0; i < r.size(); ++i) EXPECT_EQ(r[i], ip("198.18.255.250") + i);
    EXPECT_EQ(parse_address_list("198.18.0.0/16").size(), 65536u);  // the per-pool maximum

    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list(""); }), {"empty"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("  "); }), {"empty"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.19.0.12-198.19.0.10"); }),
                         {"198.19.0.12-198.19.0.10", "ends before it starts"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.19.0.10,,198.19.0.11"); }), {"not an IPv4 address"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.19.0.10-"); }), {"not an IPv4 address"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.19.0.1/24"); }), {"bits set"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.18.0.0/15"); }), {"65536"}));
    EXPECT_TRUE(mentions(parse_error([] { (void)parse_address_list("198.18.0.0/16,198.19.0.1"); }), {"65536"}));
}

TEST(ConfigBuilderParse, PortRange) {
    EXPECT_EQ(parse_port_range("1024-65535"), std::make_pair(uint16_t{1024}, uint16_t{65535}));
    EXPECT_EQ(parse_port_range("1-1"), std::make_pair(uint16_t{1}, uint16_t{1}));
    EXPECT_EQ(parse_port_range("80"), std::make_pair(uint16_t{80}, uint16_t{80}));
    EXPECT_EQ(parse_port_range(" 2000 - 3000 "), std::make_pair(uint16_t{2000}, uint16_t{3000}));
    for (const char* bad : {"", "0-100", "0", "100-99", "1-65536", "65536", "a-b", "-5", "5-", "1024-65535-1", "10 20",
                            "1e3-2000", "-1-10"}) {
        EXPECT_TRUE(mentions(parse_error([&] { (void)parse_port_range(bad); }), {"port range"})) << "'" << bad << "'";
    }
}

TEST(ConfigBuilderParse, Policy) {
    EXPECT_EQ(parse_policy("liberal"), Policy::Liberal);
    EXPECT_EQ(parse_policy("strict"), Policy::Strict);
    EXPECT_EQ(parse_policy(" retrans-ok "), Policy::RetransOk);
    for (Policy p : {Policy::Liberal, Policy::Strict, Policy::RetransOk}) EXPECT_EQ(parse_policy(policy_name(p)), p);
    for (const char* bad : {"", "lenient", "retrans_ok", "strict,liberal"}) {
        EXPECT_TRUE(mentions(parse_error([&] { (void)parse_policy(bad); }), {"policy", "liberal, strict, retrans-ok"})) << bad;
    }
}

// ---------------------------------------------------------------------------------------------
// build_nat_config: valid
// ---------------------------------------------------------------------------------------------

TEST(ConfigBuilderValid, PoolsRulesAndLookups) {
    PoolSpec web = pool("web", "198.19.0.10-198.19.0.13, 198.19.1.0/30,198.19.2.5", "2000-2999", "strict");
    web.timeouts.udp = 30;
    web.timeouts.quarantine = 0;  // allowed: no quarantine
    web.max_sessions_per_host = 500;
    const PoolSpec bulk = pool("bulk", "198.19.3.0/31", "1024-65535", "retrans-ok");
    const std::vector<RuleSpec> rules = {
        rule("198.18.0.0/16", "bulk"),  rule("198.18.1.0/24", "web"),   rule("198.18.1.200", "web"),
        rule("198.18.1.128/25", "bulk"), rule("198.18.2.0/24", "bulk"), rule("198.18.1.200/31", "bulk"),
    };
    const NatConfig cfg = build_nat_config(4, {web, bulk}, rules);

    EXPECT_EQ(cfg.workers, 4);
    ASSERT_EQ(cfg.pools.size(), 2u);
    const Pool& w = cfg.pools[0];
    const Pool& b = cfg.pools[1];
    EXPECT_EQ(w.id, 0);
    EXPECT_EQ(w.name, "web");
    EXPECT_EQ(w.addresses, (std::vector<uint32_t>{ip("198.19.0.10"), ip("198.19.0.11"), ip("198.19.0.12"), ip("198.19.0.13"),
                                                  ip("198.19.1.0"), ip("198.19.1.1"), ip("198.19.1.2"), ip("198.19.1.3"),
                                                  ip("198.19.2.5")}));
    EXPECT_EQ(w.port_min, 2000);
    EXPECT_EQ(w.port_max, 2999);
    EXPECT_EQ(w.policy, Policy::Strict);
    EXPECT_EQ(w.timeouts.udp, 30u);
    EXPECT_EQ(w.timeouts.quarantine, 0u);
    EXPECT_EQ(w.timeouts.tcp_established, 7440u);
    EXPECT_EQ(w.timeouts.tcp_transitory, 240u);
    EXPECT_EQ(w.timeouts.icmp, 60u);
    EXPECT_EQ(w.timeouts.linger, 2u);
    EXPECT_EQ(w.max_sessions_per_host, 500u);
    EXPECT_EQ(b.id, 1);
    EXPECT_EQ(b.name, "bulk");
    EXPECT_EQ(b.addresses, (std::vector<uint32_t>{ip("198.19.3.0"), ip("198.19.3.1")}));
    EXPECT_EQ(b.port_min, 1024);
    EXPECT_EQ(b.port_max, 65535);
    EXPECT_EQ(b.policy, Policy::RetransOk);
    EXPECT_EQ(b.timeouts.quarantine, 120u);
    EXPECT_EQ(b.max_sessions_per_host, 0u);

    // Rules: longest prefix first, equal lengths in the given order.
    ASSERT_EQ(cfg.rules.size(), 6u);
    struct R {
        uint32_t prefix;
        uint8_t len;
        uint16_t pool;
    };
    const R want[] = {{ip("198.18.1.200"), 32, 0}, {ip("198.18.1.200"), 31, 1}, {ip("198.18.1.128"), 25, 1},
                      {ip("198.18.1.0"), 24, 0},   {ip("198.18.2.0"), 24, 1},   {ip("198.18.0.0"), 16, 1}};
    for (std::size_t i = 0; i < 6; ++i) {
        EXPECT_EQ(cfg.rules[i].prefix, want[i].prefix) << i;
        EXPECT_EQ(cfg.rules[i].length, want[i].len) << i;
        EXPECT_EQ(cfg.rules[i].pool, want[i].pool) << i;
    }

    auto src_pool = [&](const char* a) -> std::string {
        const Pool* p = cfg.pool_for_source(ip(a));
        return p ? p->name : "(none)";
    };
    EXPECT_EQ(src_pool("198.18.1.200"), "web");   // /32
    EXPECT_EQ(src_pool("198.18.1.201"), "bulk");  // /31
    EXPECT_EQ(src_pool("198.18.1.202"), "bulk");  // /25
    EXPECT_EQ(src_pool("198.18.1.128"), "bulk");  // /25
    EXPECT_EQ(src_pool("198.18.1.127"), "web");   // /24
    EXPECT_EQ(src_pool("198.18.1.0"), "web");
    EXPECT_EQ(src_pool("198.18.2.77"), "bulk");   // /24
    EXPECT_EQ(src_pool("198.18.3.1"), "bulk");    // /16
    EXPECT_EQ(src_pool("198.18.255.255"), "bulk");
    EXPECT_EQ(src_pool("198.19.0.1"), "(none)");
    EXPECT_EQ(src_pool("198.19.1.1"), "(none)");

    auto addr_pool = [&](const char* a) -> std::string {
        const Pool* p = cfg.pool_for_address(ip(a));
        return p ? p->name : "(none)";
    };
    EXPECT_EQ(addr_pool("198.19.0.10"), "web");
    EXPECT_EQ(addr_pool("198.19.0.13"), "web");
    EXPECT_EQ(addr_pool("198.19.1.3"), "web");
    EXPECT_EQ(addr_pool("198.19.2.5"), "web");
    EXPECT_EQ(addr_pool("198.19.3.0"), "bulk");
    EXPECT_EQ(addr_pool("198.19.3.1"), "bulk");
    EXPECT_EQ(addr_pool("198.19.0.14"), "(none)");
    EXPECT_EQ(addr_pool("198.19.0.9"), "(none)");
    EXPECT_EQ(addr_pool("198.19.3.2"), "(none)");
    EXPECT_EQ(addr_pool("198.19.2.4"), "(none)");
}

TEST(ConfigBuilderValid, EdgeValues) {
    // One worker, one port, one address; workers equal to the number of ports.
    EXPECT_NO_THROW((void)build_nat_config(1, {pool("p", "198.19.0.1", "5000")}, {rule("198.18.0.0/24", "p")}));
    EXPECT_NO_THROW((void)build_nat_config(8, {pool("p", "198.19.0.1", "5000-5007")}, {}));
    EXPECT_NO_THROW((void)build_nat_config(128, {pool("p", "198.19.0.1")}, {}));
    // No pools and no rules is a valid (empty) configuration.
    const NatConfig empty = build_nat_config(2, {}, {});
    EXPECT_TRUE(empty.pools.empty());
    EXPECT_TRUE(empty.rules.empty());
    EXPECT_EQ(empty.pool_for_source(ip("198.18.0.1")), nullptr);
    // Exactly 64 pools.
    std::vector<PoolSpec> pools;
    for (int i = 0; i < 64; ++i) {
        std::string name = "p";
        name += std::to_string(i);
        std::string addr = "198.19.0.";
        addr += std::to_string(i);
        pools.push_back(pool(name, addr));
    }
    const NatConfig cfg = build_nat_config(1, pools, {rule("198.18.0.0/15", "p63")});
    EXPECT_EQ(cfg.pools.size(), 64u);
    EXPECT_EQ(cfg.pools[63].id, 63);
    EXPECT_EQ(cfg.pool_for_source(ip("198.19.7.7"))->name, "p63");
    EXPECT_EQ(cfg.pool_for_address(ip("198.19.0.42"))->name, "p42");
    // Maximum timeouts.
    PoolSpec t = pool("t", "198.19.0.1");
    t.timeouts = Timeouts{604800, 604800, 604800, 604800, 604800, 604800, 604800, 604800};
    EXPECT_NO_THROW((void)build_nat_config(1, {t}, {}));
    t.timeouts = Timeouts{1, 1, 1, 1, 1, 1, 0, 1};
    EXPECT_NO_THROW((void)build_nat_config(1, {t}, {}));
}

// ---------------------------------------------------------------------------------------------
// build_nat_config: errors
// ---------------------------------------------------------------------------------------------

const std::vector<RuleSpec> kNoRules;

TEST(ConfigBuilderErrors, PoolAddressErrorsNameThePool) {
    struct Case {
        const char* addresses;
        std::vector<std::string> words;
    };
    const Case cases[] = {
        {"198.19.0.300", {"198.19.0.300", "not an IPv4 address"}},
        {"198.19.0.10-198.19.0.x", {"not an IPv4 address"}},
        {"198.19.0.0/40", {"198.19.0.0/40", "prefix length"}},
        {"198.19.0.1/30", {"198.19.0.1/30", "bits set"}},
        {"198.19.0.20-198.19.0.10", {"198.19.0.20-198.19.0.10", "ends before it starts"}},
        {"", {"empty"}},
        {"198.18.0.0/15", {"65536"}},
    };
    for (const Case& c : cases) {
        std::vector<std::string> words = c.words;
        words.push_back("pool 'edge'");
        EXPECT_TRUE(mentions(error_of(2, {pool("ok", "198.19.1.1"), pool("edge", c.addresses)}, kNoRules), words)) << c.addresses;
    }
}

TEST(ConfigBuilderErrors, DuplicateAddressAcrossPools) {
    const std::string msg = error_of(1, {pool("first", "198.19.0.10-198.19.0.20"), pool("second", "198.19.1.0/30,198.19.0.15")}, kNoRules);
    EXPECT_TRUE(mentions(msg, {"pool 'second'", "198.19.0.15", "already in pool 'first'"}));
    // Overlap by prefix vs range.
    EXPECT_TRUE(mentions(error_of(1, {pool("a", "198.19.0.0/29"), pool("b", "198.19.0.7-198.19.0.9")}, kNoRules),
                         {"pool 'b'", "198.19.0.7", "already in pool 'a'"}));
    // Repeated within one pool.
    EXPECT_TRUE(mentions(error_of(1, {pool("self", "198.19.0.1,198.19.0.1")}, kNoRules), {"pool 'self'", "198.19.0.1", "already in pool 'self'"}));
}

TEST(ConfigBuilderErrors, PoolNames) {
    EXPECT_TRUE(mentions(error_of(1, {pool("twin", "198.19.0.1"), pool("twin", "198.19.0.2")}, kNoRules), {"pool 'twin'", "defined twice"}));
    EXPECT_TRUE(mentions(error_of(1, {pool("", "198.19.0.1")}, kNoRules), {"no name"}));
}

TEST(ConfigBuilderErrors, BadPolicy) {
    EXPECT_TRUE(mentions(error_of(1, {pool("pol", "198.19.0.1", "1024-65535", "paranoid")}, kNoRules),
                         {"pool 'pol'", "policy 'paranoid'", "liberal, strict, retrans-ok"}));
}

TEST(ConfigBuilderErrors, PortRanges) {
    for (const char* ports : {"0-100", "100-10", "1-70000", "", "any"}) {
        EXPECT_TRUE(mentions(error_of(1, {pool("ports", "198.19.0.1", ports)}, kNoRules), {"pool 'ports'", "port range"})) << ports;
    }
    EXPECT_TRUE(mentions(error_of(8, {pool("few", "198.19.0.1", "5000-5006")}, kNoRules),
                         {"pool 'few'", "port range 5000-5006", "fewer ports than the 8 workers"}));
    EXPECT_TRUE(mentions(error_of(2, {pool("one", "198.19.0.1", "5000")}, kNoRules), {"pool 'one'", "fewer ports", "2 workers"}));
}

TEST(ConfigBuilderErrors, Timeouts) {
    struct Field {
        const char* name;
        uint32_t Timeouts::*member;
    };
    const Field fields[] = {{"tcp_established", &Timeouts::tcp_established},
                            {"tcp_transitory", &Timeouts::tcp_transitory},
                            {"udp", &Timeouts::udp},
                            {"icmp", &Timeouts::icmp},
                            {"linger", &Timeouts::linger}};
    for (const Field& f : fields) {
        for (uint32_t bad : {0u, 604801u, 0xffffffffu}) {
            PoolSpec p = pool("tmo", "198.19.0.1");
            p.timeouts.*(f.member) = bad;
            std::string word = "timeout ";
            word += f.name;
            EXPECT_TRUE(mentions(error_of(1, {p}, kNoRules), {"pool 'tmo'", word})) << f.name << "=" << bad;
        }
    }
    PoolSpec q = pool("tmo", "198.19.0.1");
    q.timeouts.quarantine = 604801;
    EXPECT_TRUE(mentions(error_of(1, {q}, kNoRules), {"pool 'tmo'", "timeout quarantine"}));
}

TEST(ConfigBuilderErrors, Workers) {
    EXPECT_TRUE(mentions(error_of(0, {pool("p", "198.19.0.1")}, kNoRules), {"workers", "1..128"}));
    EXPECT_TRUE(mentions(error_of(129, {pool("p", "198.19.0.1")}, kNoRules), {"workers", "1..128"}));
}

TEST(ConfigBuilderErrors, TooManyPools) {
    std::vector<PoolSpec> pools;
    for (int i = 0; i < 65; ++i) {
        std::string name = "p";
        name += std::to_string(i);
        std::string addr = "198.19.0.";
        addr += std::to_string(i);
        pools.push_back(pool(name, addr));
    }
    EXPECT_TRUE(mentions(error_of(1, pools, kNoRules), {"at most 64 pools"}));
}

TEST(ConfigBuilderErrors, RulesNameTheRule) {
    const std::vector<PoolSpec> pools = {pool("lab", "198.19.0.10-198.19.0.11")};
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0.0/24", "lab"), rule("198.18.1.0/24", "nope")}),
                         {"rule '198.18.1.0/24 -> nope'", "no pool named 'nope'"}));
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0.0/24", "lab"), rule("198.18.0.0/24", "lab")}),
                         {"rule '198.18.0.0/24 -> lab'", "already has a rule"}));
    // The same prefix written differently is still a duplicate.
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0.7", "lab"), rule("198.18.0.7/32", "lab")}),
                         {"rule '198.18.0.7/32 -> lab'", "already has a rule"}));
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0.1/24", "lab")}), {"rule '198.18.0.1/24 -> lab'", "bits set", "198.18.0.0/24"}));
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0.0/33", "lab")}), {"rule '198.18.0.0/33 -> lab'", "prefix length"}));
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("198.18.0/24", "lab")}), {"rule '198.18.0/24 -> lab'", "not an IPv4 address"}));
    EXPECT_TRUE(mentions(error_of(1, pools, {rule("", "lab")}), {"rule ' -> lab'", "not an IPv4 address"}));
    // A rule may not refer to a pool only defined by a failed spec: the pool error comes first.
    EXPECT_TRUE(mentions(error_of(1, {pool("lab", "198.19.0.10"), pool("bad", "198.19.0.999")}, {rule("198.18.0.0/24", "bad")}),
                         {"pool 'bad'", "not an IPv4 address"}));
}

}  // namespace
}  // namespace snatgw::test
