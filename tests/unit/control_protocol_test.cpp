// Tests the control API v1 request parser and schema validation (control/control_protocol.h):
// every error code the parser can give and the field its message names, the per-command
// schemas, the typed argument views and the reply lines.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_protocol.h"
#include "packet_builder.h"

namespace snatgw::test {
namespace {

using nlohmann::json;

struct Failure {
    std::string code;
    std::string message;
};

// Parses `line`; returns the ControlError it threw ({"", ""} if none).
Failure failure_of(const std::string& line) {
    try {
        (void)parse_request(line);
    } catch (const ControlError& e) {
        return {e.code, e.what()};
    }
    return {};
}

std::string request(const std::string& command, const json& args) {
    return json{{"command", command}, {"args", args}}.dump();
}

::testing::AssertionResult rejected(const std::string& line, const std::string& code,
                                    const std::string& mention = "") {
    const Failure f = failure_of(line);
    if (f.code.empty()) return ::testing::AssertionFailure() << line << " was accepted";
    if (f.code != code)
        return ::testing::AssertionFailure() << line << " gave " << f.code << " (" << f.message << "), not " << code;
    if (f.message.find(mention) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << f.message << "\" does not mention \"" << mention << "\"";
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult accepted(const std::string& line) {
    const Failure f = failure_of(line);
    if (!f.code.empty()) return ::testing::AssertionFailure() << line << " rejected: " << f.code << ": " << f.message;
    return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------------

TEST(ControlProtocolParse, MinimalRequest) {
    const ControlRequest r = parse_request(R"({"command":"version"})");
    EXPECT_EQ(r.version, 1);
    EXPECT_EQ(r.command, "version");
    EXPECT_EQ(r.args, json::object());
    EXPECT_TRUE(r.id.is_null());
}

TEST(ControlProtocolParse, FullRequestKeepsIdAndArgs) {
    const ControlRequest r = parse_request(
        R"({"version":1,"command":"pool.del","args":{"name":"lab"},"id":{"seq":[1,"two"]}})");
    EXPECT_EQ(r.command, "pool.del");
    EXPECT_EQ(r.args, json({{"name", "lab"}}));
    EXPECT_EQ(r.id, json({{"seq", {1, "two"}}}));
}

TEST(ControlProtocolParse, ToleratesSurroundingWhitespaceAndCarriageReturn) {
    EXPECT_TRUE(accepted(" \t{\"command\":\"stats\"} \r"));
}

TEST(ControlProtocolParse, NotJsonIsParseError) {
    EXPECT_TRUE(rejected("", "parse_error", "not valid JSON"));
    EXPECT_TRUE(rejected("hello", "parse_error"));
    EXPECT_TRUE(rejected(R"({"command":"version")", "parse_error"));
    EXPECT_TRUE(rejected(R"({"command":"version"} {})", "parse_error"));
    EXPECT_TRUE(rejected("{\"command\":\"ver\xff\"}", "parse_error"));  // invalid UTF-8
    EXPECT_TRUE(rejected(std::string("{\"command\"\0:1}", 14), "parse_error"));
    // A number JSON cannot hold (found by fuzz_control: it was answered "internal", no id).
    EXPECT_TRUE(rejected(R"({"command":"version","id":1e999})", "parse_error"));
    const json reply = json::parse(answer_request_line(R"({"command":"version","id":-1e400})",
                                                       [](const ControlRequest&) { return json::object(); }));
    EXPECT_EQ(reply.at("error").at("code"), "parse_error") << reply;
}

TEST(ControlProtocolParse, DeepNestingIsRejectedBeforeParsing) {
    const std::string deep = R"({"command":"version","id":)" + std::string(40000, '[') + std::string(40000, ']') + "}";
    EXPECT_TRUE(rejected(deep, "parse_error", "nests deeper"));
    // Brackets inside strings do not count.
    EXPECT_TRUE(accepted(R"({"command":"version","id":")" + std::string(100, '[') + "\"}"));
    EXPECT_TRUE(accepted(R"({"command":"version","id":[[[[{"a":[1]}]]]]})"));
}

TEST(ControlProtocolParse, NonObjectIsBadRequest) {
    EXPECT_TRUE(rejected("[]", "bad_request", "JSON object"));
    EXPECT_TRUE(rejected("42", "bad_request", "JSON object"));
    EXPECT_TRUE(rejected("\"version\"", "bad_request", "JSON object"));
    EXPECT_TRUE(rejected("null", "bad_request", "JSON object"));
}

TEST(ControlProtocolParse, Version) {
    EXPECT_TRUE(accepted(R"({"version":1,"command":"version"})"));
    EXPECT_TRUE(rejected(R"({"version":2,"command":"version"})", "unsupported_version", "version 2"));
    EXPECT_TRUE(rejected(R"({"version":0,"command":"version"})", "unsupported_version"));
    EXPECT_TRUE(rejected(R"({"version":-1,"command":"version"})", "unsupported_version"));
    EXPECT_TRUE(rejected(R"({"version":"1","command":"version"})", "bad_request", "version"));
    EXPECT_TRUE(rejected(R"({"version":1.0,"command":"version"})", "bad_request", "version"));
    // A future version may add top-level fields: the version is what it is told about.
    EXPECT_TRUE(rejected(R"({"version":2,"command":"version","trace":true})", "unsupported_version"));
}

TEST(ControlProtocolParse, TopLevelFields) {
    EXPECT_TRUE(rejected(R"({"command":"version","extra":1})", "bad_request", "'extra'"));
    EXPECT_TRUE(rejected(R"({"args":{}})", "bad_request", "command is required"));
    EXPECT_TRUE(rejected(R"({"command":7})", "bad_request", "command must be a string"));
    EXPECT_TRUE(rejected(R"({"command":"reboot"})", "unknown_command", "'reboot'"));
    EXPECT_TRUE(rejected(R"({"command":"Version"})", "unknown_command"));
    EXPECT_TRUE(rejected(R"({"command":"stats","args":[]})", "bad_request", "args must be an object"));
    EXPECT_TRUE(rejected(R"({"command":"stats","args":null})", "bad_request", "args must be an object"));
    EXPECT_TRUE(accepted(R"({"command":"stats","args":{}})"));
    EXPECT_TRUE(accepted(R"({"command":"stats","id":null})"));
}

TEST(ControlProtocolParse, CommandList) {
    const std::vector<std::string> expected = {"version", "stats", "pools", "sessions", "sessions.flush",
                                               "pool.add", "pool.del", "pool.set", "policy.set",
                                               "timeouts.set", "log.level", "save"};
    EXPECT_EQ(control_commands(), expected);
    for (const std::string& c : expected) {
        const Failure f = failure_of(request(c, json::object()));
        EXPECT_NE(f.code, "unknown_command") << c;
    }
}

// ---------------------------------------------------------------------------------------------
// Per-command schemas
// ---------------------------------------------------------------------------------------------

TEST(ControlProtocolSchema, CommandsWithoutArguments) {
    for (const char* c : {"version", "stats", "pools"}) {
        EXPECT_TRUE(accepted(request(c, json::object())));
        EXPECT_TRUE(rejected(request(c, {{"verbose", true}}), "bad_request", "args.verbose"));
    }
}

TEST(ControlProtocolSchema, UnknownArgumentNamesTheKeyAndTheExpectedOnes) {
    const Failure f = failure_of(request("pool.del", {{"name", "lab"}, {"force", true}}));
    EXPECT_EQ(f.code, "bad_request");
    EXPECT_NE(f.message.find("args.force"), std::string::npos) << f.message;
    EXPECT_NE(f.message.find("expected: name"), std::string::npos) << f.message;
}

TEST(ControlProtocolSchema, Sessions) {
    EXPECT_TRUE(accepted(request("sessions", json::object())));
    EXPECT_TRUE(accepted(request("sessions", {{"inside", "198.18.0.2"}, {"outside", "198.19.0.10:1024"},
                                              {"remote", "198.51.100.1:0"}, {"proto", "tcp"},
                                              {"state", "established"}, {"worker", 63}, {"pool", "lab"},
                                              {"offset", 4294967295u}, {"limit", 10000}, {"count_only", true}})));
    EXPECT_TRUE(rejected(request("sessions", {{"inside", "198.18.0"}}), "bad_request", "args.inside"));
    EXPECT_TRUE(rejected(request("sessions", {{"inside", "198.18.0.2:65536"}}), "bad_request", "args.inside"));
    EXPECT_TRUE(rejected(request("sessions", {{"inside", "198.18.0.2:"}}), "bad_request", "args.inside"));
    EXPECT_TRUE(rejected(request("sessions", {{"outside", "198.18.0.2:-1"}}), "bad_request", "args.outside"));
    EXPECT_TRUE(rejected(request("sessions", {{"remote", 3}}), "bad_request", "args.remote must be a string"));
    EXPECT_TRUE(rejected(request("sessions", {{"proto", "sctp"}}), "bad_request", "args.proto"));
    EXPECT_TRUE(rejected(request("sessions", {{"proto", 6}}), "bad_request", "args.proto"));
    EXPECT_TRUE(rejected(request("sessions", {{"state", "listen"}}), "bad_request", "args.state"));
    EXPECT_TRUE(rejected(request("sessions", {{"worker", 64}}), "bad_request", "args.worker"));
    EXPECT_TRUE(rejected(request("sessions", {{"worker", -1}}), "bad_request", "args.worker"));
    EXPECT_TRUE(rejected(request("sessions", {{"worker", "1"}}), "bad_request", "args.worker"));
    EXPECT_TRUE(rejected(request("sessions", {{"pool", "no spaces"}}), "bad_request", "args.pool"));
    EXPECT_TRUE(rejected(request("sessions", {{"offset", -1}}), "bad_request", "args.offset"));
    EXPECT_TRUE(rejected(request("sessions", {{"offset", 4294967296u}}), "bad_request", "args.offset"));
    EXPECT_TRUE(rejected(request("sessions", {{"limit", 0}}), "bad_request", "args.limit must be an integer 1..10000"));
    EXPECT_TRUE(rejected(request("sessions", {{"limit", 10001}}), "bad_request", "args.limit"));
    EXPECT_TRUE(rejected(request("sessions", {{"limit", 1.5}}), "bad_request", "args.limit"));
    EXPECT_TRUE(rejected(request("sessions", {{"count_only", 1}}), "bad_request", "args.count_only"));
    EXPECT_TRUE(rejected(request("sessions", {{"all", true}}), "bad_request", "args.all"));
}

TEST(ControlProtocolSchema, StateMustFitProto) {
    EXPECT_TRUE(accepted(request("sessions", {{"proto", "udp"}, {"state", "udp"}})));
    EXPECT_TRUE(accepted(request("sessions", {{"proto", "icmp"}, {"state", "icmp"}})));
    EXPECT_TRUE(accepted(request("sessions", {{"proto", "tcp"}, {"state", "time_wait"}})));
    EXPECT_TRUE(rejected(request("sessions", {{"proto", "tcp"}, {"state", "udp"}}), "bad_request", "args.state"));
    EXPECT_TRUE(rejected(request("sessions", {{"proto", "udp"}, {"state", "established"}}), "bad_request",
                         "args.state"));
    EXPECT_TRUE(rejected(request("sessions.flush", {{"proto", "icmp"}, {"state", "closed"}}), "bad_request",
                         "args.state"));
}

TEST(ControlProtocolSchema, SessionsFlushNeedsAFilterOrAll) {
    EXPECT_TRUE(accepted(request("sessions.flush", {{"all", true}})));
    EXPECT_TRUE(accepted(request("sessions.flush", {{"pool", "lab"}})));
    EXPECT_TRUE(accepted(request("sessions.flush", {{"worker", 0}})));
    EXPECT_TRUE(rejected(request("sessions.flush", json::object()), "bad_request", "at least one filter"));
    EXPECT_TRUE(rejected(request("sessions.flush", {{"all", false}}), "bad_request", "at least one filter"));
    EXPECT_TRUE(rejected(request("sessions.flush", {{"all", true}, {"pool", "lab"}}), "bad_request", "args.all"));
    EXPECT_TRUE(rejected(request("sessions.flush", {{"limit", 5}, {"all", true}}), "bad_request", "args.limit"));
}

TEST(ControlProtocolSchema, PoolAdd) {
    EXPECT_TRUE(accepted(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10-198.19.0.13"}})));
    EXPECT_TRUE(accepted(request(
        "pool.add", {{"name", "A_b-9"}, {"addresses", "198.19.0.10,198.19.1.0/30"}, {"ports", "2000-3000"},
                     {"policy", "retrans-ok"}, {"timeouts", {{"udp", 30}, {"quarantine", 0}}},
                     {"max_sessions_per_host", 100}, {"rules", {"198.18.0.0/24", "10.0.0.0/8"}}})));
    EXPECT_TRUE(rejected(request("pool.add", {{"addresses", "198.19.0.10"}}), "bad_request", "args.name is required"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}}), "bad_request", "args.addresses is required"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", ""}, {"addresses", "198.19.0.10"}}), "bad_request", "args.name"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", std::string(33, 'a')}, {"addresses", "198.19.0.10"}}),
                         "bad_request", "args.name"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.13-198.19.0.10"}}),
                         "bad_request", "args.addresses: address range"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", ""}}), "bad_request", "args.addresses"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"}, {"ports", "0-10"}}),
                         "bad_request", "args.ports"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"}, {"policy", "lenient"}}),
                         "bad_request", "args.policy"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"},
                                              {"max_sessions_per_host", 4294967296u}}),
                         "bad_request", "args.max_sessions_per_host"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"}, {"rules", "10.0.0.0/8"}}),
                         "bad_request", "args.rules must be an array"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"},
                                              {"rules", {"10.0.0.0/8", "10.0.0.1/8"}}}),
                         "bad_request", "args.rules[1]"));
    EXPECT_TRUE(rejected(request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"}, {"rules", {1}}}),
                         "bad_request", "args.rules[0]"));
}

