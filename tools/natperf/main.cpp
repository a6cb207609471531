// natperf: RFC 9693 stateful NAT44 benchmark (docs/natperf.md). Arguments, EAL, ports, the
// tests in the order given, the report (human table and JSON), exit codes:
// 0 ran (figures may be zero), 1 a test could not run, 2 usage error, 3 DPDK/port error.
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "options.h"
#include "report.h"
#include "test_port.h"
#include "trials.h"

using natperf::Options;
using nlohmann::json;

namespace {

json counters_json(const natperf::TestPort& p) {
    const natperf::PortCounters& c = p.counters;
    return {{"rx_frames", c.rx_frames},       {"rx_ours", c.rx_ours},
            {"rx_arp", c.rx_arp},             {"rx_foreign", c.rx_foreign},
            {"rx_malformed", c.rx_malformed}, {"rx_stale", c.rx_stale},
            {"rx_unexpected", c.rx_unexpected}, {"tx_frames", c.tx_frames},
            {"tx_arp", c.tx_arp},             {"tx_alloc_failed", c.tx_alloc_failed},
            {"arp_requests_answered", p.arp.requests_answered},
            {"gateway_mac_known", p.arp.gateway_known}};
}

void on_signal(int) { natperf::request_stop(); }

int run(const Options& o) {
    std::vector<std::string> eal = {"natperf"};
    eal.insert(eal.end(), o.eal_args.begin(), o.eal_args.end());
    std::vector<char*> eal_argv;
    for (std::string& a : eal) eal_argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::fprintf(stderr, "natperf: cannot initialise the DPDK EAL (see the lines above)\n");
        return 3;
    }
    // After the EAL (which installs no handlers of its own for these).
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    int rc = 0;
    {
        std::unique_ptr<natperf::OpenPort> ini, res;
        try {
            ini = natperf::open_port("initiator", o.initiator_port, o.initiator_ip, o.initiator_gateway, o.arp_timeout);
            res = natperf::open_port("responder", o.responder_port, o.responder_ip, o.responder_gateway, o.arp_timeout);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "natperf: %s\n", e.what());
            rte_eal_cleanup();
            return 3;
        }
        for (const auto* p : {ini.get(), res.get()})
            if (!p->link_up)
                std::fprintf(stderr, "natperf: warning: port %u link is down (memif: no peer yet?)\n", p->port.id);

        natperf::LearnedTuples learned(o.tuples());
        natperf::EngineConfig cfg;
        cfg.proto = o.proto;
        cfg.frame_len = o.frame_size - 4;
        cfg.initiator_ip = o.initiator_ip;
        cfg.responder_ip = o.responder_ip;
        cfg.seed = o.seed;
        natperf::Engine engine(cfg, ini->port, res->port, learned);
        natperf::Runner runner(o, engine, learned);

        json report = {{"tool", "natperf"}, {"parameters", runner.parameters()}, {"tests", json::array()}};
        report["parameters"]["initiator_lcore"] = rte_lcore_id();
        report["parameters"]["responder_lcore"] = engine.worker_lcore() < 0 ? json(rte_lcore_id()) : json(engine.worker_lcore());
        std::fprintf(stderr, "natperf: lcore %u drives the initiator port, lcore %u the responder port\n",
                     rte_lcore_id(), engine.worker_lcore() < 0 ? rte_lcore_id() : static_cast<unsigned>(engine.worker_lcore()));
        if (!engine.resolve_gateways(o.arp_timeout)) {
            const std::string err = "no ARP reply from --initiator-gateway " +
                                    natperf::format_ipv4(o.initiator_gateway) + " within " +
                                    std::to_string(o.arp_timeout) + " s";
            std::fprintf(stderr, "natperf: %s\n", err.c_str());
            report["error"] = err;
            rc = 1;
        } else {
            for (natperf::TestKind t : o.tests) {
                if (natperf::stop_requested()) break;
                report["tests"].push_back(runner.run(t));
            }
            if (!runner.ok() || natperf::stop_requested()) rc = 1;
            if (natperf::stop_requested()) report["interrupted"] = true;
        }
        report["counters"] = {{"initiator", counters_json(ini->port)}, {"responder", counters_json(res->port)}};
        report["exit_code"] = rc;

        const std::string human = natperf::human_report(report);
        (o.json == "-" ? std::cerr : std::cout) << human << std::flush;
        if (o.json == "-") {
            std::cout << report.dump(2) << std::endl;
        } else if (!o.json.empty()) {
            std::ofstream f(o.json);
            f << report.dump(2) << "\n";
            if (!f) {
                std::fprintf(stderr, "natperf: cannot write %s\n", o.json.c_str());
                rc = rc ? rc : 1;
            }
        }
    }  // ports closed before the EAL goes
    rte_eal_cleanup();
    return rc;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        std::string help;
        if (!natperf::parse_options(argc, argv, o, &help)) {
            std::cout << help;
            return 0;
        }
    } catch (const natperf::UsageError& e) {
        std::fprintf(stderr, "natperf: %s (see natperf --help)\n", e.what());
        return 2;
    }
    return run(o);
}
