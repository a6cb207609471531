// The daemon's start-up, run loop and shutdown; see daemon.h.
#include "daemon.h"

#include <arpa/inet.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "control_lcore.h"
#include "ethdev_port.h"
#include "nat_worker.h"
#include "neighbour_table.h"
#include "route_table.h"
#include "stats_report.h"
#include "worker_loop.h"

namespace snatgw {

struct Daemon::State {
    std::unique_ptr<EthdevPort> port[2];
    std::vector<std::unique_ptr<NatWorker>> engines;
    std::vector<std::unique_ptr<WorkerContext>> contexts;
    std::vector<rte_ring*> rings;
    std::unique_ptr<NeighbourTable> neighbours;
    std::unique_ptr<RouteTable> routes;
    std::unique_ptr<ControlLcore> control;
    std::atomic<bool> running{true};
    WorkerShared shared;
    uint64_t start_tsc = 0;
    bool launched = false;
};

namespace {

bool has_arg(const std::vector<std::string>& args, std::initializer_list<const char*> names) {
    for (const std::string& a : args)
        for (const char* n : names)
            if (a == n || a.rfind(std::string(n) + "=", 0) == 0) return true;
    return false;
}

rte_ring* make_ring(const std::string& name, uint32_t size) {
    rte_ring* r = rte_ring_create(name.c_str(), size, static_cast<int>(rte_socket_id()),
                                  RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == nullptr)
        throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
    return r;
}

PortInfo port_info(const PortSpec& spec, const EthdevPort& port) {
    PortInfo p;
    p.port_id = port.id();
    p.addr = spec.address;
    p.mask = spec.netmask();
    p.subnet = spec.network();
    p.mac = port.mac();
    return p;
}

void free_ring_contents(rte_ring* r) {
    void* obj = nullptr;
    while (rte_ring_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
}

}  // namespace

std::vector<std::string> eal_arguments(const DaemonConfig& c, const char* argv0) {
    std::vector<std::string> args = {argv0};
    args.insert(args.end(), c.eal_args.begin(), c.eal_args.end());
    if (!has_arg(c.eal_args, {"-l", "-c", "--lcores"})) {
        args.push_back("-l");
        args.push_back(effective_lcores(c));
    }
    bool any_pci = false;
    for (const PortSpec* p : {&c.inside, &c.outside}) {
        if (p->is_pci()) {
            any_pci = true;
            continue;
        }
        bool given = false;
        for (const std::string& a : c.eal_args) given |= a.find(device_name(p->device)) == 0;
        if (!given) {
            args.push_back("--vdev");
            args.push_back(p->device);
        }
    }
    if (!any_pci && !has_arg(c.eal_args, {"-a", "--allow", "--no-pci"})) args.push_back("--no-pci");
    return args;
}

Daemon::Daemon(DaemonConfig config) : config_(std::move(config)), state_(std::make_unique<State>()) {}

Daemon::~Daemon() { shutdown(); }

void Daemon::init_eal(const char* argv0) {
    std::vector<std::string> args = eal_arguments(config_, argv0);
    std::string joined;
    for (const std::string& a : args) joined += a + " ";
    spdlog::info("EAL arguments: {}", joined);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0)
        throw std::runtime_error(std::string("cannot initialise DPDK: ") + rte_strerror(rte_errno) +
                                 " (hugepages reserved? echo 1024 > /proc/sys/vm/nr_hugepages, "
                                 "or pass '-- --no-huge -m 1024')");
    eal_up_ = true;
}

void Daemon::start(const char* argv0) {
    init_eal(argv0);
    State& st = *state_;
    const uint16_t W = config_.workers;
    if (rte_lcore_count() < static_cast<unsigned>(W) + 1)
        throw std::runtime_error(std::to_string(W) + " workers need " + std::to_string(W + 1) +
                                 " lcores (one main + one per worker), EAL has " +
                                 std::to_string(rte_lcore_count()));
    const int socket = static_cast<int>(rte_socket_id());

    // Steering: inside RSS on the source address where the port can; else software.
    const PortCapabilities in_caps = EthdevPort::probe("inside", config_.inside.device);
    SteeringPlan& plan = st.shared.steering;
    const bool want_rss = config_.steering == "auto" || config_.steering == "rss";
    if (W > 1 && want_rss && in_caps.rss_src_only) plan.inside = InsideSteering::Rss;
    else if (W > 1 && config_.steering == "rss")
        throw std::runtime_error("steering = rss, but the inside port (" + in_caps.driver +
                                 ") cannot hash on the IPv4 source address alone");

    const uint16_t priv = sizeof(MbufMeta);
    st.port[0] = std::make_unique<EthdevPort>("inside", config_.inside.device, W, config_.mbufs,
                                              priv, plan.inside == InsideSteering::Rss, socket);
    st.port[1] = std::make_unique<EthdevPort>("outside", config_.outside.device, W,
                                              config_.mbufs, priv, false, socket);

    // Rings: handoffs between every pair of workers, punts to and frames from the control lcore.
    for (uint16_t from = 0; from < W; ++from) {
        for (uint16_t to = 0; to < W; ++to) {
            if (from == to) continue;
            std::string name = "ho_";
            name += std::to_string(from) + "_" + std::to_string(to);
            st.shared.handoff[from][to] = make_ring(name, config_.handoff_ring);
            st.rings.push_back(st.shared.handoff[from][to]);
        }
        std::string punt = "punt_", ctl = "ctl_";
        punt += std::to_string(from);
        ctl += std::to_string(from);
        st.shared.punt[from] = make_ring(punt, config_.handoff_ring);
        st.shared.control_tx[from] = make_ring(ctl, config_.handoff_ring);
        st.rings.push_back(st.shared.punt[from]);
        st.rings.push_back(st.shared.control_tx[from]);
    }

    // Routes out of the outside port: its subnet (connected), static routes, the default.
    st.routes = std::make_unique<RouteTable>("routes", 1024);
    st.routes->add(config_.outside.network(), config_.outside.prefix_len, 0);
    for (const RouteSpec& r : config_.routes) st.routes->add(r.prefix, r.length, r.via);
    if (config_.outside.gateway != 0) st.routes->add(0, 0, config_.outside.gateway);
    st.neighbours = std::make_unique<NeighbourTable>(4096);

    for (uint16_t w = 0; w < W; ++w) {
        WorkerParams wp;
        wp.worker_id = w;
        wp.session_capacity = config_.sessions;
        wp.host_capacity = config_.hosts;
        wp.socket_id = socket;
        wp.table_prefix = "nat";
        st.engines.push_back(std::make_unique<NatWorker>(&config_.nat, wp));
    }

    WorkerShared& sh = st.shared;
    sh.workers = W;
    sh.burst = config_.burst;
    sh.idle_polls = config_.idle_polls;
    sh.idle_sleep_us = config_.idle_sleep_us;
    sh.forward_unmatched = config_.forward_unmatched;
    sh.port[0] = port_info(config_.inside, *st.port[0]);
    sh.port[1] = port_info(config_.outside, *st.port[1]);
    sh.neighbours = st.neighbours.get();
    sh.routes = st.routes.get();
    sh.running = &st.running;
    sh.tsc_per_ms = rte_get_tsc_hz() / 1000;

    st.port[0]->start();
    st.port[1]->start();

    // Outside: rte_flow rules where the port takes them; else the engine's software handoff.
    if (W > 1 && config_.steering != "software" && config_.steering != "rss") {
        std::string why_not;
        if (install_outside_flow_rules(st.port[1]->id(), W, why_not)) {
            plan.outside = OutsideSteering::Flow;
        } else if (config_.steering == "flow") {
            throw std::runtime_error("steering = flow, but the outside port (" +
                                     st.port[1]->driver() + ") refuses the rules: " + why_not);
        } else {
            spdlog::info("outside rte_flow steering not used: {}", why_not);
        }
    }
    spdlog::info("steering: {} ({} workers; inside {} / outside {})", plan.describe(), W,
                 st.port[0]->driver(), st.port[1]->driver());

    std::vector<uint32_t> pool_addresses;
    for (const Pool& p : config_.nat.pools)
        pool_addresses.insert(pool_addresses.end(), p.addresses.begin(), p.addresses.end());
    rte_mempool* pools[2] = {st.port[0]->pool(), st.port[1]->pool()};
    st.control = std::make_unique<ControlLcore>(sh, *st.neighbours, pools, pool_addresses);

    st.start_tsc = rte_rdtsc();
    uint16_t w = 0;
    unsigned lcore = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (w == W) break;
        auto ctx = std::make_unique<WorkerContext>();
        ctx->id = w;
        ctx->engine = st.engines[w].get();
        ctx->shared = &sh;
        ctx->start_tsc = st.start_tsc;
        if (rte_eal_remote_launch(worker_main, ctx.get(), lcore) != 0)
            throw std::runtime_error("cannot launch worker " + std::to_string(w) + " on lcore " +
                                     std::to_string(lcore));
        st.contexts.push_back(std::move(ctx));
        ++w;
    }
    st.launched = true;

