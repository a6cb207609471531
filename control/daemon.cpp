// The daemon's start-up, run loop and shutdown; see daemon.h.
#include "daemon.h"

#include <arpa/inet.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "control_api.h"
#include "control_lcore.h"
#include "control_server.h"
#include "ethdev_port.h"
#include "event_logger.h"
#include "live_config.h"
#include "metrics_server.h"
#include "nat_worker.h"
#include "neighbour_table.h"
#include "route_table.h"
#include "prometheus_metrics.h"
#include "stats_report.h"
#include "stats_snapshot.h"
#include "telemetry.h"
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
    // Control plane: the live NAT configuration, the workers' mailboxes and grace-period
    // tracker, the control socket, the metrics endpoint.
    std::unique_ptr<LiveConfig> live;
    rte_rcu_qsbr* rcu = nullptr;
    std::vector<std::unique_ptr<WorkerMailbox>> mailboxes;
    std::unique_ptr<ControlApi> api;
    std::atomic<bool> api_ready{false};  // the socket is open before the gateway is ready
    // The stop has begun (under control_mutex): requests that waited for the lock are refused,
    // the workers may be gone.
    bool stopping = false;
    std::string stop_reason;
    std::unique_ptr<ControlServer> control_server;  // opened first in start()
    std::unique_ptr<MetricsServer> metrics;
    // The NAT event log: a ring per worker, one logger thread.
    std::vector<std::unique_ptr<EventSink>> sinks;
    std::unique_ptr<EventLogger> events;
    // Held by every reader of the workers' tables from outside (stats, metrics, telemetry,
    // control requests) and by a configuration change through its grace period, while the
    // workers may rebuild their port allocators.
    mutable std::mutex control_mutex;
    // Pool addresses for the control lcore's ARP responder after a live change (the control
    // socket's thread hands them over; the main lcore adopts them in its loop).
    std::mutex arp_mutex;
    std::optional<std::vector<uint32_t>> arp_pending;
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
    State& st = *state_;
    // The control socket first: a second daemon with the same configuration must stop here,
    // before it touches the ports of the one already running.
    if (!config_.control_socket.empty()) {
        st.control_server = std::make_unique<ControlServer>(
            config_.control_socket, [&st](const ControlRequest& r) {
                if (!st.api_ready.load(std::memory_order_acquire))
                    throw ControlError("busy", "the gateway is still starting");
                // Stats take the lock themselves; everything else runs under it.
                if (r.command == "stats") return st.api->handle(r);
                std::lock_guard lock(st.control_mutex);
                // (The server refuses new requests once the stop begins; this one was already
                // past that check and waited for the lock while the stop began.)
                if (st.stopping) throw ControlError("stopping", stopping_message(st.stop_reason));
                return st.api->handle(r);
            });
        st.control_server->start();
    }
    init_eal(argv0);
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

    // The live configuration: workers adopt each published snapshot; the old one is freed after
    // they all report a quiescent state.
    st.live = std::make_unique<LiveConfig>(config_);
    const std::size_t rcu_size = rte_rcu_qsbr_get_memsize(W);
    st.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("snatgw_rcu", rcu_size, RTE_CACHE_LINE_SIZE));
    if (st.rcu == nullptr || rte_rcu_qsbr_init(st.rcu, W) != 0)
        throw std::runtime_error("cannot set up the RCU grace-period tracker");
    st.live->set_rcu(st.rcu);
    for (uint16_t w = 0; w < W; ++w) st.mailboxes.push_back(std::make_unique<WorkerMailbox>());

    for (uint16_t w = 0; w < W; ++w) {
        WorkerParams wp;
        wp.worker_id = w;
        wp.session_capacity = config_.sessions;
        wp.host_capacity = config_.hosts;
        wp.socket_id = socket;
        wp.table_prefix = "nat";
        st.engines.push_back(std::make_unique<NatWorker>(&st.live->current(), wp));
        if (config_.events.enabled) {
            st.sinks.push_back(std::make_unique<EventSink>("events_w" + std::to_string(w),
                                                           config_.events.ring, w, socket));
            st.engines.back()->set_event_sink(st.sinks.back().get());
        }
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
    sh.stop = &stop_requested_;  // a failing worker stops the daemon as SIGTERM does
    sh.tsc_per_ms = rte_get_tsc_hz() / 1000;
    sh.tsc_hz = rte_get_tsc_hz();
    sh.nat_config = st.live->published();
    sh.rcu = st.rcu;
    for (uint16_t w = 0; w < W; ++w) sh.mailbox[w] = st.mailboxes[w].get();

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
    if (config_.events.enabled) {
        std::vector<EventSink*> sinks;
        for (auto& sink : st.sinks) sinks.push_back(sink.get());
        EventClock clock;
        clock.worker_now_ms = [&st] {
            return static_cast<uint32_t>((rte_rdtsc() - st.start_tsc) / st.shared.tsc_per_ms);
        };
        st.events = std::make_unique<EventLogger>(config_.events, std::move(sinks), clock);
        st.events->start();
        spdlog::info("NAT event log: {}", config_.events.target);
    }
    uint16_t w = 0;
    unsigned lcore = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (w == W) break;
        auto ctx = std::make_unique<WorkerContext>();
        ctx->id = w;
        ctx->engine = st.engines[w].get();
        ctx->events = st.sinks.empty() ? nullptr : st.sinks[w].get();
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
    start_control_plane();
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
        {
            std::unique_lock lock(st.arp_mutex, std::try_to_lock);
            if (lock.owns_lock() && st.arp_pending) {
                st.control->set_pool_addresses(std::move(*st.arp_pending));
                st.arp_pending.reset();
            }
        }
        // The control lcore is not a poll-mode core: it naps when there is nothing to do.
        if (n == 0) usleep(200);
    }
    // Requests are refused from here on (`stopping`), and one under way finishes while the
    // workers still answer their mailboxes; then the workers stop, so the final counters are
    // final; then the control plane closes.
    std::string why = worker_failures();
    if (!why.empty()) spdlog::critical("worker failed, stopping: {}", why);
    begin_stop(why.empty() ? "stop requested" : "worker failed: " + why);
    st.running.store(false);
    if (st.launched) rte_eal_mp_wait_lcore();
    st.launched = false;
    failure_ = worker_failures();  // also a worker that failed while it stopped
    if (failure_ != why) spdlog::critical("worker failed while stopping: {}", failure_);
    stop_control_plane();
}

