// natperf's command line; see options.h.
#include "options.h"

#include <arpa/inet.h>

#include <boost/program_options.hpp>
#include <cmath>
#include <sstream>

namespace natperf {

namespace po = boost::program_options;

const char* test_name(TestKind t) {
    switch (t) {
    case TestKind::Throughput: return "throughput";
    case TestKind::FrameLoss: return "frame-loss";
    case TestKind::Latency: return "latency";
    case TestKind::MaxConnRate: return "max-conn-rate";
    case TestKind::TeardownRate: return "teardown-rate";
    case TestKind::Capacity: return "capacity";
    }
    return "?";
}

const char* direction_name(Direction d) {
    switch (d) {
    case Direction::Forward: return "forward";
    case Direction::Reverse: return "reverse";
    case Direction::Bidirectional: return "bidirectional";
    }
    return "?";
}

uint32_t parse_ipv4(const std::string& text, const std::string& what) {
    in_addr a{};
    if (inet_pton(AF_INET, text.c_str(), &a) != 1)
        throw UsageError(what + ": '" + text + "' is not an IPv4 address");
    return ntohl(a.s_addr);
}

std::string format_ipv4(uint32_t ip) {
    return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
           std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

PortRange parse_port_range(const std::string& text, const std::string& what) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream in(text);
    if (!(in >> lo)) throw UsageError(what + ": '" + text + "' is not LO-HI");
    if (in >> dash) {
        if (dash != '-' || !(in >> hi)) throw UsageError(what + ": '" + text + "' is not LO-HI");
    } else {
        hi = lo;
    }
    std::string rest;
    if (in >> rest) throw UsageError(what + ": '" + text + "' is not LO-HI");
    if (lo < 1 || hi > 65535 || lo > hi)
        throw UsageError(what + ": '" + text + "' must be 1 <= LO <= HI <= 65535");
    return PortRange{static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
}

namespace {

std::vector<TestKind> parse_tests(const std::string& list) {
    std::vector<TestKind> out;
    std::istringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        bool found = false;
        for (TestKind t : {TestKind::Throughput, TestKind::FrameLoss, TestKind::Latency,
                           TestKind::MaxConnRate, TestKind::TeardownRate, TestKind::Capacity}) {
            if (item == test_name(t)) {
                out.push_back(t);
                found = true;
            }
        }
        if (!found)
            throw UsageError("--tests: unknown test '" + item +
                             "' (throughput, frame-loss, latency, max-conn-rate, teardown-rate, capacity)");
    }
    if (out.empty()) throw UsageError("--tests: empty list");
    return out;
}

void require_positive(double v, const char* what) {
    if (!(v > 0) || !std::isfinite(v)) throw UsageError(std::string(what) + " must be > 0");
}

}  // namespace

bool parse_options(int argc, char** argv, Options& o, std::string* help) {
    // Everything after "--" is for the EAL.
    int ours = argc;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--") {
            ours = i;
            break;
        }
    }
    for (int i = ours + 1; i < argc; ++i) o.eal_args.emplace_back(argv[i]);

    std::string init_ip, init_gw, resp_ip, resp_gw, proto = "udp", src = "10000-10099",
                dst = "80-89", tests = "throughput", direction = "forward";
    po::options_description d("natperf [options] -- [EAL args]\n\nRFC 9693 stateful NAT44 "
                              "benchmark: Initiator port (inside) and Responder port (outside)",
                              100, 50);
    d.add_options()
        ("help,h", "this text")
        ("initiator-port", po::value(&o.initiator_port), "ethdev name or PCI address of the Initiator (inside) port")
        ("responder-port", po::value(&o.responder_port), "ethdev name or PCI address of the Responder (outside) port")
        ("initiator-ip", po::value(&init_ip), "the Initiator's address (inside subnet)")
        ("initiator-gateway", po::value(&init_gw), "the gateway's inside address (next hop, ARPed for)")
        ("responder-ip", po::value(&resp_ip), "the Responder's address (outside; the destination)")
        ("responder-gateway", po::value(&resp_gw), "the gateway's outside address (ARPed for; optional)")
        ("proto", po::value(&proto), "udp|tcp (default udp)")
        ("src-ports", po::value(&src), "source port range LO-HI (default 10000-10099)")
        ("dst-ports", po::value(&dst), "destination port range LO-HI (default 80-89)")
        ("frame-size", po::value(&o.frame_size), "frame size in bytes with FCS, 64..1518 (default 64; TCP: 64)")
        ("tests", po::value(&tests), "comma list: throughput,frame-loss,latency,max-conn-rate,teardown-rate,capacity")
        ("direction", po::value(&direction), "forward|reverse|bidirectional (default forward)")
        ("rate", po::value(&o.rate), "frames/s for frame-loss and latency (per direction)")
        ("phase1-rate", po::value(&o.phase1_rate), "frames/s of the preliminary phase and validations (default: --rate if given, else 10000)")
        ("rate-min", po::value(&o.rate_min), "binary search lower bound, frames/s (default 1000)")
        ("rate-max", po::value(&o.rate_max), "binary search upper bound, frames/s (default 1000000)")
        ("precision", po::value(&o.precision), "binary search precision, frames/s (default 1000)")
        ("duration", po::value(&o.duration), "trial length in seconds (default 10; fractional allowed)")
        ("timeout", po::value(&o.timeout_ms), "wait for late frames after a trial, ms (default 2000)")
        ("flush-command", po::value(&o.flush_command), "shell command that empties the DUT's state (/bin/sh -c)")
        ("fresh-ports", po::bool_switch(&o.fresh_ports), "max-conn-rate: each trial shifts the source ports to a fresh range instead of flushing")
        ("capacity-start", po::value(&o.capacity_start), "capacity search: first size (default 1024)")
        ("capacity-max", po::value(&o.capacity_max), "capacity search: largest size (default: all tuples)")
        ("capacity-precision", po::value(&o.capacity_precision), "capacity search precision in connections (default: 1% of the size found)")
        ("max-steps", po::value(&o.max_steps), "most trials of one search (default 20)")
        ("arp-timeout", po::value(&o.arp_timeout), "seconds to wait for the gateways' ARP replies (default 5)")
        ("seed", po::value(&o.seed), "permutation / draw seed (default 9693)")
        ("json", po::value(&o.json), "also write the JSON report to FILE (- = stdout)");

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(ours, argv).options(d).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }
    if (vm.count("help")) {
        std::ostringstream s;
        s << d;
        if (help) *help = s.str();
        return false;
    }
    for (const char* req : {"initiator-port", "responder-port", "initiator-ip", "initiator-gateway", "responder-ip"})
        if (!vm.count(req)) throw UsageError(std::string("--") + req + " is required");
    o.initiator_ip = parse_ipv4(init_ip, "--initiator-ip");
    o.initiator_gateway = parse_ipv4(init_gw, "--initiator-gateway");
    o.responder_ip = parse_ipv4(resp_ip, "--responder-ip");
    if (!resp_gw.empty()) o.responder_gateway = parse_ipv4(resp_gw, "--responder-gateway");
    if (proto == "udp") o.proto = Proto::Udp;
    else if (proto == "tcp") o.proto = Proto::Tcp;
    else throw UsageError("--proto: '" + proto + "' (udp or tcp)");
    o.src = parse_port_range(src, "--src-ports");
    o.dst = parse_port_range(dst, "--dst-ports");
    o.tests = parse_tests(tests);
    if (direction == "forward") o.direction = Direction::Forward;
    else if (direction == "reverse") o.direction = Direction::Reverse;
    else if (direction == "bidirectional") o.direction = Direction::Bidirectional;
    else throw UsageError("--direction: '" + direction + "' (forward, reverse or bidirectional)");

    if (o.frame_size < 64 || o.frame_size > 1518) throw UsageError("--frame-size must be 64..1518");
    if (o.proto == Proto::Tcp && o.frame_size != 64)
        throw UsageError("--frame-size: TCP test frames are SYN and SYN/ACK segments of 64 bytes");
    require_positive(o.phase1_rate, "--phase1-rate");
    require_positive(o.rate_min, "--rate-min");
    require_positive(o.rate_max, "--rate-max");
    require_positive(o.precision, "--precision");
    require_positive(o.duration, "--duration");
    if (o.rate_max < o.rate_min) throw UsageError("--rate-max must be >= --rate-min");
    if (o.rate != 0) require_positive(o.rate, "--rate");
    // The contract: --rate is also the phase-1 rate unless --phase1-rate is given.
    if (o.rate > 0 && !vm.count("phase1-rate")) o.phase1_rate = o.rate;
    if (!(o.timeout_ms >= 0)) throw UsageError("--timeout must be >= 0");
    if (o.max_steps < 1 || o.max_steps > 64) throw UsageError("--max-steps must be 1..64");
    require_positive(o.arp_timeout, "--arp-timeout");
    if (o.tuples() > (uint64_t{1} << 24))
        throw UsageError("--src-ports x --dst-ports: at most 16777216 tuples");
    if (o.capacity_max == 0) o.capacity_max = o.tuples();
    if (o.capacity_max > o.tuples())
        throw UsageError("--capacity-max " + std::to_string(o.capacity_max) + " exceeds the " +
                         std::to_string(o.tuples()) + " tuples of --src-ports x --dst-ports");
    if (o.capacity_start < 1) throw UsageError("--capacity-start must be >= 1");
    if (o.capacity_start > o.capacity_max) o.capacity_start = o.capacity_max;

    for (TestKind t : o.tests) {
        const std::string name = test_name(t);
        const bool udp_only = t == TestKind::Throughput || t == TestKind::FrameLoss || t == TestKind::Latency;
        if (udp_only && o.proto != Proto::Udp)
            throw UsageError("--tests " + name + " is UDP only (RFC 9693: TCP is for the stateful tests)");
        if ((t == TestKind::FrameLoss || t == TestKind::Latency) && o.rate == 0)
            throw UsageError("--tests " + name + " needs --rate");
        if (t == TestKind::MaxConnRate && o.flush_command.empty() && !o.fresh_ports)
            throw UsageError("--tests max-conn-rate needs --flush-command or --fresh-ports");
        if ((t == TestKind::TeardownRate || t == TestKind::Capacity) && o.flush_command.empty())
            throw UsageError("--tests " + name + " needs --flush-command");
    }
    return true;
}

}  // namespace natperf