    std::vector<uint32_t> next_hops;
    if (config_.outside.gateway != 0) next_hops.push_back(config_.outside.gateway);
    for (const RouteSpec& r : config_.routes) next_hops.push_back(r.via);
    st.control->announce(0, next_hops);
    spdlog::info("inside {} ({}/{}), outside {} ({}/{})", config_.inside.device,
                 format_ipv4(config_.inside.address), unsigned(config_.inside.prefix_len),
                 config_.outside.device, format_ipv4(config_.outside.address),
                 unsigned(config_.outside.prefix_len));
}

void Daemon::run() {
    State& st = *state_;
    const uint64_t tsc_per_ms = st.shared.tsc_per_ms;
    uint64_t last_housekeeping = 0;
    while (!stop_requested_.load()) {
        const uint64_t now_ms = (rte_rdtsc() - st.start_tsc) / tsc_per_ms;
        const uint32_t n = st.control->poll(now_ms);
        if (now_ms - last_housekeeping >= 100) {
            st.control->housekeeping(now_ms);
            last_housekeeping = now_ms;
        }
        if (stats_requested_.exchange(false)) spdlog::info("counters:\n{}", stats());
        // The control lcore is not a poll-mode core: it naps when there is nothing to do.
        if (n == 0) usleep(200);
    }
    // Stop the workers first, so the final counters are final.
    st.running.store(false);
    if (st.launched) rte_eal_mp_wait_lcore();
    st.launched = false;
}

