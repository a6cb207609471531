// natperf's command line (tools/natperf/options.h): the contract tools/lab codes against -
// required options, defaults, EAL arguments after "--", and a UsageError for each bad input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "options.h"

using namespace natperf;

namespace {

const std::vector<std::string> kBase = {"natperf", "--initiator-port", "net_memif_np0",
                                        "--responder-port", "net_memif_np1",
                                        "--initiator-ip", "198.18.0.100",
                                        "--initiator-gateway", "198.18.0.1",
                                        "--responder-ip", "198.19.0.2"};

Options parse(std::vector<std::string> extra, std::vector<std::string> eal = {}) {
    std::vector<std::string> args = kBase;
    args.insert(args.end(), extra.begin(), extra.end());
    if (!eal.empty()) {
        args.push_back("--");
        args.insert(args.end(), eal.begin(), eal.end());
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    Options o;
    std::string help;
    EXPECT_TRUE(parse_options(static_cast<int>(argv.size()), argv.data(), o, &help));
    return o;
}

void expect_usage_error(std::vector<std::string> extra, const std::string& needle) {
    try {
        parse(std::move(extra));
        ADD_FAILURE() << "no UsageError, expected one mentioning " << needle;
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(NatperfOptions, DefaultsAndEalArguments) {
    const Options o = parse({}, {"--no-huge", "-l", "1", "--vdev", "net_memif_np0,role=client"});
    EXPECT_EQ(o.initiator_port, "net_memif_np0");
    EXPECT_EQ(o.initiator_ip, 0xc6120064u);
    EXPECT_EQ(o.initiator_gateway, 0xc6120001u);
    EXPECT_EQ(o.responder_ip, 0xc6130002u);
    EXPECT_EQ(o.responder_gateway, 0u);
    EXPECT_EQ(o.proto, Proto::Udp);
    EXPECT_EQ(o.src.lo, 10000);
    EXPECT_EQ(o.src.hi, 10099);
    EXPECT_EQ(o.dst.lo, 80);
    EXPECT_EQ(o.dst.hi, 89);
    EXPECT_EQ(o.tuples(), 1000u);
    EXPECT_EQ(o.frame_size, 64u);
    ASSERT_EQ(o.tests.size(), 1u);
    EXPECT_EQ(o.tests[0], TestKind::Throughput);
    EXPECT_EQ(o.direction, Direction::Forward);
    EXPECT_EQ(o.phase1_rate, 10000);
    EXPECT_EQ(o.duration, 10);
    EXPECT_EQ(o.timeout_ms, 2000);
    EXPECT_EQ(o.capacity_max, 1000u);  // all tuples
    const std::vector<std::string> eal = {"--no-huge", "-l", "1", "--vdev", "net_memif_np0,role=client"};
    EXPECT_EQ(o.eal_args, eal);
}

TEST(NatperfOptions, EveryContractOption) {
    const Options o = parse({"--responder-gateway", "198.19.0.1", "--proto", "tcp", "--src-ports", "2000-2999",
                             "--dst-ports", "443", "--tests", "max-conn-rate,teardown-rate,capacity",
                             "--direction", "bidirectional", "--rate", "5000", "--rate-min", "100",
                             "--rate-max", "90000", "--precision", "50", "--duration", "0.5",
                             "--timeout", "300", "--flush-command", "conntrack -F", "--capacity-start", "10",
                             "--capacity-max", "900", "--seed", "7", "--json", "-"});
    EXPECT_EQ(o.responder_gateway, 0xc6130001u);
    EXPECT_EQ(o.proto, Proto::Tcp);
    EXPECT_EQ(o.tuples(), 1000u);
    EXPECT_EQ(o.tests.size(), 3u);
    EXPECT_EQ(o.direction, Direction::Bidirectional);
    EXPECT_EQ(o.phase1_rate, 5000);  // --rate is the phase-1 default
    EXPECT_EQ(o.rate_min, 100);
    EXPECT_EQ(o.rate_max, 90000);
    EXPECT_EQ(o.precision, 50);
    EXPECT_EQ(o.duration, 0.5);
    EXPECT_EQ(o.timeout_ms, 300);
    EXPECT_EQ(o.flush_command, "conntrack -F");
    EXPECT_EQ(o.capacity_start, 10u);
    EXPECT_EQ(o.capacity_max, 900u);
    EXPECT_EQ(o.seed, 7u);
    EXPECT_EQ(o.json, "-");
    EXPECT_EQ(parse({"--rate", "5000", "--phase1-rate", "300"}).phase1_rate, 300);
}

TEST(NatperfOptions, BadInputIsAUsageError) {
    expect_usage_error({"--proto", "tcp"}, "UDP only");
    expect_usage_error({"--tests", "frame-loss"}, "needs --rate");
    expect_usage_error({"--tests", "latency"}, "needs --rate");
    expect_usage_error({"--tests", "capacity"}, "needs --flush-command");
    expect_usage_error({"--tests", "teardown-rate"}, "needs --flush-command");
    expect_usage_error({"--tests", "max-conn-rate"}, "--fresh-ports");
    expect_usage_error({"--tests", "throughput,bogus"}, "unknown test 'bogus'");
    expect_usage_error({"--src-ports", "0-10"}, "--src-ports");
    expect_usage_error({"--dst-ports", "90-80"}, "--dst-ports");
    expect_usage_error({"--dst-ports", "80-"}, "--dst-ports");
    expect_usage_error({"--frame-size", "63"}, "--frame-size");
    expect_usage_error({"--frame-size", "1519"}, "--frame-size");
    expect_usage_error({"--proto", "tcp", "--tests", "capacity", "--flush-command", "x", "--frame-size", "128"},
                       "--frame-size");
    expect_usage_error({"--proto", "sctp"}, "--proto");
    expect_usage_error({"--direction", "sideways"}, "--direction");
    expect_usage_error({"--rate-min", "10", "--rate-max", "5"}, "--rate-max");
    expect_usage_error({"--duration", "0"}, "--duration");
    expect_usage_error({"--capacity-max", "1001"}, "--capacity-max");
    expect_usage_error({"--responder-gateway", "198.19.0"}, "--responder-gateway");
    expect_usage_error({"--no-such-option"}, "no-such-option");
    expect_usage_error({"--src-ports", "1-65535", "--dst-ports", "1-1000"}, "at most");
}

TEST(NatperfOptions, RequiredOptionsAndHelp) {
    std::vector<std::string> args = {"natperf", "--initiator-port", "a"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    Options o;
    EXPECT_THROW(parse_options(static_cast<int>(argv.size()), argv.data(), o, nullptr), UsageError);
    std::vector<std::string> h = {"natperf", "--help"};
    std::vector<char*> hv;
    for (std::string& a : h) hv.push_back(a.data());
    std::string help;
    Options o2;
    EXPECT_FALSE(parse_options(static_cast<int>(hv.size()), hv.data(), o2, &help));
    EXPECT_NE(help.find("--initiator-gateway"), std::string::npos);
    EXPECT_NE(help.find("--flush-command"), std::string::npos);
}
