// The traffic engine: paced transmission and counting reception on natperf's two ports for one
// trial at a time. The Initiator port sends Phase1/Forward frames over tuples of the tuple space
// toward the Responder address through the gateway; the Responder port learns the translated
// tuples from Phase1 frames and sends Reverse/Validation frames back over learned tuples.
//
// With one EAL lcore, it (the caller's) drives both ports: TX is paced by the TSC in bursts of
// up to 32, both RX queues are polled in the same loop, ARP is answered on the way. With two or
// more, the first worker lcore takes the Responder port (its TX and RX) during each trial and
// the main lcore the Initiator port. Every trial stops transmitting at its TX deadline and
// stops waiting for late frames at its timeout.
//
// Hot path (run()): no allocation (buffers are sized before the loop), no locks, no
// exceptions, no logging; frames that are not ours or are truncated are counted and freed.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "arp_responder.h"
#include "frame_builder.h"
#include "learned_tuples.h"
#include "tuple_space.h"

struct rte_mempool;

namespace natperf {

struct PortCounters {
    uint64_t rx_frames = 0;
    uint64_t rx_ours = 0;
    uint64_t rx_arp = 0;
    uint64_t rx_foreign = 0;     // not natperf's (other protocols, no magic)
    uint64_t rx_malformed = 0;   // truncated or inconsistent headers
    uint64_t rx_stale = 0;       // ours but from an earlier trial (late) or between trials
    uint64_t rx_unexpected = 0;  // ours but the wrong kind for this port, or a wrong tuple
    uint64_t tx_frames = 0;
    uint64_t tx_arp = 0;
    uint64_t tx_alloc_failed = 0;
};

// One of the two ports.
struct TestPort {
    uint16_t id = 0;
    rte_mempool* pool = nullptr;
    Mac mac{};
    ArpState arp;
    PortCounters counters;
};

enum class TxOrder : uint8_t {
    Permuted,    // step s sends tuple perm(s): each of the trial's tuples once (phase 1)
    Sequential,  // each learned tuple once, in index order (validation)
    Random,      // pseudorandom draws (phase 2)
};

struct TxPlan {
    bool active = false;
    Kind kind = Kind::Forward;
    TxOrder order = TxOrder::Random;
    double rate = 0;      // frames per second
    uint64_t frames = 0;  // how many to send
    bool timestamp = false;
};

struct TrialSpec {
    const TupleSpace* space = nullptr;
    uint64_t tuples = 0;       // the trial uses tuple indexes [0, tuples)
    TxPlan initiator;          // Initiator -> Responder
    TxPlan responder;          // Responder -> Initiator
    double tx_seconds = 1;     // TX stops here even when frames are left (then tx_short)
    double timeout_s = 2;      // then late frames are waited for this long at most
    bool learn = false;        // the Responder learns from Phase1 frames
    uint64_t seed_stream = 0;  // distinguishes the draws of trials with the same seed
};

struct DirectionStats {
    uint64_t planned = 0;
    uint64_t sent = 0;
    uint64_t received = 0;    // distinct tuples for Permuted/Sequential plans, frames otherwise
    uint64_t duplicates = 0;  // Permuted/Sequential: a tuple's frame seen again
    double tx_seconds = 0;    // first to last transmission
    std::vector<uint64_t> latency_cycles;  // sampled one-way latencies (TSC cycles), sorted
    bool tx_short() const { return sent < planned; }
    bool lossless() const { return sent == planned && received == sent; }
    // Whether the rate was really offered: every frame sent, the last one no later than 2 %
    // (plus 200 us of scheduling slack) after its slot. A DUT that pushes back (memif rings)
    // or a tester that cannot keep up makes the trial last longer; it then measured a lower
    // rate than the one it is named after, and must not pass for it.
    bool on_pace(double rate) const {
        if (sent != planned) return false;
        if (planned <= 1 || rate <= 0) return true;
        return tx_seconds <= static_cast<double>(planned - 1) / rate * 1.02 + 0.0002;
    }
};

struct TrialStats {
    DirectionStats forward;  // Initiator -> Responder
    DirectionStats reverse;  // Responder -> Initiator
    uint64_t learned_new = 0;
    double elapsed_s = 0;
};

struct EngineConfig {
    Proto proto = Proto::Udp;
    uint32_t frame_len = kMinFrameLen;  // without FCS
    uint32_t initiator_ip = 0;
    uint32_t responder_ip = 0;
    uint64_t seed = 0;
    uint64_t latency_samples = 1u << 20;  // per direction and trial
    bool use_worker_lcore = true;         // a second EAL lcore, if any, takes the Responder port
};

// SIGINT/SIGTERM: every loop of the engine ends at its next check (async-signal-safe).
void request_stop();
bool stop_requested();

class Engine {
public:
    Engine(const EngineConfig& config, TestPort& initiator, TestPort& responder, LearnedTuples& learned);

    // ARPs for both gateways (every 200 ms) until the Initiator's gateway answers (and the
    // Responder's, when it has one) or timeout_s passes. True when the Initiator's is known.
    bool resolve_gateways(double timeout_s);

    // Runs one trial (see TrialSpec). Allocates its buffers before the timed loop.
    TrialStats run(const TrialSpec& spec);

    // Keeps both ports served (ARP answered, stray frames counted) for `seconds`, or until
    // *stop becomes true when stop is given (checked every poll).
    void idle(double seconds, const std::atomic<bool>* stop = nullptr);

    const EngineConfig& config() const { return config_; }
    double tsc_hz() const { return hz_; }
    // The lcore that polls the Responder port during trials; -1: the main lcore does.
    int worker_lcore() const { return worker_lcore_ == kNoWorker ? -1 : static_cast<int>(worker_lcore_); }

private:
    struct Direction;
    void poll(TestPort& port, bool initiator_side);
    void tx_step(Direction& d, uint64_t now);
    void send_raw(TestPort& port, const uint8_t* frame, uint32_t len);
    uint32_t build(Direction& d, uint8_t* out, uint32_t cap, uint64_t now);
    void finish_tx(Direction& d);
    bool complete(Direction& fwd, Direction& rev);
    void run_one_lcore(Direction& fwd, Direction& rev);
    void run_two_lcores(Direction& fwd, Direction& rev);
    static int responder_main(void* engine);

    static constexpr unsigned kNoWorker = ~0u;

    EngineConfig config_;
    TestPort& initiator_;
    TestPort& responder_;
    LearnedTuples& learned_;
    double hz_;
    uint8_t generation_ = 0;
    const TrialSpec* spec_ = nullptr;  // the running trial (null between trials)
    Direction* fwd_ = nullptr;
    Direction* rev_ = nullptr;
    TrialStats* stats_ = nullptr;
    uint64_t tx_end_ = 0;
    unsigned worker_lcore_ = kNoWorker;
    std::atomic<bool> worker_tx_done_{false};  // worker -> main: the Responder's TX is over
    std::atomic<bool> worker_stop_{false};     // main -> worker: the trial is over
};

}  // namespace natperf