std::string Daemon::stats() const {
    const State& st = *state_;
    std::vector<WorkerView> views;
    for (std::size_t w = 0; w < st.contexts.size(); ++w)
        views.push_back({&st.engines[w]->counters(), &st.contexts[w]->counters,
                         st.engines[w]->sessions().size(), st.engines[w]->sessions().capacity()});
    static const ControlCounters kNone;
    std::string out =
        format_stats(views, st.control ? st.control->counters() : kNone, st.shared.steering);
    // What the ports themselves saw: frames the driver could not deliver never reach a worker.
    for (int side = 0; side < 2; ++side) {
        if (!st.port[side]) continue;
        rte_eth_stats es{};
        if (rte_eth_stats_get(st.port[side]->id(), &es) != 0) continue;
        char buf[256];
        std::snprintf(buf, sizeof(buf),
                      "port %s: rx=%llu missed=%llu rx_errors=%llu rx_nombuf=%llu tx=%llu "
                      "tx_errors=%llu\n",
                      st.port[side]->role().c_str(), (unsigned long long)es.ipackets,
                      (unsigned long long)es.imissed, (unsigned long long)es.ierrors,
                      (unsigned long long)es.rx_nombuf, (unsigned long long)es.opackets,
                      (unsigned long long)es.oerrors);
        out += buf;
    }
    return out;
}

void Daemon::shutdown() {
    if (!eal_up_) return;
    State& st = *state_;
    st.running.store(false);
    if (st.launched) rte_eal_mp_wait_lcore();
    st.launched = false;
    for (rte_ring* r : st.rings) free_ring_contents(r);
    if (st.control) st.control->drain();
    for (auto& p : st.port)
        if (p) p->stop();
    st.control.reset();
    st.engines.clear();
    st.routes.reset();
    for (rte_ring* r : st.rings) rte_ring_free(r);
    st.rings.clear();
    for (auto& p : st.port) p.reset();
    rte_eal_cleanup();
    eal_up_ = false;
}

}  // namespace snatgw