TEST(ControlProtocolSchema, Timeouts) {
    auto add = [](const json& t) {
        return request("pool.add", {{"name", "lab"}, {"addresses", "198.19.0.10"}, {"timeouts", t}});
    };
    EXPECT_TRUE(accepted(add(json::object())));
    EXPECT_TRUE(accepted(add({{"tcp_established", 604800}, {"tcp_transitory", 1}, {"udp", 1}, {"icmp", 1},
                              {"quarantine", 0}, {"linger", 1}})));
    EXPECT_TRUE(rejected(add({{"udp", 0}}), "bad_request", "args.timeouts.udp must be an integer 1..604800"));
    EXPECT_TRUE(rejected(add({{"linger", 0}}), "bad_request", "args.timeouts.linger"));
    EXPECT_TRUE(rejected(add({{"quarantine", 604801}}), "bad_request", "args.timeouts.quarantine"));
    EXPECT_TRUE(rejected(add({{"tcp_established", "1h"}}), "bad_request", "args.timeouts.tcp_established"));
    EXPECT_TRUE(rejected(add({{"tcp", 5}}), "bad_request", "args.timeouts.tcp is not a timeout"));
    EXPECT_TRUE(rejected(add(json::array()), "bad_request", "args.timeouts must be an object"));

    EXPECT_TRUE(accepted(request("timeouts.set", {{"pool", "lab"}, {"timeouts", {{"icmp", 10}}}})));
    EXPECT_TRUE(rejected(request("timeouts.set", {{"pool", "lab"}, {"timeouts", json::object()}}), "bad_request",
                         "at least one timeout"));
    EXPECT_TRUE(rejected(request("timeouts.set", {{"pool", "lab"}}), "bad_request", "args.timeouts is required"));
    EXPECT_TRUE(rejected(request("timeouts.set", {{"timeouts", {{"icmp", 10}}}}), "bad_request",
                         "args.pool is required"));
}

