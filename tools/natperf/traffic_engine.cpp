// The traffic engine; see traffic_engine.h.
#include "traffic_engine.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

namespace natperf {

namespace {
std::atomic<bool> g_stop{false};
constexpr uint16_t kBurst = 32;
constexpr int kDrawTries = 8;  // Random order: draws before giving up on an unlearned tuple

// Counters one lcore writes and the other reads while a trial runs (two-lcore mode): single
// writer, relaxed atomic accesses (plain moves on x86).
void add(uint64_t& counter, uint64_t n) {
    std::atomic_ref<uint64_t>(counter).store(counter + n, std::memory_order_relaxed);
}
uint64_t load_counter(uint64_t& counter) { return std::atomic_ref<uint64_t>(counter).load(std::memory_order_relaxed); }
}  // namespace

void request_stop() { g_stop.store(true, std::memory_order_relaxed); }
bool stop_requested() { return g_stop.load(std::memory_order_relaxed); }

// Per-direction state of the running trial. Lives on run()'s stack.
struct Engine::Direction {
    Direction(const TxPlan& p, TestPort& from, bool initiator, DirectionStats& s, uint64_t tuples,
              uint64_t seed)
        : plan(p), port(from), from_initiator(initiator), stats(s), perm(tuples ? tuples : 1, seed),
          rng(seed ^ 0x5bd1e995u) {}
    const TxPlan& plan;
    TestPort& port;
    bool from_initiator;
    DirectionStats& stats;
    Permutation perm;
    Rng rng;
    uint64_t built = 0;   // frames built (sent or pending)
    uint64_t cursor = 0;  // Sequential: next index to look at
    uint64_t start_tsc = 0, first_tx = 0, last_tx = 0;
    rte_mbuf* pending[kBurst]{};
    uint16_t pending_n = 0, pending_off = 0;
    bool exhausted = false;    // nothing more can be built (Sequential ran out, no learned tuple)
    std::vector<uint8_t> seen;  // receive side: per tuple, for Permuted/Sequential plans
    uint64_t latency_stride = 1;
    uint64_t latency_seen = 0;
    bool done() const { return !plan.active || exhausted || stats.sent >= plan.frames; }
};

Engine::Engine(const EngineConfig& config, TestPort& initiator, TestPort& responder, LearnedTuples& learned)
    : config_(config), initiator_(initiator), responder_(responder), learned_(learned),
      hz_(static_cast<double>(rte_get_tsc_hz())) {
    // A second EAL lcore, when there is one, takes the Responder port during trials.
    const unsigned worker = rte_get_next_lcore(static_cast<unsigned>(-1), 1, 0);
    if (config.use_worker_lcore && worker < RTE_MAX_LCORE) worker_lcore_ = worker;
}

void Engine::send_raw(TestPort& port, const uint8_t* frame, uint32_t len) {
    rte_mbuf* m = rte_pktmbuf_alloc(port.pool);
    if (m == nullptr) {
        ++port.counters.tx_alloc_failed;
        return;
    }
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(len));
    if (data == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    std::memcpy(data, frame, len);
    if (rte_eth_tx_burst(port.id, 0, &m, 1) == 1) {
        ++port.counters.tx_arp;
    } else {
        rte_pktmbuf_free(m);
    }
}

bool Engine::resolve_gateways(double timeout_s) {
    const uint64_t start = rte_rdtsc();
    const uint64_t end = start + static_cast<uint64_t>(timeout_s * hz_);
    const uint64_t every = static_cast<uint64_t>(0.2 * hz_);
    uint64_t next = start;
    uint8_t frame[64];
    auto satisfied = [&] {
        return initiator_.arp.gateway_known &&
               (responder_.arp.gateway_ip == 0 || responder_.arp.gateway_known);
    };
    while (!satisfied() && !stop_requested()) {
        const uint64_t now = rte_rdtsc();
        if (now >= end) break;
        if (now >= next) {
            for (TestPort* p : {&initiator_, &responder_}) {
                if (p->arp.gateway_known) continue;
                const uint32_t n = build_gateway_request(p->arp, frame, sizeof frame);
                if (n != 0) send_raw(*p, frame, n);
            }
            next = now + every;
        }
        poll(initiator_, true);
        poll(responder_, false);
    }
    return initiator_.arp.gateway_known;
}

void Engine::idle(double seconds, const std::atomic<bool>* stop) {
    const uint64_t end = rte_rdtsc() + static_cast<uint64_t>(seconds * hz_);
    while (rte_rdtsc() < end && !(stop != nullptr && stop->load(std::memory_order_acquire)) &&
           !stop_requested()) {
        poll(initiator_, true);
        poll(responder_, false);
    }
}

uint32_t Engine::build(Direction& d, uint8_t* out, uint32_t cap, uint64_t now) {
    const TrialSpec& spec = *spec_;
    uint64_t index = 0;
    switch (d.plan.order) {
    case TxOrder::Permuted:
        index = d.perm.at(d.built % spec.tuples);
        break;
    case TxOrder::Sequential:
        while (d.cursor < spec.tuples && !learned_.has(d.cursor)) ++d.cursor;
        if (d.cursor >= spec.tuples) return 0;
        index = d.cursor++;
        break;
    case TxOrder::Random: {
        index = d.rng.below(spec.tuples);
        if (!d.from_initiator) {
            int tries = 1;
            while (!learned_.has(index) && tries++ < kDrawTries) index = d.rng.below(spec.tuples);
            if (!learned_.has(index)) return 0;
        }
        break;
    }
    }
    const Tuple t = spec.space->tuple(index);
    FrameSpec f;
    f.proto = config_.proto;
    f.frame_len = config_.frame_len;
    f.kind = d.plan.kind;
    f.index = static_cast<uint32_t>(index);
    f.flags = static_cast<uint8_t>((generation_ << 1) | (d.plan.timestamp ? kFlagTimestamp : 0));
    f.tsc = now;
    f.ip_id = static_cast<uint16_t>(d.built);
    f.src_mac = d.port.mac;
    if (d.from_initiator) {
        f.dst_mac = d.port.arp.gateway_mac;
        f.src_ip = config_.initiator_ip;
        f.dst_ip = config_.responder_ip;
        f.src_port = t.src_port;
        f.dst_port = t.dst_port;
    } else {
        const LearnedTuple& e = learned_.at(index);
        f.dst_mac = learned_.mac(e.mac_slot);
        f.src_ip = config_.responder_ip;
        f.dst_ip = e.public_ip;
        f.src_port = t.dst_port;
        f.dst_port = e.public_port;
    }
    return build_frame(out, cap, f);
}

void Engine::tx_step(Direction& d, uint64_t now) {
    // Frames the port did not take last time go first, in order.
    if (d.pending_n > d.pending_off) {
        const uint16_t n = rte_eth_tx_burst(d.port.id, 0, d.pending + d.pending_off,
                                            static_cast<uint16_t>(d.pending_n - d.pending_off));
        d.pending_off = static_cast<uint16_t>(d.pending_off + n);
        add(d.stats.sent, n);
        d.port.counters.tx_frames += n;
        if (n) d.last_tx = now;
        if (d.pending_off < d.pending_n) return;
        d.pending_n = d.pending_off = 0;
    }
    const double elapsed = static_cast<double>(now - d.start_tsc) / hz_;
    uint64_t due = static_cast<uint64_t>(elapsed * d.plan.rate) + 1;
    due = std::min(due, d.plan.frames);
    if (due <= d.built) return;
    const uint16_t want = static_cast<uint16_t>(std::min<uint64_t>(kBurst, due - d.built));
    rte_mbuf* bufs[kBurst];
    if (rte_pktmbuf_alloc_bulk(d.port.pool, bufs, want) != 0) {
        ++d.port.counters.tx_alloc_failed;
        return;
    }
    uint16_t ready = 0;
    for (uint16_t i = 0; i < want; ++i) {
        rte_mbuf* m = bufs[i];
        const uint32_t len = build(d, rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_tailroom(m), now);
        if (len == 0) {  // no tuple to send over (Sequential ran out, nothing learned)
            d.exhausted = true;
            rte_pktmbuf_free_bulk(bufs + i, want - i);
            break;
        }
        m->data_len = static_cast<uint16_t>(len);
        m->pkt_len = len;
        bufs[ready++] = m;
        ++d.built;
    }
    if (ready == 0) return;
    if (d.first_tx == 0) d.first_tx = now;
    const uint16_t n = rte_eth_tx_burst(d.port.id, 0, bufs, ready);
    add(d.stats.sent, n);
    d.port.counters.tx_frames += n;
    if (n) d.last_tx = now;
    if (n < ready) {
        std::copy(bufs + n, bufs + ready, d.pending);
        d.pending_n = static_cast<uint16_t>(ready - n);
        d.pending_off = 0;
    }
}

void Engine::poll(TestPort& port, bool initiator_side) {
    rte_mbuf* bufs[kBurst];
    const uint16_t nb = rte_eth_rx_burst(port.id, 0, bufs, kBurst);
    if (nb == 0) return;
    const uint64_t now = rte_rdtsc();
    PortCounters& c = port.counters;
    c.rx_frames += nb;
    for (uint16_t i = 0; i < nb; ++i) {
        const uint8_t* data = rte_pktmbuf_mtod(bufs[i], const uint8_t*);
        const uint32_t len = rte_pktmbuf_data_len(bufs[i]);
        ParsedFrame p;
        switch (parse_frame(data, len, p)) {
        case ParseStatus::Malformed: ++c.rx_malformed; continue;
        case ParseStatus::Foreign: ++c.rx_foreign; continue;
        case ParseStatus::Arp: {
            ++c.rx_arp;
            uint8_t reply[64];
            const uint32_t n = handle_arp(port.arp, data, len, reply, sizeof reply);
            if (n != 0) send_raw(port, reply, n);
            continue;
        }
        case ParseStatus::Ours: break;
        }
        ++c.rx_ours;
        if (spec_ == nullptr) {
            ++c.rx_stale;
            continue;
        }
        if (p.proto == Proto::Udp && (p.flags >> 1) != generation_) {
            ++c.rx_stale;
            continue;
        }
        const TrialSpec& spec = *spec_;
        const bool fwd_kind = p.kind == Kind::Phase1 || p.kind == Kind::Forward;
        if (fwd_kind == initiator_side || p.index >= spec.tuples) {
            ++c.rx_unexpected;
            continue;
        }
        const Tuple t = spec.space->tuple(p.index);
        // The translated side only changes the Initiator's address and port: check the rest.
        const bool ok = initiator_side
                            ? (p.dst_ip == config_.initiator_ip && p.src_ip == config_.responder_ip &&
                               p.dst_port == t.src_port && p.src_port == t.dst_port)
                            : (p.dst_ip == config_.responder_ip && p.dst_port == t.dst_port);
        if (!ok) {
            ++c.rx_unexpected;
            continue;
        }
        Direction& d = initiator_side ? *rev_ : *fwd_;
        if (!initiator_side && spec.learn && p.kind == Kind::Phase1 &&
            learned_.learn(p.index, p.src_ip, p.src_port, p.src_mac))
            ++stats_->learned_new;
        if (!d.seen.empty()) {
            if (d.seen[p.index]) {
                ++d.stats.duplicates;
                continue;
            }
            d.seen[p.index] = 1;
        }
        add(d.stats.received, 1);
        if ((p.flags & kFlagTimestamp) && now >= p.tsc && d.latency_seen++ % d.latency_stride == 0 &&
            d.stats.latency_cycles.size() < d.stats.latency_cycles.capacity())
            d.stats.latency_cycles.push_back(now - p.tsc);
    }
    rte_pktmbuf_free_bulk(bufs, nb);
}

void Engine::finish_tx(Direction& d) {
    // Frames the port never took are not sent.
    if (d.pending_n > d.pending_off)
        rte_pktmbuf_free_bulk(d.pending + d.pending_off, static_cast<unsigned>(d.pending_n - d.pending_off));
    d.pending_n = d.pending_off = 0;
    if (d.last_tx > d.first_tx) d.stats.tx_seconds = static_cast<double>(d.last_tx - d.first_tx) / hz_;
}

bool Engine::complete(Direction& fwd, Direction& rev) {
    return load_counter(fwd.stats.received) >= load_counter(fwd.stats.sent) &&
           load_counter(rev.stats.received) >= load_counter(rev.stats.sent);
}

void Engine::run_one_lcore(Direction& fwd, Direction& rev) {
    while (true) {
        const uint64_t now = rte_rdtsc();
        bool busy = false;
        for (Direction* d : {&fwd, &rev}) {
            if (d->done() || now >= tx_end_ || stop_requested()) continue;
            busy = true;
            tx_step(*d, now);
        }
        poll(initiator_, true);
        poll(responder_, false);
        if (!busy) break;
    }
    finish_tx(fwd);
    finish_tx(rev);
    // Late frames: until everything sent has arrived, or the timeout.
    const uint64_t wait_end = rte_rdtsc() + static_cast<uint64_t>(spec_->timeout_s * hz_);
    while (!complete(fwd, rev) && rte_rdtsc() < wait_end && !stop_requested()) {
        poll(initiator_, true);
        poll(responder_, false);
    }
}

// Two lcores: the main lcore sends and receives on the Initiator port, the worker lcore on the
// Responder port (its TX, its RX, the learned tuples and its ARP). They share only the
// direction counters (atomic_ref) and the flags below.
int Engine::responder_main(void* arg) {
    Engine& e = *static_cast<Engine*>(arg);
    Direction& rev = *e.rev_;
    while (!rev.done() && !stop_requested()) {
        const uint64_t now = rte_rdtsc();
        if (now >= e.tx_end_) break;
        e.tx_step(rev, now);
        e.poll(e.responder_, false);
    }
    e.finish_tx(rev);
    e.worker_tx_done_.store(true, std::memory_order_release);
    while (!e.worker_stop_.load(std::memory_order_acquire)) e.poll(e.responder_, false);
    return 0;
}

void Engine::run_two_lcores(Direction& fwd, Direction& rev) {
    worker_tx_done_.store(false, std::memory_order_relaxed);
    worker_stop_.store(false, std::memory_order_relaxed);
    if (rte_eal_remote_launch(&Engine::responder_main, this, worker_lcore_) != 0) {
        run_one_lcore(fwd, rev);  // the worker is busy (cannot happen between trials)
        return;
    }
    while (!fwd.done() && !stop_requested()) {
        const uint64_t now = rte_rdtsc();
        if (now >= tx_end_) break;
        tx_step(fwd, now);
        poll(initiator_, true);
    }
    finish_tx(fwd);
    while (!worker_tx_done_.load(std::memory_order_acquire)) poll(initiator_, true);
    const uint64_t wait_end = rte_rdtsc() + static_cast<uint64_t>(spec_->timeout_s * hz_);
    while (!complete(fwd, rev) && rte_rdtsc() < wait_end && !stop_requested()) poll(initiator_, true);
    worker_stop_.store(true, std::memory_order_release);
    rte_eal_wait_lcore(worker_lcore_);
}

TrialStats Engine::run(const TrialSpec& spec) {
    TrialStats stats;
    generation_ = static_cast<uint8_t>(generation_ % 127 + 1);
    const uint64_t seed = mix_seed(config_.seed, spec.seed_stream);
    Direction fwd(spec.initiator, initiator_, true, stats.forward, spec.tuples, mix_seed(seed, 1));
    Direction rev(spec.responder, responder_, false, stats.reverse, spec.tuples, mix_seed(seed, 2));
    for (Direction* d : {&fwd, &rev}) {
        if (!d->plan.active) continue;
        d->stats.planned = d->plan.frames;
        if (d->plan.order != TxOrder::Random) d->seen.assign(spec.tuples, 0);
        if (d->plan.timestamp) {
            const uint64_t cap = std::min<uint64_t>(config_.latency_samples, std::max<uint64_t>(d->plan.frames, 1));
            d->stats.latency_cycles.reserve(cap);
            d->latency_stride = (d->plan.frames + cap - 1) / cap;
            if (d->latency_stride == 0) d->latency_stride = 1;
        }
    }
    spec_ = &spec;
    fwd_ = &fwd;
    rev_ = &rev;
    stats_ = &stats;

    const uint64_t start = rte_rdtsc();
    fwd.start_tsc = rev.start_tsc = start;
    tx_end_ = start + static_cast<uint64_t>(spec.tx_seconds * hz_);
    if (worker_lcore_ != kNoWorker)
        run_two_lcores(fwd, rev);
    else
        run_one_lcore(fwd, rev);
    stats.elapsed_s = static_cast<double>(rte_rdtsc() - start) / hz_;
    spec_ = nullptr;
    fwd_ = rev_ = nullptr;
    stats_ = nullptr;
    for (DirectionStats* s : {&stats.forward, &stats.reverse})
        std::sort(s->latency_cycles.begin(), s->latency_cycles.end());
    return stats;
}

}  // namespace natperf