void Daemon::begin_stop(const std::string& why) {
    State& st = *state_;
    if (st.control_server) st.control_server->refuse_requests(why);
    std::lock_guard lock(st.control_mutex);  // waits for a request (or change) under way
    st.stopping = true;
    st.stop_reason = why;
}

std::string Daemon::worker_failures() const {
    std::string out;
    for (const auto& ctx : state_->contexts) {
        if (!ctx->fault.raised.load(std::memory_order_acquire)) continue;
        if (!out.empty()) out += "; ";
        out += "worker " + std::to_string(ctx->id) + ": " + ctx->fault.reason;
    }
    return out;
}

StatsSnapshot Daemon::snapshot() const {
    const State& st = *state_;
    std::lock_guard lock(st.control_mutex);
    StatsSources src;
    for (std::size_t w = 0; w < st.contexts.size(); ++w) {
        src.engines.push_back(st.engines[w].get());
        src.loops.push_back(&st.contexts[w]->counters);
        src.timings.push_back(&st.contexts[w]->timing);
    }
    src.tsc_hz = rte_get_tsc_hz();
    src.control = st.control ? &st.control->counters() : nullptr;
    src.steering = st.shared.steering;
    src.config = st.live ? &st.live->current() : &config_.nat;
    for (int side = 0; side < 2; ++side) {
        src.port_ids[side] = st.port[side] ? static_cast<int>(st.port[side]->id()) : -1;
        src.mbuf_pools[side] = st.port[side] ? st.port[side]->pool() : nullptr;
    }
    if (st.events) src.events = EventCounters{st.events->logged(), st.events->lost()};
    src.uptime_s = st.start_tsc == 0 ? 0.0
                                     : static_cast<double>(rte_rdtsc() - st.start_tsc) /
                                           static_cast<double>(rte_get_tsc_hz());
    return collect_stats(src);
}

std::string Daemon::stats() const { return format_stats(snapshot()); }

void Daemon::start_control_plane() {
    State& st = *state_;
    ControlApiDeps deps;
    deps.config = &config_;
    deps.live = st.live.get();
    for (auto& e : st.engines) deps.engines.push_back(e.get());
    for (auto& m : st.mailboxes) deps.mailboxes.push_back(m.get());
    deps.stats = [this] { return stats_to_json(snapshot()); };
    st.api = std::make_unique<ControlApi>(std::move(deps));
    st.live->set_address_in_use([api = st.api.get()](uint32_t a) { return api->address_in_use(a); });
    st.live->set_on_change([&st](const NatConfig& c) {
        std::lock_guard lock(st.arp_mutex);
        st.arp_pending = arp_addresses(c);
    });
    st.api_ready.store(true, std::memory_order_release);
    if (st.control_server) spdlog::info("control socket: {}", config_.control_socket);
    if (!config_.metrics.empty()) {
        st.metrics = std::make_unique<MetricsServer>(
            config_.metrics, [this] { return prometheus_text(snapshot()); });
        st.metrics->start();
        spdlog::info("metrics: http://{}/metrics", config_.metrics);
    }
    register_telemetry([this] { return snapshot(); });
}

void Daemon::stop_control_plane() {
    State& st = *state_;
    st.api_ready.store(false);
    reset_telemetry_provider();
    if (st.metrics) st.metrics->stop();
    if (st.control_server) st.control_server->stop();
}

void Daemon::shutdown() {
    if (!eal_up_) return;
    State& st = *state_;
    stop_control_plane();
    st.running.store(false);
    if (st.launched) rte_eal_mp_wait_lcore();
    st.launched = false;
    for (rte_ring* r : st.rings) free_ring_contents(r);
    if (st.events) st.events->stop();  // writes what the workers logged last
    st.events.reset();
    if (st.control) st.control->drain();
    for (auto& p : st.port)
        if (p) p->stop();
    st.control.reset();
    st.api.reset();
    st.engines.clear();
    st.sinks.clear();
    st.live.reset();
    rte_free(st.rcu);
    st.rcu = nullptr;
    st.routes.reset();
    for (rte_ring* r : st.rings) rte_ring_free(r);
    st.rings.clear();
    for (auto& p : st.port) p.reset();
    rte_eal_cleanup();
    eal_up_ = false;
}

}  // namespace snatgw
