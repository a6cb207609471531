// Tests the daemon's configuration (control/daemon_config.h): the shipped conf/snatgw.conf,
// defaults, command-line overrides, --help, render_config_file round trips, and one case per
// class of error, each checking that the message names the place, the option and the problem.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <vector>

#include "daemon_config.h"

#ifndef SNATGW_SOURCE_DIR
#error "SNATGW_SOURCE_DIR must name the source tree (for conf/snatgw.conf)"
#endif

namespace snatgw::test {
namespace {

namespace fs = std::filesystem;

// A valid configuration; the error cases each change one thing in it.
const std::string kBase =
    "[dataplane]\n"
    "workers = 2\n"
    "[inside]\n"
    "device = net_af_xdp0,iface=snatgw-in\n"
    "address = 198.18.0.1/24\n"
    "[outside]\n"
    "device = net_af_xdp1,iface=snatgw-out\n"
    "address = 198.19.0.1/24\n"
    "gateway = 198.19.0.254\n"
    "[routes]\n"
    "route = 198.19.8.0/24 via 198.19.0.7\n"
    "[pool.lab]\n"
    "addresses = 198.19.0.10-198.19.0.11\n"
    "[nat]\n"
    "rule = 198.18.0.0/24 lab\n"
    "[control]\n";

uint32_t ip(const char* s) { return parse_ipv4(s); }

class TempDir {
public:
    TempDir() {
        static int counter = 0;
        dir_ = fs::temp_directory_path() /
               ("snatgw-cfg-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        fs::create_directories(dir_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        const fs::path p = dir_ / name;
        std::ofstream(p) << text;
        return p.string();
    }

private:
    fs::path dir_;
};

CommandLine parse(std::vector<std::string> args) {
    args.insert(args.begin(), "snatgw");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

CommandLine parse_text(const std::string& text, std::vector<std::string> extra = {}) {
    TempDir dir;
    extra.insert(extra.begin(), {"--config", dir.write("test.conf", text)});
    return parse(extra);
}

// The ConfigError message of parsing `args` ("" when it parsed).
std::string error_of(const std::vector<std::string>& args) {
    try {
        (void)parse(args);
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
    return ::testing::AssertionSuccess() << msg;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    if (from.empty()) return text + to;
    const std::size_t at = text.find(from);
    if (at == std::string::npos) throw std::logic_error("test bug: '" + from + "' not in the config");
    return text.replace(at, from.size(), to);
}

int line_of(const std::string& text, const std::string& needle) {
    const std::size_t at = text.find(needle);
    if (at == std::string::npos) throw std::logic_error("test bug: '" + needle + "' not in the config");
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
}

// Every field a config file carries (nat is derived; eal_args come from the command line).
void expect_same(const DaemonConfig& a, const DaemonConfig& b) {
    EXPECT_EQ(a.workers, b.workers);
    EXPECT_EQ(a.lcores, b.lcores);
    EXPECT_EQ(a.mbufs, b.mbufs);
    EXPECT_EQ(a.burst, b.burst);
    EXPECT_EQ(a.sessions, b.sessions);
    EXPECT_EQ(a.hosts, b.hosts);
    EXPECT_EQ(a.idle_polls, b.idle_polls);
    EXPECT_EQ(a.idle_sleep_us, b.idle_sleep_us);
    EXPECT_EQ(a.steering, b.steering);
    EXPECT_EQ(a.handoff_ring, b.handoff_ring);
    EXPECT_EQ(a.forward_unmatched, b.forward_unmatched);
    EXPECT_EQ(a.inside, b.inside);
    EXPECT_EQ(a.outside, b.outside);
    EXPECT_EQ(a.routes, b.routes);
    ASSERT_EQ(a.pools.size(), b.pools.size());
    for (std::size_t i = 0; i < a.pools.size(); ++i) {
        const PoolSpec &p = a.pools[i], &q = b.pools[i];
        EXPECT_EQ(p.name, q.name);
        EXPECT_EQ(p.addresses, q.addresses);
        EXPECT_EQ(p.ports, q.ports);
        EXPECT_EQ(p.policy, q.policy);
        EXPECT_EQ(p.timeouts.tcp_established, q.timeouts.tcp_established);
        EXPECT_EQ(p.timeouts.tcp_transitory, q.timeouts.tcp_transitory);
        EXPECT_EQ(p.timeouts.udp, q.timeouts.udp);
        EXPECT_EQ(p.timeouts.icmp, q.timeouts.icmp);
        EXPECT_EQ(p.timeouts.quarantine, q.timeouts.quarantine);
        EXPECT_EQ(p.timeouts.linger, q.timeouts.linger);
        EXPECT_EQ(p.max_sessions_per_host, q.max_sessions_per_host);
    }
    ASSERT_EQ(a.rules.size(), b.rules.size());
    for (std::size_t i = 0; i < a.rules.size(); ++i) {
        EXPECT_EQ(a.rules[i].prefix, b.rules[i].prefix);
        EXPECT_EQ(a.rules[i].pool, b.rules[i].pool);
    }
    EXPECT_EQ(a.control_socket, b.control_socket);
    EXPECT_EQ(a.metrics, b.metrics);
    EXPECT_EQ(a.log_level, b.log_level);
}

// ---------------------------------------------------------------------------------------------
// Valid configurations
// ---------------------------------------------------------------------------------------------

TEST(DaemonConfigFile, ShippedLabConfigParses) {
    const CommandLine cl = parse({"--config", std::string(SNATGW_SOURCE_DIR) + "/conf/snatgw.conf"});
    const DaemonConfig& c = cl.config;
    EXPECT_FALSE(cl.help);
    EXPECT_FALSE(cl.check_only);
    EXPECT_EQ(c.workers, 1);
    EXPECT_EQ(c.idle_sleep_us, 100u);
    EXPECT_EQ(c.inside.role, "inside");
    EXPECT_EQ(c.inside.device, "net_af_xdp0,iface=snatgw-in");
    EXPECT_FALSE(c.inside.is_pci());
    EXPECT_EQ(c.inside.address, ip("198.18.0.1"));
    EXPECT_EQ(c.inside.prefix_len, 24);
    EXPECT_EQ(c.outside.device, "net_af_xdp1,iface=snatgw-out");
    EXPECT_EQ(c.outside.address, ip("198.19.0.1"));
    EXPECT_EQ(c.outside.gateway, 0u);  // the lab server is on the outside subnet
    EXPECT_TRUE(c.routes.empty());
    ASSERT_EQ(c.pools.size(), 1u);
    EXPECT_EQ(c.pools[0].name, "lab");
    EXPECT_EQ(c.pools[0].policy, "liberal");
    ASSERT_EQ(c.nat.pools.size(), 1u);
    EXPECT_EQ(c.nat.pools[0].addresses, (std::vector<uint32_t>{ip("198.19.0.10"), ip("198.19.0.11")}));
    EXPECT_EQ(c.nat.pools[0].port_min, 1024);
    EXPECT_EQ(c.nat.pools[0].port_max, 65535);
    ASSERT_EQ(c.nat.rules.size(), 1u);
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.0.7")), &c.nat.pools[0]);
    EXPECT_EQ(c.nat.pool_for_source(ip("198.19.0.7")), nullptr);
    EXPECT_EQ(c.control_socket, "/run/snatgw/snatgw.sock");
    EXPECT_EQ(c.metrics, "127.0.0.1:9469");
    EXPECT_EQ(effective_lcores(c), "0-1");
}

TEST(DaemonConfigFile, UnsetOptionsTakeTheDocumentedDefaults) {
    const DaemonConfig c = parse_text(kBase).config;
    const DaemonConfig d;
    EXPECT_EQ(c.workers, 2);  // set by kBase
    EXPECT_EQ(c.lcores, d.lcores);
    EXPECT_EQ(c.mbufs, d.mbufs);
    EXPECT_EQ(c.burst, d.burst);
    EXPECT_EQ(c.sessions, d.sessions);
    EXPECT_EQ(c.hosts, d.hosts);
    EXPECT_EQ(c.idle_polls, d.idle_polls);
    EXPECT_EQ(c.idle_sleep_us, d.idle_sleep_us);
    EXPECT_EQ(c.steering, d.steering);
    EXPECT_EQ(c.handoff_ring, d.handoff_ring);
    EXPECT_EQ(c.forward_unmatched, d.forward_unmatched);
    EXPECT_EQ(c.control_socket, d.control_socket);
    EXPECT_EQ(c.metrics, d.metrics);
    EXPECT_EQ(c.log_level, d.log_level);
    const PoolSpec p;
    EXPECT_EQ(c.pools.at(0).ports, p.ports);
    EXPECT_EQ(c.pools.at(0).policy, p.policy);
    EXPECT_EQ(c.pools.at(0).timeouts.quarantine, p.timeouts.quarantine);
    EXPECT_EQ(c.outside.gateway, ip("198.19.0.254"));
    ASSERT_EQ(c.routes.size(), 1u);
    EXPECT_EQ(c.routes[0], (RouteSpec{ip("198.19.8.0"), 24, ip("198.19.0.7")}));
    EXPECT_EQ(c.nat.workers, 2);
    EXPECT_EQ(effective_lcores(c), "0-2");
}

TEST(DaemonConfigFile, CommentsPciAddressesAndRepeatedOptions) {
    const std::string text = replaced(
        replaced(kBase, "device = net_af_xdp0,iface=snatgw-in", "device = 0000:03:00.0   # first NIC"),
        "route = 198.19.8.0/24 via 198.19.0.7",
        "route = 198.19.8.0/24 via 198.19.0.7 ; lab\n; whole-line comment\nroute = 10.0.0.0/8 via 198.19.0.8");
    const DaemonConfig c = parse_text(text).config;
    EXPECT_EQ(c.inside.device, "0000:03:00.0");
    EXPECT_TRUE(c.inside.is_pci());
    EXPECT_TRUE((PortSpec{"inside", "03:00.1"}.is_pci()));
    EXPECT_FALSE((PortSpec{"inside", "0000:03:00.8"}.is_pci()));
    ASSERT_EQ(c.routes.size(), 2u);
    EXPECT_EQ(c.routes[1], (RouteSpec{ip("10.0.0.0"), 8, ip("198.19.0.8")}));
}

TEST(DaemonConfigFile, DocumentedExampleParses) {
    std::ifstream in(std::string(SNATGW_SOURCE_DIR) + "/docs/configuration.md");
    const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t section = doc.find("\n## Example");
    ASSERT_NE(section, std::string::npos);
    const std::size_t begin = doc.find("```\n", section) + 4;
    const std::string example = doc.substr(begin, doc.find("```", begin) - begin);
    const DaemonConfig c = parse_text(example).config;
    EXPECT_EQ(c.workers, 2);
    EXPECT_TRUE(c.inside.is_pci());
    ASSERT_EQ(c.pools.size(), 2u);
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.200.9"))->name, "servers");
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.7.9"))->name, "clients");
}

TEST(DaemonConfigCommandLine, OverridesWinOverTheFile) {
    const std::string extra_pool = "[pool.big]\naddresses = 198.19.1.0/28\n";
    const CommandLine cl = parse_text(kBase + extra_pool,
                                      {"--dataplane.workers", "4", "--dataplane.steering=software",
                                       "--dataplane.forward_unmatched", "yes", "--outside.gateway", "",
                                       "--nat.rule", "198.18.0.0/24 big", "--nat.rule", "198.18.0.128/25 lab",
                                       "--pool.lab.policy", "strict", "--pool.big.ports=2000-2999",
                                       "--control.metrics", "", "--check-config",
                                       "--", "--no-pci", "--vdev", "net_null0"});
    const DaemonConfig& c = cl.config;
    EXPECT_TRUE(cl.check_only);
    EXPECT_EQ(c.workers, 4);
    EXPECT_EQ(c.nat.workers, 4);
    EXPECT_EQ(c.steering, "software");
    EXPECT_TRUE(c.forward_unmatched);
    EXPECT_EQ(c.outside.gateway, 0u);
    EXPECT_EQ(c.metrics, "");
    EXPECT_EQ(c.inside.device, "net_af_xdp0,iface=snatgw-in");  // not overridden: from the file
    ASSERT_EQ(c.rules.size(), 2u);  // the command line's list replaces the file's
    EXPECT_EQ(c.rules[0].pool, "big");
    EXPECT_EQ(c.rules[1].pool, "lab");
    ASSERT_EQ(c.pools.size(), 2u);
    EXPECT_EQ(c.pools[0].policy, "strict");
    EXPECT_EQ(c.pools[0].addresses, "198.19.0.10-198.19.0.11");
    EXPECT_EQ(c.pools[1].ports, "2000-2999");
    EXPECT_EQ(c.nat.pools[0].policy, Policy::Strict);
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.0.200"))->name, "lab");  // longest prefix
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.0.2"))->name, "big");
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-pci", "--vdev", "net_null0"}));
}

TEST(DaemonConfigCommandLine, PoolDefinedOnlyOnTheCommandLine) {
    const DaemonConfig c = parse_text(kBase, {"--pool.extra.addresses", "198.19.2.1",
                                              "--nat.rule", "198.18.0.0/25 extra"}).config;
    ASSERT_EQ(c.pools.size(), 2u);
    EXPECT_EQ(c.pools[1].name, "extra");
    EXPECT_EQ(c.nat.pool_for_source(ip("198.18.0.1"))->name, "extra");
}

TEST(DaemonConfigCommandLine, HelpListsEveryOptionWithDefaultsAndReadsNoFile) {
    const CommandLine cl = parse({"--config", "/nonexistent/snatgw.conf", "--help"});
    EXPECT_TRUE(cl.help);
    const std::string& h = cl.help_text;
    for (const char* option :
         {"--config", "--check-config", "--help", "dataplane.workers", "dataplane.lcores", "dataplane.mbufs",
          "dataplane.burst", "dataplane.sessions", "dataplane.hosts", "dataplane.idle_polls",
          "dataplane.idle_sleep_us", "dataplane.steering", "dataplane.handoff_ring",
          "dataplane.forward_unmatched", "inside.device", "inside.address", "outside.device",
          "outside.address", "outside.gateway", "routes.route", "nat.rule", "control.socket",
          "control.metrics", "control.log_level", "pool.NAME.addresses", "pool.NAME.ports",
          "pool.NAME.policy", "pool.NAME.tcp_established", "pool.NAME.tcp_transitory", "pool.NAME.udp",
          "pool.NAME.icmp", "pool.NAME.quarantine", "pool.NAME.linger", "pool.NAME.max_sessions_per_host",
          "EAL"})
        EXPECT_NE(h.find(option), std::string::npos) << "help lacks " << option << ":\n" << h;
    for (const char* fragment : {"(=262143)", "(=16383)", "(=auto)", "(=/run/snatgw/snatgw.sock)",
                                 "(=127.0.0.1:9469)", "(=7440)", "(=liberal)", "(=1024-65535)"})
        EXPECT_NE(h.find(fragment), std::string::npos) << "help lacks default " << fragment;
}

TEST(DaemonConfigRender, RoundTripsEveryField) {
    const std::string rich =
        "[dataplane]\nworkers = 3\nlcores = 0,2-4\nmbufs = 8191\nburst = 16\nsessions = 1024\n"
        "hosts = 100\nidle_polls = 7\nidle_sleep_us = 250\nsteering = flow\nhandoff_ring = 256\n"
        "forward_unmatched = on\n"
        "[inside]\ndevice = 0000:03:00.0\naddress = 198.18.0.1/23\n"
        "[outside]\ndevice = net_af_packet0,iface=eth1,qpairs=3\naddress = 198.19.0.1/24\n"
        "gateway = 198.19.0.254\n"
        "[routes]\nroute = 198.19.8.0/24 via 198.19.0.7\nroute = 198.19.9.0/25 via 198.19.0.8\n"
        "[pool.a]\naddresses = 198.19.0.10-198.19.0.11, 198.19.1.0/30\nports = 2000-60000\n"
        "policy = retrans-ok\ntcp_established = 100\ntcp_transitory = 20\nudp = 30\nicmp = 10\n"
        "quarantine = 0\nlinger = 5\nmax_sessions_per_host = 50\n"
        "[pool.b]\naddresses = 198.19.2.1\n"
        "[nat]\nrule = 198.18.0.0/23 a\nrule = 198.18.1.0/24 b\n"
        "[control]\nsocket = /tmp/x.sock\nmetrics =\nlog_level = debug\n";
    const DaemonConfig first = parse_text(rich, {"--", "-a", "0000:03:00.0"}).config;
    EXPECT_EQ(first.metrics, "");
    EXPECT_EQ(first.lcores, "0,2-4");
    const std::string file = render_config_file(first);
    EXPECT_NE(file.find("-a 0000:03:00.0"), std::string::npos) << "EAL arguments noted as a comment";
    const DaemonConfig second = parse_text(file).config;
    expect_same(first, second);
    DaemonConfig without_eal = first;
    without_eal.eal_args.clear();
    EXPECT_EQ(render_config_file(second), render_config_file(without_eal));

    // A newline in an EAL argument stays inside the comment line (found by hand while fuzzing:
    // it used to start lines of its own in the saved file).
    DaemonConfig injected = first;
    injected.eal_args = {"0\n[pool.evil]\naddresses = 198.19.9.9"};
    const std::string saved = render_config_file(injected);
    EXPECT_EQ(saved.find("\n[pool.evil]"), std::string::npos) << saved;
    expect_same(first, parse_text(saved).config);

    // And the shipped lab file, whose defaults are spelled out.
    const DaemonConfig lab = parse({"--config", std::string(SNATGW_SOURCE_DIR) + "/conf/snatgw.conf"}).config;
    expect_same(lab, parse_text(render_config_file(lab)).config);
}

// ---------------------------------------------------------------------------------------------
// Errors: one case per class. Each edits kBase (replacing `from` with `to`, or appending `to`
// when `from` is empty), adds `args`, and checks the message. `line` (when set) is text of
// the edited file whose line number the message must cite as "test.conf:N:".
// ---------------------------------------------------------------------------------------------

struct ErrorCase {
    const char* name;
    std::string from, to;
    std::vector<std::string> parts;
    std::string line = {};
    std::vector<std::string> args = {};
};

void PrintTo(const ErrorCase& e, std::ostream* os) { *os << e.name; }

class DaemonConfigError : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(DaemonConfigError, MessageNamesOptionAndProblem) {
    const ErrorCase& e = GetParam();
    TempDir dir;
    const std::string text = replaced(kBase, e.from, e.to);
    std::vector<std::string> args = e.args;
    if (std::find(args.begin(), args.end(), "--config") == args.end())
        args.insert(args.begin(), {"--config", dir.write("test.conf", text)});
    const std::string msg = error_of(args);
    EXPECT_TRUE(mentions(msg, e.parts));
    if (!e.line.empty()) {
        EXPECT_TRUE(mentions(msg, {"test.conf:" + std::to_string(line_of(text, e.line)) + ": "}));
    }
}

const ErrorCase kErrorCases[] = {
    // Keys and sections
    {"typo_key", "workers = 2", "wokers = 2",
     {"dataplane.wokers", "unknown option 'wokers'", "did you mean 'workers'"}, "wokers"},
    {"typo_pool_key", "addresses = 198.19.0.10-198.19.0.11", "adresses = 198.19.0.10",
     {"pool.lab.adresses", "unknown pool option", "did you mean 'addresses'"}, "adresses"},
    {"unknown_section", "[control]", "[contrl]", {"unknown section [contrl]", "did you mean 'control'"}, "[contrl]"},
    {"option_outside_section", "[dataplane]\n", "burst = 4\n[dataplane]\n", {"'burst' is outside any section"}, "burst"},
    {"key_given_twice", "workers = 2", "workers = 2\nworkers = 3",
     {"dataplane.workers", "given twice (first at line 2)"}, "workers = 3"},
    {"section_given_twice", "", "[dataplane]\nburst = 4\n", {"section [dataplane] appears twice (first at line 1)"}},
    {"line_without_equals", "[control]", "[control]\nsocket /tmp/x", {"expected 'option = value'"}, "socket /tmp/x"},
    {"bad_pool_name", "[pool.lab]", "[pool.la b]\n[pool.lab]", {"pool name"}, "la b"},
    // Addresses, prefixes, subnets
    {"bad_address", "address = 198.18.0.1/24", "address = 198.18.0.300/24",
     {"inside.address", "'198.18.0.300' is not an IPv4 address"}, "198.18.0.300"},
    {"address_without_prefix", "address = 198.18.0.1/24", "address = 198.18.0.1",
     {"inside.address", "needs a prefix length"}},
    {"bad_prefix_length", "address = 198.18.0.1/24", "address = 198.18.0.1/33", {"inside.address", "out of range 1..31"}},
    {"address_is_network", "address = 198.18.0.1/24", "address = 198.18.0.0/24",
     {"inside.address", "network or broadcast"}},
    {"gateway_outside_subnet", "gateway = 198.19.0.254", "gateway = 198.20.0.1",
     {"outside.gateway: 198.20.0.1 is not in the outside subnet 198.19.0.0/24"}, "198.20.0.1"},
    {"gateway_is_own_address", "gateway = 198.19.0.254", "gateway = 198.19.0.1",
     {"outside.gateway", "own outside address"}},
    {"overlapping_subnets", "address = 198.19.0.1/24", "address = 198.18.0.2/16",
     {"outside.address", "198.18.0.0/16 overlaps the inside subnet 198.18.0.0/24"}, "198.18.0.2/16"},
    {"route_via_outside_subnet", "via 198.19.0.7", "via 198.20.0.7",
     {"routes.route", "198.20.0.7 is not in the outside subnet"}, "198.20.0.7"},
    {"route_malformed", "via 198.19.0.7", "through 198.19.0.7", {"routes.route", "is not 'PREFIX/LEN via NEXTHOP'"}},
    {"route_host_bits", "198.19.8.0/24 via", "198.19.8.1/24 via", {"routes.route", "did you mean 198.19.8.0/24"}},
    {"route_into_inside_subnet", "198.19.8.0/24 via", "198.18.0.128/25 via", {"routes.route", "lies in the inside subnet"}},
    {"route_twice", "[pool.lab]", "route = 198.19.8.0/24 via 198.19.0.9\n[pool.lab]",
     {"routes.route", "198.19.8.0/24 has two routes"}, "198.19.0.9"},
    {"default_route_twice", "[pool.lab]", "route = 0.0.0.0/0 via 198.19.0.9\n[pool.lab]",
     {"routes.route", "default route is already given by outside.gateway"}, "0.0.0.0/0"},
    // Devices
    {"missing_device", "device = net_af_xdp1,iface=snatgw-out\n", "",
     {"outside.device", "missing", "device"}},
    {"missing_address", "address = 198.18.0.1/24\n", "", {"inside.address", "missing"}},
    {"bad_device", "device = net_af_xdp1,iface=snatgw-out", "device = net_af_xdp1 iface=snatgw-out",
     {"outside.device", "neither a PCI address", "nor a vdev"}, "net_af_xdp1 iface"},
    {"same_vdev_name", "device = net_af_xdp1,iface=snatgw-out", "device = net_af_xdp0,iface=other",
     {"outside.device", "vdev name 'net_af_xdp0'", "own name"}},
    // Numbers and words
    {"bad_number", "workers = 2", "workers = two", {"dataplane.workers", "'two' is not a number"}, "two"},
    {"negative_number", "workers = 2", "workers = -1", {"dataplane.workers", "'-1' is not a number"}},
    {"workers_out_of_range", "workers = 2", "workers = 65", {"dataplane.workers", "65 is out of range 1..64"}, "65"},
    {"burst_out_of_range", "[control]", "[control]", {"dataplane.burst", "out of range 1..64", "command line"},
     "", {"--dataplane.burst", "65"}},
    {"handoff_ring_not_power_of_two", "workers = 2", "workers = 2\nhandoff_ring = 1000",
     {"dataplane.handoff_ring", "1000 is not a power of two"}, "1000"},
    {"handoff_ring_too_small", "workers = 2", "workers = 2\nhandoff_ring = 32",
     {"dataplane.handoff_ring", "out of range 64..65536"}},
    {"sessions_too_few", "workers = 2", "workers = 2\nsessions = 10", {"dataplane.sessions", "out of range 64.."}},
    {"idle_sleep_too_long", "workers = 2", "workers = 2\nidle_sleep_us = 100001",
     {"dataplane.idle_sleep_us", "out of range 0..100000"}},
    {"bad_steering", "workers = 2", "workers = 2\nsteering = magic",
     {"dataplane.steering", "'magic' is not one of auto, rss, flow, software"}, "magic"},
    {"bad_bool", "workers = 2", "workers = 2\nforward_unmatched = maybe", {"dataplane.forward_unmatched", "not a boolean"}},
    {"lcores_count", "workers = 2", "workers = 2\nlcores = 0-1", {"dataplane.lcores", "has 2 cores", "need 3"}},
    {"lcores_syntax", "workers = 2", "workers = 2\nlcores = 0-2x", {"dataplane.lcores", "not a core list"}},
    {"bad_log_level", "[control]", "[control]\nlog_level = loud", {"control.log_level", "'loud' is not one of"}},
    {"relative_socket", "[control]", "[control]\nsocket = snatgw.sock", {"control.socket", "not an absolute path"}},
    {"bad_metrics", "[control]", "[control]\nmetrics = localhost", {"control.metrics", "ADDRESS:PORT"}},
    {"bad_metrics_port", "[control]", "[control]\nmetrics = 127.0.0.1:0", {"control.metrics", "out of range 1..65535"}},
    // Pools and rules
    {"unknown_pool_in_rule", "rule = 198.18.0.0/24 lab", "rule = 198.18.0.0/24 lbs",
     {"nat.rule", "no pool named 'lbs'"}, "lbs"},
    {"rule_malformed", "rule = 198.18.0.0/24 lab", "rule = 198.18.0.0/24 -> lab", {"nat.rule", "'PREFIX/LEN POOL'"}},
    {"rule_twice", "rule = 198.18.0.0/24 lab", "rule = 198.18.0.0/24 lab\nrule = 198.18.0.0/24 lab",
     {"nat.rule", "198.18.0.0/24 already has a rule"}},
    {"no_rule", "rule = 198.18.0.0/24 lab\n", "", {"nat.rule", "missing"}},
    {"no_pool", "[pool.lab]\naddresses = 198.19.0.10-198.19.0.11\n", "", {"no pool", "[pool.NAME]"}},
    {"pool_without_addresses", "addresses = 198.19.0.10-198.19.0.11\n", "",
     {"pool.lab.addresses", "missing"}, "[pool.lab]"},
    {"pool_address_is_interface_address", "198.19.0.10-198.19.0.11", "198.19.0.1-198.19.0.2",
     {"pool.lab.addresses", "198.19.0.1 is the outside port's own address"}, "198.19.0.1-"},
    {"pool_address_in_inside_subnet", "198.19.0.10-198.19.0.11", "198.18.0.99",
     {"pool.lab.addresses", "198.18.0.99 is in the inside subnet 198.18.0.0/24"}},
    {"pool_address_is_gateway", "198.19.0.10-198.19.0.11", "198.19.0.254", {"pool.lab.addresses", "outside gateway"}},
    {"pool_address_in_two_pools", "", "[pool.other]\naddresses = 198.19.0.11\n",
     {"pool.other.addresses", "198.19.0.11 is also in pool 'lab'"}, "addresses = 198.19.0.11\n"},
    {"bad_pool_range", "198.19.0.10-198.19.0.11", "198.19.0.11-198.19.0.10", {"pool.lab.addresses", "ends before it starts"}},
    {"bad_policy", "[nat]", "policy = lax\n[nat]", {"pool.lab.policy", "policy 'lax' is not one of"}, "lax"},
    {"bad_ports", "[nat]", "ports = 70000\n[nat]", {"pool.lab.ports", "within 1-65535"}},
    {"bad_timeout_number", "[nat]", "udp = 2m\n[nat]", {"pool.lab.udp", "'2m' is not a number"}, "2m"},
    {"timeout_zero", "[nat]", "udp = 0\n[nat]", {"[pool.lab]", "timeout udp must be 1..604800"}, "[pool.lab]"},
    {"fewer_ports_than_workers", "[nat]", "ports = 1024-1025\n[nat]", {"[pool.lab]", "fewer ports than the 4 workers"},
     "", {"--dataplane.workers", "4"}},
    // Files and command lines
    {"missing_file", "", "", {"/nonexistent/snatgw.conf", "cannot open", "No such file"}, "",
     {"--config", "/nonexistent/snatgw.conf"}},
    {"unknown_flag", "", "", {"command line", "dataplane.wrkers", "did you mean 'dataplane.workers'"}, "",
     {"--dataplane.wrkers", "2"}},
    {"flag_without_value", "", "", {"command line", "dataplane.workers", "missing"}, "", {"--dataplane.workers"}},
    {"stray_word", "", "", {"command line", "unexpected argument 'stray'", "after --"}, "", {"stray"}},
    {"bad_pool_flag", "", "", {"command line", "pool.lab.polcy", "did you mean 'policy'"}, "",
     {"--pool.lab.polcy", "strict"}},
    {"bad_override_value", "", "", {"command line: pool.lab.addresses", "198.19.0.1 is the outside port's own address"},
     "", {"--pool.lab.addresses", "198.19.0.1"}},
    {"comment_char_in_value", "", "", {"command line: control.socket", "'#' or ';'"}, "",
     {"--control.socket", "/tmp/a;b"}},
};

std::string case_name(const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(DaemonConfigErrors, DaemonConfigError, ::testing::ValuesIn(kErrorCases), case_name);

TEST(DaemonConfigCommandLine, ControlCharactersAreRefused) {
    // They would turn into lines of their own when the running configuration is saved.
    EXPECT_TRUE(mentions(error_of({"--control.socket", "/run/x.sock\n[dataplane]\nworkers = 7"}),
                         {"command line", "control character"}));
    EXPECT_TRUE(mentions(error_of({"--dataplane.steering", "auto\t"}), {"control character"}));
}

}  // namespace
}  // namespace snatgw::test