TEST(ControlProtocolSchema, PoolDelAndSet) {
    EXPECT_TRUE(accepted(request("pool.del", {{"name", "lab"}})));
    EXPECT_TRUE(rejected(request("pool.del", json::object()), "bad_request", "args.name is required"));
    EXPECT_TRUE(rejected(request("pool.del", {{"name", 1}}), "bad_request", "args.name must be a string"));

    EXPECT_TRUE(accepted(request("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.20"}})));
    EXPECT_TRUE(accepted(request("pool.set", {{"name", "lab"}, {"rules", json::array()}})));
    EXPECT_TRUE(accepted(request("pool.set", {{"name", "lab"}, {"del_addresses", "198.19.0.10"},
                                              {"ports", "1024-2047"}, {"max_sessions_per_host", 0}})));
    EXPECT_TRUE(rejected(request("pool.set", {{"name", "lab"}}), "bad_request", "at least one of"));
    EXPECT_TRUE(rejected(request("pool.set", {{"name", "lab"}, {"add_addresses", "198.19.0.300"}}), "bad_request",
                         "args.add_addresses"));
    EXPECT_TRUE(rejected(request("pool.set", {{"name", "lab"}, {"del_addresses", "x"}}), "bad_request",
                         "args.del_addresses"));
    EXPECT_TRUE(rejected(request("pool.set", {{"name", "lab"}, {"policy", "strict"}}), "bad_request", "args.policy"));
}

