// Tests the port race property: W workers allocating and freeing concurrently toward one remote never hold a live (public address, port, remote) twice and never leave their partition.
//
// The referee is a shared array of atomic flags, one per (public address, port[, remote]),
// owned by the test, not by the code under test: a thread sets the flag when it starts to hold
// a pair (exchange must see 0) and clears it before the pair goes back (exchange must see 1).
// A second thread holding the same pair at the same time is caught by the exchange.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <atomic>
#include <barrier>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nat_fixture.h"
#include "port_allocator.h"

namespace snatgw::test {
namespace {

// Sanitizer and unoptimised builds run the same tests with fewer iterations.
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
constexpr uint64_t kScaleDown = 8;
#else
constexpr uint64_t kScaleDown = 1;
#endif

constexpr uint16_t kPortMin = 1024;
constexpr uint16_t kPortMax = 65535;
constexpr uint32_t kRangePorts = uint32_t{kPortMax} - kPortMin + 1;  // 64512

class Referee {
public:
    explicit Referee(uint32_t slots)
        : slots_(slots), held_(std::make_unique<std::atomic<uint8_t>[]>(std::size_t{slots} * 65536)) {}

    // Starts holding (slot, port): true when nobody held it.
    bool take(uint32_t slot, uint16_t port) { return cell(slot, port).exchange(1) == 0; }
    // Stops holding: true when it was held.
    bool give_back(uint32_t slot, uint16_t port) { return cell(slot, port).exchange(0) == 1; }
    uint32_t held(uint32_t slot) const {
        uint32_t n = 0;
        for (uint32_t p = 0; p < 65536; ++p) n += held_[std::size_t{slot} * 65536 + p].load();
        return n;
    }
    uint32_t slots() const { return slots_; }

private:
    std::atomic<uint8_t>& cell(uint32_t slot, uint16_t port) {
        return held_[std::size_t{slot} * 65536 + port];
    }
    uint32_t slots_;
    std::unique_ptr<std::atomic<uint8_t>[]> held_;
};

// Barrier completion: counts the referee's held pairs per slot while every thread waits.
struct CountHeld {
    const Referee* ref;
    std::vector<uint32_t>* out;
    void operator()() noexcept {
        for (uint32_t s = 0; s < out->size(); ++s) (*out)[s] = ref->held(s);
    }
};
using FullBarrier = std::barrier<CountHeld>;

// Keeps the first few failure descriptions of a thread (read by the main thread after join).
struct Problems {
    uint64_t count = 0;
    std::string first;
    void note(const std::string& what) {
        if (count++ < 5) {
            first += what;
            first += '\n';
        }
    }
};

// =============================================================================================
// Allocator level
// =============================================================================================

constexpr uint32_t kPublic[2] = {0xC6130A0Au, 0xC6130A0Bu};  // two public addresses

struct AllocRaceSetup {
    uint16_t workers = 2;
    std::vector<uint16_t> worker_of_thread;  // normally 0 .. workers-1
    uint32_t remotes = 1;                    // sessions toward 1 (or more) remote endpoints
    uint64_t total_ops = 0;                  // allocate + free operations, all threads
};

struct AllocRaceResult {
    uint64_t allocations = 0;
    uint64_t frees = 0;
    uint64_t collisions = 0;        // referee: pair already held by someone
    uint64_t double_gives = 0;      // referee: pair not held when given back
    uint64_t out_of_partition = 0;  // port not owned by this worker
    uint64_t taken_returned = 0;    // allocate returned a pair this thread already holds
    uint64_t exhaustions = 0;       // clean nullopt: this thread held every port of the pair
    uint64_t bad_exhaustions = 0;   // nullopt while a pair was free, before the probe bound
    uint64_t bounded_exhaustions = 0;  // nullopt after the probe bound, pairs still free
    uint64_t count_mismatches = 0;  // owned / ports_in_use disagree with the session table
    uint64_t shared_ports = 0;      // allocations of a port already used toward another remote
    uint32_t partition = 0;         // ports of this worker per address
    uint32_t max_live_per_slot = 0;
    Problems problems;
};

// One thread: its own PortAllocator, its own "session table" (live pairs), churning.
void alloc_race_thread(const AllocRaceSetup& setup, uint32_t thread, Referee& ref,
                       FullBarrier& full_barrier, uint64_t ops,
                       AllocRaceResult& res) {
    const uint16_t W = setup.workers;
    const uint16_t w = setup.worker_of_thread[thread];
    const uint32_t R = setup.remotes;
    const uint32_t S = 2 * R;  // slots: (address, remote)
    PortAllocator pa(w, W, 0x5EED0000ull + thread * 7919ull);
    // The addresses' port state, as the control thread builds it for a snapshot.
    NatConfig cfg;
    cfg.workers = W;
    Pool pool;
    for (uint32_t a : kPublic) pool.addresses.push_back(ntohl(a));  // kPublic: wire order
    pool.port_min = kPortMin;
    pool.port_max = kPortMax;
    cfg.pools.push_back(pool);
    PortStateStore store(W);
    const auto index = store.build(cfg, w);
    pa.adopt(index.get());
    const Partition part = Partition::of(kPortMin, kPortMax, w, W);
    const uint32_t psize = pa.partition_size(kPublic[0]);
    res.partition = psize;
    if (psize != part.count || pa.partition_size(kPublic[1]) != part.count)
        res.problems.note("partition size differs from Partition::of");

    // The thread's session table.
    std::vector<uint8_t> live(std::size_t{S} * 65536, 0);          // pair held?
    std::vector<int32_t> pos(std::size_t{S} * 65536, -1);          // index in list[slot]
    std::vector<std::vector<uint16_t>> list(S);                     // live ports per slot
    std::vector<uint8_t> users(2 * 65536, 0);                       // sessions per (addr, port)
    std::vector<uint8_t> has_owner(2 * 65536, 0);                   // a session owns (addr, port)
    std::vector<uint8_t> owns(std::size_t{S} * 65536, 0);           // that session is the owner
    uint32_t in_use[2] = {0, 0};                                    // ports with an owner
    std::mt19937_64 rng(1000 + thread);

    enum Mode { Fill, Drain };
    std::vector<Mode> mode(S, Fill);
    std::vector<uint32_t> target(S);
    // First fill goes past the partition: every slot is driven to exhaustion at least once.
    for (uint32_t s = 0; s < S; ++s) target[s] = psize + 1 + static_cast<uint32_t>(rng() % 64);

    auto check_counts = [&](uint32_t a, uint16_t port) {
        if (pa.owned(kPublic[a], PortSpace::Tcp, port) != (has_owner[a * 65536 + port] != 0) ||
            pa.ports_in_use(kPublic[a], PortSpace::Tcp) != in_use[a]) {
            ++res.count_mismatches;
            res.problems.note("owned/ports_in_use disagree for port " + std::to_string(port));
        }
    };

    // Records `port` as held toward slot's remote (the session table's insert).
    auto hold = [&](uint32_t slot, uint16_t port) {
        const uint32_t a = slot / R;
        uint8_t* slot_live = &live[std::size_t{slot} * 65536];
        if (!ref.take(slot, port)) ++res.collisions;
        if (users[a * 65536 + port] != 0) ++res.shared_ports;
        slot_live[port] = 1;
        pos[std::size_t{slot} * 65536 + port] = static_cast<int32_t>(list[slot].size());
        list[slot].push_back(port);
        ++users[a * 65536 + port];
        const bool own = pa.acquire(kPublic[a], PortSpace::Tcp, port);
        if (own == (has_owner[a * 65536 + port] != 0)) {
            ++res.count_mismatches;
            res.problems.note("acquire's ownership is wrong for port " + std::to_string(port));
        }
        owns[std::size_t{slot} * 65536 + port] = own;
        if (own) has_owner[a * 65536 + port] = 1, ++in_use[a];
        check_counts(a, port);
        if (list[slot].size() > res.max_live_per_slot)
            res.max_live_per_slot = static_cast<uint32_t>(list[slot].size());
    };

    // Returns false on nullopt.
    auto allocate_one = [&](uint32_t slot) -> bool {
        const uint32_t a = slot / R;
        uint8_t* slot_live = &live[std::size_t{slot} * 65536];
        uint32_t probes = 0;
        const auto p = pa.allocate(
            kPublic[a], PortSpace::Tcp, [&] { return static_cast<uint32_t>(list[slot].size()); },
            [&](uint16_t port) {
                ++probes;
                return slot_live[port] != 0;
            });
        if (!p) {
            if (list[slot].size() == psize) {
                ++res.exhaustions;
            } else if (probes >= std::min<uint32_t>(PortAllocator::kMaxProbes, psize)) {
                // Pairs are left, but the bounded probe found none (never a partition scan).
                ++res.bounded_exhaustions;
            } else {
                ++res.bad_exhaustions;
                res.problems.note("nullopt with " + std::to_string(list[slot].size()) + " of " +
                                  std::to_string(psize) + " pairs held after " +
                                  std::to_string(probes) + " probes");
            }
            return false;
        }
        const uint16_t port = *p;
        if (!part.contains(port) || port_owner(port, W) != w) {
            ++res.out_of_partition;
            res.problems.note("port " + std::to_string(port) + " outside partition of worker " +
                              std::to_string(w));
        }
        if (slot_live[port]) {
            ++res.taken_returned;
            res.problems.note("allocate returned held pair, port " + std::to_string(port));
            return true;  // do not double-insert into the session table
        }
        hold(slot, port);
        ++res.allocations;
        return true;
    };

    auto free_at = [&](uint32_t slot, std::size_t j) {
        const uint32_t a = slot / R;
        std::vector<uint16_t>& l = list[slot];
        const uint16_t port = l[j];
        l[j] = l.back();
        pos[std::size_t{slot} * 65536 + l[j]] = static_cast<int32_t>(j);
        l.pop_back();
        pos[std::size_t{slot} * 65536 + port] = -1;
        live[std::size_t{slot} * 65536 + port] = 0;
        if (!ref.give_back(slot, port)) ++res.double_gives;
        --users[a * 65536 + port];
        const bool own = owns[std::size_t{slot} * 65536 + port] != 0;
        pa.release(kPublic[a], PortSpace::Tcp, port, own);
        if (own) has_owner[a * 65536 + port] = 0, --in_use[a];
        ++res.frees;
        check_counts(a, port);
    };

    // Churn.
    for (uint64_t i = 0; i < ops; ++i) {
        const uint32_t slot = static_cast<uint32_t>(rng() % S);
        const bool bias = (rng() & 7) != 0;  // 7/8 toward the mode's direction
        bool do_alloc = mode[slot] == Fill ? bias : !bias;
        if (list[slot].empty()) do_alloc = true;
        if (do_alloc) {
            const bool ok = allocate_one(slot);
            if (!ok || (mode[slot] == Fill && list[slot].size() >= target[slot])) {
                mode[slot] = Drain;
                target[slot] = static_cast<uint32_t>(rng() % (psize / 2 + 1));
            }
        } else {
            free_at(slot, rng() % list[slot].size());
            if (mode[slot] == Drain && list[slot].size() <= target[slot]) {
                mode[slot] = Fill;
                // Half of the fills aim past the partition and end in exhaustion.
                target[slot] = psize / 2 + static_cast<uint32_t>(rng() % (psize + 1));
            }
        }
    }

    // Every thread fills every pair to exhaustion, then all meet holding everything. When the
    // bounded probe gives up with pairs left, the last ones are held directly (what the
    // allocator would not find in its probe budget), so the barrier still sees full partitions.
    for (uint32_t slot = 0; slot < S; ++slot) {
        uint64_t guard = 0;
        while (allocate_one(slot) && guard++ < 70000) {
        }
        for (uint32_t i = 0; i < part.count && list[slot].size() < psize; ++i)
            if (!live[std::size_t{slot} * 65536 + part.port_at(i)]) hold(slot, part.port_at(i));
        if (list[slot].size() != psize) {
            res.problems.note("final fill stopped at " + std::to_string(list[slot].size()) +
                              " of " + std::to_string(psize));
        }
    }
    full_barrier.arrive_and_wait();

    // Give everything back.
    for (uint32_t slot = 0; slot < S; ++slot)
        while (!list[slot].empty()) free_at(slot, list[slot].size() - 1);
    if (pa.ports_in_use(kPublic[0], PortSpace::Tcp) != 0 ||
        pa.ports_in_use(kPublic[1], PortSpace::Tcp) != 0) {
        ++res.count_mismatches;
        res.problems.note("ports still in use after releasing everything");
    }
}

struct AllocRaceOutcome {
    std::vector<AllocRaceResult> threads;
    std::vector<uint32_t> held_at_barrier;  // referee count per slot while all threads were full
    std::vector<uint32_t> held_at_end;
};

AllocRaceOutcome run_alloc_race(const AllocRaceSetup& setup) {
    const uint32_t T = static_cast<uint32_t>(setup.worker_of_thread.size());
    const uint32_t S = 2 * setup.remotes;
    Referee ref(S);
    AllocRaceOutcome out;
    out.threads.resize(T);
    out.held_at_barrier.assign(S, 0);
    FullBarrier full_barrier(static_cast<std::ptrdiff_t>(T), CountHeld{&ref, &out.held_at_barrier});
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < T; ++t) {
        threads.emplace_back([&, t] {
            while (!go.load()) std::this_thread::yield();
            alloc_race_thread(setup, t, ref, full_barrier, setup.total_ops / T, out.threads[t]);
        });
    }
    go.store(true);
    for (std::thread& th : threads) th.join();
    for (uint32_t s = 0; s < S; ++s) out.held_at_end.push_back(ref.held(s));
    return out;
}

void expect_clean_alloc_race(const AllocRaceSetup& setup) {
    const AllocRaceOutcome out = run_alloc_race(setup);
    uint64_t ops = 0;
    for (std::size_t t = 0; t < out.threads.size(); ++t) {
        const AllocRaceResult& r = out.threads[t];
        SCOPED_TRACE("thread " + std::to_string(t));
        ops += r.allocations + r.frees;
        EXPECT_EQ(r.collisions, 0u);
        EXPECT_EQ(r.double_gives, 0u);
        EXPECT_EQ(r.out_of_partition, 0u);
        EXPECT_EQ(r.taken_returned, 0u);
        EXPECT_EQ(r.bad_exhaustions, 0u);
        EXPECT_EQ(r.count_mismatches, 0u);
        EXPECT_EQ(r.problems.count, 0u) << r.problems.first;
        // Every slot went to exhaustion at least twice (first fill, final fill), and a single
        // remote never saw more live sessions than the partition has ports.
        EXPECT_GE(r.exhaustions + r.bounded_exhaustions, 2u * 2u * setup.remotes);
        EXPECT_EQ(r.max_live_per_slot, r.partition);
        // With one remote a port carries at most one session; with two, the taken() path
        // hands out ports already used toward the other remote.
        if (setup.remotes == 1) EXPECT_EQ(r.shared_ports, 0u);
        else EXPECT_GT(r.shared_ports, 0u);
        EXPECT_EQ(r.partition, Partition::of(kPortMin, kPortMax, setup.worker_of_thread[t],
                                             setup.workers).count);
    }
    EXPECT_GE(ops, setup.total_ops);
    // All W partitions full at once: every port of the range held, exactly once per pair.
    for (std::size_t s = 0; s < out.held_at_barrier.size(); ++s) {
        EXPECT_EQ(out.held_at_barrier[s], kRangePorts) << "slot " << s;
        EXPECT_EQ(out.held_at_end[s], 0u) << "slot " << s;
    }
}

std::vector<uint16_t> identity_workers(uint16_t n) {
    std::vector<uint16_t> v;
    for (uint16_t i = 0; i < n; ++i) v.push_back(i);
    return v;
}

TEST(PortRaceAllocator, TwoWorkersOneRemoteNoCollision) {
    AllocRaceSetup s;
    s.workers = 2;
    s.worker_of_thread = identity_workers(2);
    s.total_ops = 4'000'000 / kScaleDown;
    expect_clean_alloc_race(s);
}

TEST(PortRaceAllocator, FourWorkersOneRemoteNoCollision) {
    AllocRaceSetup s;
    s.workers = 4;
    s.worker_of_thread = identity_workers(4);
    s.total_ops = 4'000'000 / kScaleDown;
    expect_clean_alloc_race(s);
}

// Two remotes: once every port carries a session toward one remote, sessions toward the other
// come from the "every port in use" path (the taken() scan), concurrently.
TEST(PortRaceAllocator, FourWorkersTwoRemotesNoCollision) {
    AllocRaceSetup s;
    s.workers = 4;
    s.worker_of_thread = identity_workers(4);
    s.remotes = 2;
    s.total_ops = 3'000'000 / kScaleDown;
    expect_clean_alloc_race(s);
}

// The referee must be able to fail: two threads given the SAME worker index (overlapping
// partitions) hold the same pairs. Both fill every pair of partition 0 before either gives
// anything back in the final phase, so every port of it is caught at least once.
TEST(PortRaceAllocator, RefereeCatchesOverlappingPartitions) {
    AllocRaceSetup s;
    s.workers = 2;
    s.worker_of_thread = {0, 0};
    s.total_ops = 400'000 / kScaleDown;
    const AllocRaceOutcome out = run_alloc_race(s);
    const uint32_t psize = Partition::of(kPortMin, kPortMax, 0, 2).count;
    const uint64_t collisions = out.threads[0].collisions + out.threads[1].collisions;
    EXPECT_GE(collisions, uint64_t{psize} * 2u);
    // Only partition 0 was ever held, so the range was not covered.
    EXPECT_EQ(out.held_at_barrier[0], psize);
    EXPECT_EQ(out.held_at_barrier[1], psize);
    // The allocators themselves did nothing wrong from their own point of view.
    EXPECT_EQ(out.threads[0].out_of_partition + out.threads[1].out_of_partition, 0u);
}

// =============================================================================================
// Engine level: NatWorker instances, one per thread, translating SYNs toward one server.
// =============================================================================================

const uint32_t kServer = ip("198.19.0.100");
constexpr uint16_t kServerPort = 80;
const uint32_t kLab[2] = {ip("198.19.0.10"), ip("198.19.0.11")};

std::unique_ptr<NatConfig> race_config(uint16_t workers) {
    PoolSpec pool = lab_pool("liberal");
    // These tests model every pair the engine hands out and frees; a host here holds far more
    // handshakes than the default cap, whose recycling (tested in nat_session_test) the model
    // does not follow.
    pool.max_embryonic_per_host = 0;
    // Handshake and established sessions never time out during the test; closes do (linger
    // 2 s after an inside-first close or RST, quarantine 120 s after a remote-first close).
    pool.timeouts.tcp_transitory = 604800;
    pool.timeouts.tcp_syn_sent = 604800;
    pool.timeouts.tcp_syn_recv = 604800;
    pool.timeouts.tcp_established = 604800;
    pool.timeouts.linger = 2;
    pool.timeouts.quarantine = 120;
    return std::make_unique<NatConfig>(
        build_nat_config(workers, {pool}, {{"198.18.0.0/24", "lab"}}));
}

std::vector<std::unique_ptr<NatWorker>> make_workers(const NatConfig& cfg, uint16_t workers) {
    static std::atomic<uint32_t> instance{0};
    const uint32_t run = instance++;
    std::vector<std::unique_ptr<NatWorker>> v;
    for (uint16_t w = 0; w < workers; ++w) {
        WorkerParams wp;
        wp.worker_id = w;
        wp.session_capacity = 65536;
        wp.host_capacity = 1024;
        wp.seed = 0xABCDEF00ull + run * 31u + w;
        wp.table_prefix = "race";
        wp.table_prefix += std::to_string(run);
        wp.table_prefix += '_';
        wp.table_prefix += std::to_string(w);
        v.push_back(std::make_unique<NatWorker>(&cfg, wp));
    }
    return v;
}

std::vector<uint8_t> tcp_frame(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                               uint32_t seq, uint32_t ack, uint8_t flags) {
    return PacketBuilder().eth().ipv4(src, dst).tcp(sport, dport, seq, ack, flags).build();
}

// Runs a burst through the worker; frames are translated in place.
std::vector<FrameResult> send(NatWorker& nw, Side side, std::vector<std::vector<uint8_t>>& frames,
                              uint32_t now_ms) {
    std::vector<Frame> f;
    for (auto& fr : frames) f.push_back(Frame{fr.data(), static_cast<uint32_t>(fr.size())});
    std::vector<FrameResult> r(frames.size());
    nw.process(side, f.data(), r.data(), static_cast<uint32_t>(f.size()), now_ms);
    return r;
}

int lab_slot(uint32_t addr) {
    if (addr == kLab[0]) return 0;
    if (addr == kLab[1]) return 1;
    return -1;
}

struct EngineRaceResult {
    uint64_t syns = 0;
    uint64_t syns_forwarded = 0;
    uint64_t collisions = 0;
    uint64_t double_gives = 0;
    uint64_t wrong_owner = 0;
    uint64_t bad_frames = 0;   // not forwarded, wrong translation, bad checksum
    uint64_t early_free = 0;   // freed before its timeout
    uint64_t late_free = 0;    // not freed long after its timeout
    uint64_t freed = 0;
    uint64_t rst_closes = 0, inside_fin_closes = 0, remote_fin_closes = 0, established = 0;
    uint32_t max_live = 0;
    Problems problems;
};

struct Flow {
    uint32_t host;
    uint16_t sport;
    uint32_t isn;
    uint32_t pub;
    uint16_t pub_port;
    bool established;
};

struct Closing {
    uint32_t due_ms;
    uint32_t pub;
    uint16_t pub_port;
};

constexpr uint32_t kAllowedLateMs = 1100;  // expiry granularity (~1 s buckets)
// Live sessions per worker swing between these marks (the scaled-down run is shorter).
constexpr uint32_t kLow = 2000;
constexpr uint32_t kHigh = kScaleDown == 1 ? 12000 : 4000;

void engine_race_thread(NatWorker& nw, uint16_t W, Referee& ref, uint64_t syn_budget,
                        EngineRaceResult& res) {
    const uint16_t w = nw.id();
    std::mt19937_64 rng(77 + w);
    std::vector<Flow> live;
    std::vector<Closing> closing;
    uint64_t next_flow = 0;
    bool growing = true;
    constexpr uint32_t kBurst = 32;

    auto frame_ok = [&](const FrameResult& r, const std::vector<uint8_t>& f, uint32_t src,
                        uint32_t dst, uint16_t sport, uint16_t dport, const char* what) {
        if (r.verdict != Verdict::Forward) {
            ++res.bad_frames;
            std::string m = what;
            m += ": verdict ";
            m += std::to_string(static_cast<int>(r.verdict));
            m += " reason ";
            m += std::to_string(static_cast<int>(r.reason));
            res.problems.note(m);
            return false;
        }
        const auto d = decode(f);
        const auto c = verify_checksums(f);
        if (!d || !c.ok || d->src != src || d->dst != dst || d->sport != sport ||
            d->dport != dport || d->ttl != 63) {
            ++res.bad_frames;
            std::string m = what;
            m += ": bad translation ";
            m += c.detail;
            res.problems.note(m);
            return false;
        }
        return true;
    };

    uint32_t now = 1000;
    const uint64_t freed_before = nw.counters().sessions_freed;
    for (uint32_t round = 0; res.syns < syn_budget; ++round) {
        now = 1000 + round * 2500;

        // 1. Expire, then give back to the referee exactly the pairs the engine freed.
        nw.expire(now, 1u << 30);
        for (std::size_t i = 0; i < closing.size();) {
            const Closing& c = closing[i];
            // One remote: a port carries at most one session, its owner.
            const bool freed = !nw.ports().owned(htonl(c.pub), PortSpace::Tcp, c.pub_port);
            if (freed) {
                if (static_cast<int32_t>(now - c.due_ms) < 0) ++res.early_free;
                if (!ref.give_back(static_cast<uint32_t>(lab_slot(c.pub)), c.pub_port))
                    ++res.double_gives;
                ++res.freed;
                closing[i] = closing.back();
                closing.pop_back();
            } else {
                if (static_cast<int32_t>(now - c.due_ms) > static_cast<int32_t>(kAllowedLateMs))
                    ++res.late_free;
                ++i;
            }
        }

        // 2. New connections: bare SYNs from many inside hosts and ports, all to one server.
        std::vector<Flow> fresh;
        std::vector<std::vector<uint8_t>> frames;
        for (uint32_t b = 0; b < 2 * kBurst; ++b) {
            const uint64_t k = next_flow++;
            Flow fl{};
            fl.host = ip("198.18.0.0") + 1 + w * 50u + static_cast<uint32_t>(k % 50);
            fl.sport = static_cast<uint16_t>(1024 + (k / 50) % 64000);
            fl.isn = static_cast<uint32_t>(rng());
            fresh.push_back(fl);
            frames.push_back(tcp_frame(fl.host, kServer, fl.sport, kServerPort, fl.isn, 0, TCP_SYN));
        }
        res.syns += frames.size();
        const auto results = send(nw, Side::Inside, frames, now);
        std::vector<Flow> to_establish;
        for (std::size_t i = 0; i < frames.size(); ++i) {
            Flow fl = fresh[i];
            if (results[i].verdict != Verdict::Forward) {
                frame_ok(results[i], frames[i], 0, 0, 0, 0, "SYN");
                continue;
            }
            const auto d = decode(frames[i]);
            if (!d || !verify_checksums(frames[i]).ok || lab_slot(d->src) < 0 ||
                d->dst != kServer || d->dport != kServerPort || d->ttl != 63) {
                ++res.bad_frames;
                res.problems.note("SYN translated wrongly");
                continue;
            }
            ++res.syns_forwarded;
            fl.pub = d->src;
            fl.pub_port = d->sport;
            if (port_owner(fl.pub_port, W) != w) {
                ++res.wrong_owner;
                res.problems.note("public port " + std::to_string(fl.pub_port) +
                                  " not owned by worker " + std::to_string(w));
            }
            if (!ref.take(static_cast<uint32_t>(lab_slot(fl.pub)), fl.pub_port)) {
                ++res.collisions;
                res.problems.note("collision on " + ip_str(fl.pub) + ":" +
                                  std::to_string(fl.pub_port));
            }
            if (rng() % 4 == 0) to_establish.push_back(fl);
            else live.push_back(fl);
        }

        // Some complete the handshake: SYN-ACK from the server reaches the owner worker.
        if (!to_establish.empty()) {
            std::vector<std::vector<uint8_t>> synacks, acks;
            for (const Flow& fl : to_establish)
                synacks.push_back(tcp_frame(kServer, fl.pub, kServerPort, fl.pub_port, ~fl.isn,
                                            fl.isn + 1, TCP_SYN | TCP_ACK));
            const auto r1 = send(nw, Side::Outside, synacks, now);
            for (std::size_t i = 0; i < to_establish.size(); ++i) {
                const Flow& fl = to_establish[i];
                frame_ok(r1[i], synacks[i], kServer, fl.host, kServerPort, fl.sport, "SYN-ACK");
                acks.push_back(tcp_frame(fl.host, kServer, fl.sport, kServerPort, fl.isn + 1,
                                         ~fl.isn + 1, TCP_ACK));
            }
            const auto r2 = send(nw, Side::Inside, acks, now);
            for (std::size_t i = 0; i < to_establish.size(); ++i) {
                Flow fl = to_establish[i];
                frame_ok(r2[i], acks[i], fl.pub, kServer, fl.pub_port, kServerPort, "ACK");
                fl.established = true;
                ++res.established;
                live.push_back(fl);
            }
        }
        if (live.size() > res.max_live) res.max_live = static_cast<uint32_t>(live.size());

        // 3. Close some: RST from inside (linger), or a FIN exchange, inside-first (linger) or
        //    remote-first (quarantine).
        if (growing && live.size() >= kHigh) growing = false;
        if (!growing && live.size() <= kLow) growing = true;
        const std::size_t n_close = std::min<std::size_t>(live.size(), growing ? 16 : 112);
        std::vector<Flow> rst, fin_in, fin_out;
        for (std::size_t i = 0; i < n_close; ++i) {
            const std::size_t j = rng() % live.size();
            const Flow fl = live[j];
            live[j] = live.back();
            live.pop_back();
            if (!fl.established) rst.push_back(fl);
            else if (rng() % 2 == 0) fin_in.push_back(fl);
            else fin_out.push_back(fl);
        }
        // Builds, sends and checks one burst; direction true = from inside.
        auto exchange = [&](const std::vector<Flow>& flows, bool from_inside, uint32_t seq_off,
                            uint32_t ack_off, uint8_t flags, const char* what) {
            if (flows.empty()) return;
            std::vector<std::vector<uint8_t>> fr;
            for (const Flow& fl : flows) {
                if (from_inside)
                    fr.push_back(tcp_frame(fl.host, kServer, fl.sport, kServerPort,
                                           fl.isn + seq_off, ~fl.isn + ack_off, flags));
                else
                    fr.push_back(tcp_frame(kServer, fl.pub, kServerPort, fl.pub_port,
                                           ~fl.isn + seq_off, fl.isn + ack_off, flags));
            }
            const auto r = send(nw, from_inside ? Side::Inside : Side::Outside, fr, now);
            for (std::size_t i = 0; i < flows.size(); ++i) {
                const Flow& fl = flows[i];
                if (from_inside)
                    frame_ok(r[i], fr[i], fl.pub, kServer, fl.pub_port, kServerPort, what);
                else
                    frame_ok(r[i], fr[i], kServer, fl.host, kServerPort, fl.sport, what);
            }
        };
        exchange(rst, true, 1, 0, TCP_RST, "RST");
        // Inside closes first: FIN, server FIN-ACK, inside ACK -> TIME_WAIT, linger.
        exchange(fin_in, true, 1, 1, TCP_FIN | TCP_ACK, "inside FIN");
        exchange(fin_in, false, 1, 2, TCP_FIN | TCP_ACK, "server FIN");
        exchange(fin_in, true, 2, 2, TCP_ACK, "inside last ACK");
        // Server closes first: FIN, inside FIN-ACK, server ACK -> TIME_WAIT, quarantine.
        exchange(fin_out, false, 1, 1, TCP_FIN | TCP_ACK, "server FIN first");
        exchange(fin_out, true, 1, 2, TCP_FIN | TCP_ACK, "inside FIN second");
        exchange(fin_out, false, 2, 2, TCP_ACK, "server last ACK");
        for (const Flow& fl : rst) closing.push_back({now + 2000, fl.pub, fl.pub_port});
        for (const Flow& fl : fin_in) closing.push_back({now + 2000, fl.pub, fl.pub_port});
        for (const Flow& fl : fin_out) closing.push_back({now + 120000, fl.pub, fl.pub_port});
        res.rst_closes += rst.size();
        res.inside_fin_closes += fin_in.size();
        res.remote_fin_closes += fin_out.size();
    }
    if (nw.counters().sessions_freed - freed_before != res.freed) {
        res.problems.note("sessions_freed " +
                          std::to_string(nw.counters().sessions_freed - freed_before) +
                          " but the referee saw " + std::to_string(res.freed));
    }
    // Live sessions still hold their pairs; clean the referee for them (and the closing ones).
    for (const Flow& fl : live)
        if (!ref.give_back(static_cast<uint32_t>(lab_slot(fl.pub)), fl.pub_port)) ++res.double_gives;
    for (const Closing& c : closing)
        if (!ref.give_back(static_cast<uint32_t>(lab_slot(c.pub)), c.pub_port)) ++res.double_gives;
}

void expect_clean_engine_race(uint16_t W, uint64_t total_syns) {
    const auto cfg = race_config(W);
    auto workers = make_workers(*cfg, W);
    Referee ref(2);
    std::vector<EngineRaceResult> res(W);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (uint16_t w = 0; w < W; ++w) {
        threads.emplace_back([&, w] {
            while (!go.load()) std::this_thread::yield();
            engine_race_thread(*workers[w], W, ref, total_syns / W, res[w]);
        });
    }
    go.store(true);
    for (std::thread& t : threads) t.join();

    uint64_t syns = 0;
    for (uint16_t w = 0; w < W; ++w) {
        const EngineRaceResult& r = res[w];
        const WorkerCounters& c = workers[w]->counters();
        SCOPED_TRACE("worker " + std::to_string(w));
        syns += r.syns;
        EXPECT_EQ(r.collisions, 0u);
        EXPECT_EQ(r.double_gives, 0u);
        EXPECT_EQ(r.wrong_owner, 0u);
        EXPECT_EQ(r.bad_frames, 0u);
        EXPECT_EQ(r.early_free, 0u);
        EXPECT_EQ(r.late_free, 0u);
        EXPECT_EQ(r.problems.count, 0u) << r.problems.first;
        // Every SYN was forwarded: the partition was never genuinely full.
        EXPECT_EQ(r.syns_forwarded, r.syns);
        EXPECT_EQ(c.drops[static_cast<std::size_t>(DropReason::PortsExhausted)], 0u);
        EXPECT_EQ(c.drop_total(), 0u);
        EXPECT_EQ(c.handoffs, 0u);
        EXPECT_EQ(c.sessions_created, r.syns);
        EXPECT_EQ(c.sessions_evicted, 0u);
        EXPECT_GE(r.max_live, kHigh);  // the live population really reached the high mark
        EXPECT_GT(r.rst_closes, 0u);
        EXPECT_GT(r.inside_fin_closes, 0u);
        EXPECT_GT(r.remote_fin_closes, 0u);
        EXPECT_GT(r.freed, 0u);
    }
    EXPECT_GE(syns, total_syns - W);
    EXPECT_EQ(ref.held(0), 0u);
    EXPECT_EQ(ref.held(1), 0u);
}

TEST(PortRaceEngine, TwoWorkersChurnTowardOneServer) {
    expect_clean_engine_race(2, 200'000 / kScaleDown);
}

TEST(PortRaceEngine, FourWorkersChurnTowardOneServer) {
    expect_clean_engine_race(4, 300'000 / kScaleDown);
}

// All four workers exhaust the same public address toward the same server at the same time:
// each forwards exactly its partition's worth of SYNs, then drops PortsExhausted; together
// they hold every port of the range exactly once. A port freed afterwards is the next one given.
TEST(PortRaceEngine, FourWorkersExhaustOneAddressTogether) {
    constexpr uint16_t W = 4;
    const auto cfg = race_config(W);
    auto workers = make_workers(*cfg, W);
    Referee ref(2);
    const uint32_t host = ip("198.18.0.77");  // one host: paired pooling keeps one address
    constexpr uint32_t kExtra = 5;
    struct Result {
        uint32_t psize = 0;
        uint32_t forwarded = 0;
        uint32_t exhausted = 0;
        uint32_t pub = 0;
        uint16_t reused_port = 0, freed_port = 0;
        Problems problems;
    };
    std::vector<Result> res(W);
    std::vector<uint32_t> held_when_full(2, 0);
    FullBarrier counted(W, CountHeld{&ref, &held_when_full});
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (uint16_t w = 0; w < W; ++w) {
        threads.emplace_back([&, w] {
            while (!go.load()) std::this_thread::yield();
            NatWorker& nw = *workers[w];
            Result& r = res[w];
            const uint16_t sport0 = static_cast<uint16_t>(1 + w * 16200);
            uint32_t sent = 0;
            std::vector<std::pair<uint16_t, uint16_t>> sessions;  // (inside port, public port)
            uint32_t total = 0;
            for (bool first = true; first || sent < total;) {
                std::vector<std::vector<uint8_t>> frames;
                const uint32_t n = first ? 1 : std::min<uint32_t>(32, total - sent);
                for (uint32_t i = 0; i < n; ++i)
                    frames.push_back(tcp_frame(host, kServer, static_cast<uint16_t>(sport0 + sent + i),
                                               kServerPort, 1000 + sent + i, 0, TCP_SYN));
                const auto out = send(nw, Side::Inside, frames, 1000);
                for (uint32_t i = 0; i < n; ++i) {
                    const uint16_t sport = static_cast<uint16_t>(sport0 + sent + i);
                    if (out[i].verdict == Verdict::Drop &&
                        out[i].reason == DropReason::PortsExhausted) {
                        ++r.exhausted;
                        continue;
                    }
                    const auto d = decode(frames[i]);
                    if (out[i].verdict != Verdict::Forward || !d || !verify_checksums(frames[i]).ok ||
                        (r.pub != 0 && d->src != r.pub) || lab_slot(d->src) < 0) {
                        r.problems.note("SYN " + std::to_string(sent + i) + " not forwarded right");
                        continue;
                    }
                    r.pub = d->src;
                    if (port_owner(d->sport, W) != w)
                        r.problems.note("port " + std::to_string(d->sport) + " not owned");
                    if (!ref.take(static_cast<uint32_t>(lab_slot(d->src)), d->sport))
                        r.problems.note("collision on port " + std::to_string(d->sport));
                    sessions.emplace_back(sport, d->sport);
                    ++r.forwarded;
                }
                sent += n;
                if (first) {
                    first = false;
                    r.psize = r.pub != 0 ? nw.ports().partition_size(htonl(r.pub)) : 0;
                    total = r.psize + kExtra;
                }
            }
            counted.arrive_and_wait();
            if (sessions.empty()) return;
            // Free one session (inside RST, linger 2 s): its port is the only unused one left.
            const auto [in_port, pub_port] = sessions[sessions.size() / 2];
            r.freed_port = pub_port;
            std::vector<std::vector<uint8_t>> rst = {
                tcp_frame(host, kServer, in_port, kServerPort, 1000 + (in_port - sport0) + 1, 0,
                          TCP_RST)};
            if (send(nw, Side::Inside, rst, 1000)[0].verdict != Verdict::Forward)
                r.problems.note("RST not forwarded");
            nw.expire(2999, 1u << 20);
            if (!nw.ports().owned(htonl(r.pub), PortSpace::Tcp, pub_port))
                r.problems.note("freed before the linger timeout");
            nw.expire(3000 + kAllowedLateMs, 1u << 20);
            if (nw.ports().owned(htonl(r.pub), PortSpace::Tcp, pub_port))
                r.problems.note("not freed after the linger timeout");
            if (!ref.give_back(static_cast<uint32_t>(lab_slot(r.pub)), pub_port))
                r.problems.note("referee did not hold the freed port");
            // A new connection from the same host gets exactly that port.
            std::vector<std::vector<uint8_t>> syn = {
                tcp_frame(host, kServer, static_cast<uint16_t>(sport0 + total), kServerPort, 5,
                          0, TCP_SYN)};
            const auto o = send(nw, Side::Inside, syn, 4200);
            const auto d = decode(syn[0]);
            if (o[0].verdict != Verdict::Forward || !d) {
                r.problems.note("SYN after the free was not forwarded");
                return;
            }
            r.reused_port = d->sport;
            if (d->src != r.pub) r.problems.note("SYN after the free used another address");
        });
    }
    go.store(true);
    for (std::thread& t : threads) t.join();

    const uint32_t psize = Partition::of(kPortMin, kPortMax, 0, W).count;
    uint32_t pub = res[0].pub;
    for (uint16_t w = 0; w < W; ++w) {
        const Result& r = res[w];
        const WorkerCounters& c = workers[w]->counters();
        SCOPED_TRACE("worker " + std::to_string(w));
        EXPECT_EQ(r.problems.count, 0u) << r.problems.first;
        EXPECT_EQ(r.pub, pub);
        EXPECT_EQ(r.psize, psize);
        EXPECT_EQ(r.forwarded, psize);
        EXPECT_EQ(r.exhausted, kExtra);
        EXPECT_EQ(c.drops[static_cast<std::size_t>(DropReason::PortsExhausted)], kExtra);
        EXPECT_EQ(c.drop_total(), kExtra);
        EXPECT_EQ(c.sessions_created, psize + 1u);
        EXPECT_EQ(c.sessions_freed, 1u);
        EXPECT_EQ(workers[w]->sessions().size(), psize);
        EXPECT_EQ(r.reused_port, r.freed_port);
        EXPECT_NE(r.freed_port, 0);
    }
    // While all were full: the whole range of that address held, exactly once; the other free.
    const int slot = lab_slot(pub);
    ASSERT_GE(slot, 0);
    EXPECT_EQ(held_when_full[static_cast<std::size_t>(slot)], kRangePorts);
    EXPECT_EQ(held_when_full[static_cast<std::size_t>(1 - slot)], 0u);
}

}  // namespace
}  // namespace snatgw::test
