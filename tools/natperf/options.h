// natperf's command line (the contract in docs/natperf.md): parsed with Boost.Program_options
// into Options and validated; everything after "--" goes to rte_eal_init. Bad input throws
// UsageError (exit code 2) with one sentence that names the option.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "frame_builder.h"
#include "tuple_space.h"

namespace natperf {

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class TestKind { Throughput, FrameLoss, Latency, MaxConnRate, TeardownRate, Capacity };
enum class Direction { Forward, Reverse, Bidirectional };

const char* test_name(TestKind t);
const char* direction_name(Direction d);

struct Options {
    std::string initiator_port, responder_port;
    uint32_t initiator_ip = 0, initiator_gateway = 0;  // host byte order
    uint32_t responder_ip = 0, responder_gateway = 0;  // responder_gateway 0: not given
    Proto proto = Proto::Udp;
    PortRange src{10000, 10099};
    PortRange dst{80, 89};
    uint32_t frame_size = 64;  // with FCS
    std::vector<TestKind> tests{TestKind::Throughput};
    Direction direction = Direction::Forward;
    double rate = 0;  // 0: not given
    double phase1_rate = 10000;  // --rate when that is given and this is not
    double rate_min = 1000, rate_max = 1000000, precision = 1000;
    double duration = 10;
    double timeout_ms = 2000;
    std::string flush_command;
    bool fresh_ports = false;
    uint64_t capacity_start = 1024, capacity_max = 0;  // 0: the tuple space's size
    uint64_t capacity_precision = 0;                   // 0: 1% of the size found
    int max_steps = 20;
    double arp_timeout = 5;
    uint64_t seed = 9693;
    std::string json;  // "" none, "-" stdout
    std::vector<std::string> eal_args;

    uint64_t tuples() const { return uint64_t{src.size()} * dst.size(); }
};

// Returns false when --help was asked (the help text is in *help).
bool parse_options(int argc, char** argv, Options& out, std::string* help);

// "198.18.0.1" -> host order; throws UsageError naming `what`.
uint32_t parse_ipv4(const std::string& text, const std::string& what);
PortRange parse_port_range(const std::string& text, const std::string& what);
std::string format_ipv4(uint32_t ip);

}  // namespace natperf