TEST(ControlProtocolSchema, PolicyLogLevelSave) {
    EXPECT_TRUE(accepted(request("policy.set", {{"pool", "lab"}, {"policy", "strict"}})));
    EXPECT_TRUE(rejected(request("policy.set", {{"pool", "lab"}}), "bad_request", "args.policy is required"));
    EXPECT_TRUE(rejected(request("policy.set", {{"pool", "lab"}, {"policy", "Strict"}}), "bad_request", "args.policy"));

    for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"})
        EXPECT_TRUE(accepted(request("log.level", {{"level", level}}))) << level;
    EXPECT_TRUE(rejected(request("log.level", {{"level", "verbose"}}), "bad_request", "args.level"));
    EXPECT_TRUE(rejected(request("log.level", json::object()), "bad_request", "args.level is required"));

    EXPECT_TRUE(accepted(request("save", json::object())));
    EXPECT_TRUE(accepted(request("save", {{"path", "/etc/snatgw/snatgw.conf"}})));
    EXPECT_TRUE(rejected(request("save", {{"path", "snatgw.conf"}}), "bad_request", "args.path"));
    EXPECT_TRUE(rejected(request("save", {{"path", ""}}), "bad_request", "args.path"));
    EXPECT_TRUE(rejected(request("save", {{"path", std::string("/tmp/a\0b", 8)}}), "bad_request", "args.path"));
}

// ---------------------------------------------------------------------------------------------
// Typed views
// ---------------------------------------------------------------------------------------------

TEST(ControlProtocolTyped, Endpoint) {
    EXPECT_EQ(parse_endpoint("198.19.0.10"), (Endpoint{ip("198.19.0.10"), std::nullopt}));
    EXPECT_EQ(parse_endpoint("198.19.0.10:8080"), (Endpoint{ip("198.19.0.10"), uint16_t{8080}}));
    EXPECT_EQ(parse_endpoint("0.0.0.0:0"), (Endpoint{0, uint16_t{0}}));
    EXPECT_EQ(parse_endpoint("255.255.255.255:65535"), (Endpoint{0xffffffff, uint16_t{65535}}));
    for (const char* bad : {"", ":80", "198.19.0.10:", "198.19.0.10:65536", "198.19.0.10:8o", "198.19.0.10:+1",
                            "198.19.0.10:80:80", "198.19.0:80"})
        EXPECT_THROW(parse_endpoint(bad), ConfigError) << bad;
    EXPECT_EQ(format_endpoint(ip("198.19.0.10"), 1024), "198.19.0.10:1024");
}

TEST(ControlProtocolTyped, ProtoAndPoolNames) {
    EXPECT_EQ(parse_proto("tcp"), IPPROTO_TCP);
    EXPECT_EQ(parse_proto("udp"), IPPROTO_UDP);
    EXPECT_EQ(parse_proto("icmp"), IPPROTO_ICMP);
    EXPECT_THROW(parse_proto("TCP"), ConfigError);
    EXPECT_STREQ(proto_name(IPPROTO_TCP), "tcp");
    EXPECT_STREQ(proto_name(IPPROTO_ICMP), "icmp");
    EXPECT_STREQ(proto_name(99), "?");
    EXPECT_TRUE(is_valid_pool_name("lab"));
    EXPECT_TRUE(is_valid_pool_name(std::string(32, 'z')));
    EXPECT_TRUE(is_valid_pool_name("A-b_0"));
    EXPECT_FALSE(is_valid_pool_name(""));
    EXPECT_FALSE(is_valid_pool_name(std::string(33, 'z')));
    EXPECT_FALSE(is_valid_pool_name("a.b"));
    EXPECT_FALSE(is_valid_pool_name("a b"));
}

TEST(ControlProtocolTyped, SessionFilter) {
    const SessionFilter f = parse_session_filter({{"inside", "198.18.0.2"}, {"outside", "198.19.0.10:1024"},
                                                  {"remote", "198.51.100.1:80"}, {"proto", "udp"},
                                                  {"state", "udp"}, {"worker", 3}, {"pool", "lab"}});
    ASSERT_TRUE(f.inside && f.outside && f.remote && f.proto && f.state && f.worker && f.pool);
    EXPECT_EQ(*f.inside, (Endpoint{ip("198.18.0.2"), std::nullopt}));
    EXPECT_EQ(*f.outside, (Endpoint{ip("198.19.0.10"), uint16_t{1024}}));
    EXPECT_EQ(*f.remote, (Endpoint{ip("198.51.100.1"), uint16_t{80}}));
    EXPECT_EQ(*f.proto, IPPROTO_UDP);
    EXPECT_EQ(*f.state, "udp");
    EXPECT_EQ(*f.worker, 3);
    EXPECT_EQ(*f.pool, "lab");
    EXPECT_FALSE(f.all);
    EXPECT_FALSE(f.empty());

    const SessionFilter all = parse_session_filter({{"all", true}});
    EXPECT_TRUE(all.all);
    EXPECT_TRUE(all.empty());

    try {
        (void)parse_session_filter({{"worker", 99}});
        FAIL() << "worker 99 accepted";
    } catch (const ControlError& e) {
        EXPECT_EQ(e.code, "bad_request");
        EXPECT_NE(std::string(e.what()).find("args.worker"), std::string::npos);
    }
    EXPECT_THROW((void)parse_session_filter(json::array()), ControlError);
}

TEST(ControlProtocolTyped, SessionQueryDefaultsAndValues) {
    const SessionQuery d = parse_session_query(json::object());
    EXPECT_EQ(d.offset, 0u);
    EXPECT_EQ(d.limit, 100u);
    EXPECT_FALSE(d.count_only);
    EXPECT_TRUE(d.filter.empty());

    const SessionQuery q = parse_session_query({{"offset", 200}, {"limit", 50}, {"count_only", true}, {"proto", "tcp"}});
    EXPECT_EQ(q.offset, 200u);
    EXPECT_EQ(q.limit, 50u);
    EXPECT_TRUE(q.count_only);
    EXPECT_EQ(q.filter.proto, IPPROTO_TCP);
}

TEST(ControlProtocolTyped, TimeoutsPartialAndApplied) {
    const PartialTimeouts p = parse_timeouts({{"udp", 30}, {"quarantine", 0}});
    EXPECT_FALSE(p.empty());
    EXPECT_EQ(p.udp, 30u);
    EXPECT_EQ(p.quarantine, 0u);
    EXPECT_FALSE(p.tcp_established.has_value());
    EXPECT_TRUE(parse_timeouts(json::object()).empty());

    Timeouts base;
    base.tcp_established = 1000;
    const Timeouts t = p.applied_to(base);
    EXPECT_EQ(t.udp, 30u);
    EXPECT_EQ(t.quarantine, 0u);
    EXPECT_EQ(t.tcp_established, 1000u);
    EXPECT_EQ(t.icmp, Timeouts{}.icmp);

    EXPECT_EQ(timeouts_to_json(t), json({{"tcp_established", 1000}, {"tcp_transitory", Timeouts{}.tcp_transitory},
                                         {"tcp_syn_sent", Timeouts{}.tcp_syn_sent}, {"tcp_syn_recv", Timeouts{}.tcp_syn_recv},
                                         {"udp", 30}, {"icmp", Timeouts{}.icmp}, {"quarantine", 0},
                                         {"linger", Timeouts{}.linger}}));
    EXPECT_THROW((void)parse_timeouts({{"udp", 0}}), ControlError);
}

TEST(ControlProtocolTyped, PoolAdd) {
    const PoolAddRequest r = parse_pool_add({{"name", "lab"}, {"addresses", "198.19.0.10-198.19.0.11"},
                                             {"policy", "strict"}, {"timeouts", {{"icmp", 5}}},
                                             {"max_sessions_per_host", 7}, {"rules", {"198.18.0.0/24"}}});
    EXPECT_EQ(r.spec.name, "lab");
    EXPECT_EQ(r.spec.addresses, "198.19.0.10-198.19.0.11");
    EXPECT_EQ(r.spec.ports, PoolSpec{}.ports);
    EXPECT_EQ(r.spec.policy, "strict");
    EXPECT_EQ(r.spec.timeouts.icmp, 5u);
    EXPECT_EQ(r.spec.timeouts.udp, Timeouts{}.udp);
    EXPECT_EQ(r.timeouts.icmp, 5u);
    EXPECT_FALSE(r.timeouts.udp.has_value());
    EXPECT_EQ(r.spec.max_sessions_per_host, 7u);
    EXPECT_EQ(r.rules, std::vector<std::string>{"198.18.0.0/24"});

    const PoolAddRequest minimal = parse_pool_add({{"name", "b"}, {"addresses", "198.19.0.12"}});
    EXPECT_EQ(minimal.spec.policy, "liberal");
    EXPECT_TRUE(minimal.rules.empty());
    EXPECT_THROW((void)parse_pool_add({{"name", "b"}}), ControlError);
}

TEST(ControlProtocolTyped, PoolSetKeepsOnlyWhatWasGiven) {
    const PoolSetRequest r = parse_pool_set({{"name", "lab"}, {"add_addresses", "198.19.0.20"}, {"rules", json::array()}});
    EXPECT_EQ(r.name, "lab");
    EXPECT_EQ(r.add_addresses, "198.19.0.20");
    EXPECT_FALSE(r.del_addresses.has_value());
    EXPECT_FALSE(r.ports.has_value());
    EXPECT_FALSE(r.max_sessions_per_host.has_value());
    ASSERT_TRUE(r.rules.has_value());
    EXPECT_TRUE(r.rules->empty());  // given and empty: remove every rule

    const PoolSetRequest s = parse_pool_set({{"name", "lab"}, {"ports", "2000-2999"}, {"max_sessions_per_host", 9}});
    EXPECT_FALSE(s.rules.has_value());
    EXPECT_EQ(s.ports, "2000-2999");
    EXPECT_EQ(s.max_sessions_per_host, 9u);
}

// ---------------------------------------------------------------------------------------------
// Replies and the whole exchange
// ---------------------------------------------------------------------------------------------

TEST(ControlProtocolReply, OkAndErrorLines) {
    const std::string ok = ok_reply(json(7), {{"level", "debug"}});
    ASSERT_FALSE(ok.empty());
    EXPECT_EQ(ok.back(), '\n');
    EXPECT_EQ(ok.find('\n'), ok.size() - 1);
    EXPECT_EQ(json::parse(ok), json({{"version", 1}, {"ok", true}, {"id", 7}, {"result", {{"level", "debug"}}}}));

    const json no_id = json::parse(ok_reply(nullptr, json::object()));
    EXPECT_FALSE(no_id.contains("id"));
    EXPECT_EQ(no_id["result"], json::object());

    const std::string err = error_reply("abc", "not_found", "no pool named 'x'");
    EXPECT_EQ(err.find('\n'), err.size() - 1);
    EXPECT_EQ(json::parse(err), json({{"version", 1}, {"ok", false}, {"id", "abc"},
                                      {"error", {{"code", "not_found"}, {"message", "no pool named 'x'"}}}}));
}

TEST(ControlProtocolReply, MultiLineStringsStayOnOneLine) {
    const std::string r = ok_reply(nullptr, {{"text", "a\nb\r\nc"}});
    EXPECT_EQ(r.find('\n'), r.size() - 1);
    EXPECT_EQ(json::parse(r)["result"]["text"], "a\nb\r\nc");
}

TEST(ControlProtocolReply, InvalidUtf8FromTheHandlerIsReplaced) {
    const std::string r = ok_reply(nullptr, {{"name", std::string("a\xff" "b")}});
    EXPECT_EQ(json::parse(r)["result"]["name"], "a\xEF\xBF\xBD" "b");
}

TEST(ControlProtocolAnswer, CallsTheHandlerWithTheValidatedRequest) {
    ControlRequest seen;
    int calls = 0;
    const std::string reply = answer_request_line(R"({"command":"log.level","args":{"level":"warn"},"id":[1]})",
                                                  [&](const ControlRequest& r) {
                                                      seen = r;
                                                      ++calls;
                                                      return json{{"level", r.args["level"]}};
                                                  });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen.command, "log.level");
    EXPECT_EQ(json::parse(reply), json({{"version", 1}, {"ok", true}, {"id", {1}}, {"result", {{"level", "warn"}}}}));
}

TEST(ControlProtocolAnswer, InvalidRequestsNeverReachTheHandlerAndEchoTheId) {
    int calls = 0;
    const ControlHandler h = [&](const ControlRequest&) {
        ++calls;
        return json::object();
    };
    const json r = json::parse(answer_request_line(R"({"command":"sessions","args":{"limit":0},"id":"q1"})", h));
    EXPECT_EQ(calls, 0);
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(r["id"], "q1");
    EXPECT_EQ(r["error"]["code"], "bad_request");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("args.limit"), std::string::npos);

    const json v = json::parse(answer_request_line(R"({"version":9,"command":"stats","id":5})", h));
    EXPECT_EQ(v["error"]["code"], "unsupported_version");
    EXPECT_EQ(v["id"], 5);

    const json p = json::parse(answer_request_line("{\"id\":5,", h));
    EXPECT_EQ(p["error"]["code"], "parse_error");
    EXPECT_FALSE(p.contains("id"));
    EXPECT_EQ(calls, 0);
}

TEST(ControlProtocolAnswer, HandlerErrorsBecomeReplies) {
    auto answer = [](const ControlHandler& h) { return json::parse(answer_request_line(R"({"command":"stats"})", h)); };
    const json a = answer([](const ControlRequest&) -> json { throw ControlError("conflict", "pool 'x' differs"); });
    EXPECT_EQ(a["error"], json({{"code", "conflict"}, {"message", "pool 'x' differs"}}));
    const json b = answer([](const ControlRequest&) -> json { throw std::out_of_range("vector::at"); });
    EXPECT_EQ(b["error"]["code"], "internal");
    EXPECT_NE(b["error"]["message"].get<std::string>().find("vector::at"), std::string::npos);
    const json c = answer([](const ControlRequest&) -> json { throw 42; });
    EXPECT_EQ(c["error"]["code"], "internal");
    const json d = answer(ControlHandler{});  // no handler at all
    EXPECT_EQ(d["error"]["code"], "internal");
}

TEST(ControlProtocolAnswer, GarbageNeverThrows) {
    const ControlHandler h = [](const ControlRequest&) { return json::object(); };
    std::string bytes;
    uint32_t x = 12345;
    for (int i = 0; i < 2000; ++i) {
        x = x * 1103515245u + 12345u;
        bytes.push_back(static_cast<char>(x >> 16));
        const std::string reply = answer_request_line(bytes, h);
        ASSERT_EQ(reply.find('\n'), reply.size() - 1);
        ASSERT_EQ(json::parse(reply)["ok"], false);
    }
}

}  // namespace
}  // namespace snatgw::test
