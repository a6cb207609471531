// The NAT event log's data path: what a worker records when a session (a mapping of inside
// address and port to public address and port toward one remote) is created or deleted, and
// the per-worker sink that carries those records to the logger thread (control/event_logger.h).
//
// Hot path rules hold: EventSink::emit copies 32 bytes into a local staging buffer; when the
// buffer fills, and once per loop pass (flush), it goes to a single-producer/single-consumer
// rte_ring in one burst. A full ring never blocks the worker and is never retried: what does
// not fit is counted as lost. With the log off the worker holds no sink (nullptr) and each call
// site costs one predictable branch.
#pragma once

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <type_traits>

#include "session.h"

namespace snatgw {

enum class EventType : uint8_t { Created, Deleted };

// Why a session's mapping ended. The names are what the log prints.
enum class DeleteReason : uint8_t {
    None,      // Created events
    Expired,   // idle timeout (UDP, ICMP; TCP whose quarantine after an idle timeout ended)
    Closed,    // TCP closed (FIN or RST) and its linger or quarantine ended
    Evicted,   // freed early to make room for a new session (table full)
    Flushed,   // removed by the operator
    Reopened,  // TCP: a new SYN of the same inside flow reused the mapping (a create follows)
    Shutdown,  // the daemon stopped with the session still open
    Reused,    // TCP: its pair went to a new SYN that the remote's TIME_WAIT accepts (RFC 6191)
    Reclaimed, // TCP: a never-established session freed for a new one (its host's cap, or no pair)
    Count
};
inline constexpr int kDeleteReasons = static_cast<int>(DeleteReason::Count);

const char* event_type_name(EventType t);       // "create", "delete"
const char* delete_reason_name(DeleteReason r);  // "expired", "closed", ...; None: "none"

// One record. Plain data; addresses and ports in network byte order as in Session.
struct NatEvent {
    uint32_t time_ms;  // the worker clock (as Session::last_seen_ms): ms since the workers started
    uint32_t inside_addr;
    uint32_t outside_addr;
    uint32_t remote_addr;
    uint16_t inside_port;   // ICMP: inside identifier
    uint16_t outside_port;  // ICMP: public identifier
    uint16_t remote_port;   // ICMP: 0
    uint8_t proto;          // IPPROTO_TCP / UDP / ICMP
    EventType type;
    DeleteReason reason;
    uint8_t reserved0 = 0;
    uint16_t worker;
    uint32_t reserved1 = 0;  // pads to 32 bytes: rte_ring copies whole 16-byte words
};
static_assert(sizeof(NatEvent) == 32, "NatEvent is copied by rte_ring in 16-byte words");
static_assert(sizeof(NatEvent) % 4 == 0, "rte_ring element sizes are multiples of 4");
static_assert(std::is_trivially_copyable_v<NatEvent>, "rte_ring copies NatEvent as bytes");

inline NatEvent make_event(const Session& s, EventType type, DeleteReason reason,
                           uint32_t now_ms, uint16_t worker) {
    NatEvent e;
    e.time_ms = now_ms;
    e.inside_addr = s.inside_addr;
    e.outside_addr = s.outside_addr;
    e.remote_addr = s.remote_addr;
    e.inside_port = s.inside_port;
    e.outside_port = s.outside_port;
    e.remote_port = s.remote_port;
    e.proto = s.proto;
    e.type = type;
    e.reason = reason;
    e.worker = worker;
    return e;
}

// One worker's sink. The producer side (emit, created, deleted, flush) belongs to the worker
// alone; the consumer side (drain) to the logger thread alone. emitted() and lost() may be read
// from any thread.
class EventSink {
public:
    static constexpr unsigned kStage = 32;  // events staged before an enqueue burst

    // Creates the ring: `name` must be unique in the process (DPDK object names are global, at
    // most 28 characters), `ring_size` a power of two (the ring holds ring_size - 1 events).
    // Throws std::invalid_argument on a bad size, std::runtime_error if DPDK refuses.
    EventSink(const std::string& name, uint32_t ring_size, uint16_t worker, int socket_id);
    ~EventSink();
    EventSink(const EventSink&) = delete;
    EventSink& operator=(const EventSink&) = delete;

    // Producer (the worker). Never blocks.
    void emit(const NatEvent& e) {
        stage_[staged_++] = e;
        bump(emitted_, 1);
        if (staged_ == kStage) flush();
    }
    void created(const Session& s, uint32_t now_ms) {
        emit(make_event(s, EventType::Created, DeleteReason::None, now_ms, worker_));
    }
    void deleted(const Session& s, DeleteReason why, uint32_t now_ms) {
        emit(make_event(s, EventType::Deleted, why, now_ms, worker_));
    }
    // Moves the staged events to the ring; what does not fit is dropped and counted.
    void flush() {
        if (staged_ == 0) return;
        const unsigned done =
            rte_ring_sp_enqueue_burst_elem(ring_, stage_, sizeof(NatEvent), staged_, nullptr);
        if (done != staged_) bump(lost_, staged_ - done);
        staged_ = 0;
    }

    // Consumer (the logger thread): up to `max` events, oldest first; returns how many.
    unsigned drain(NatEvent* out, unsigned max) {
        return rte_ring_sc_dequeue_burst_elem(ring_, out, sizeof(NatEvent), max, nullptr);
    }

    uint64_t emitted() const { return emitted_.load(std::memory_order_relaxed); }  // given to emit
    uint64_t lost() const { return lost_.load(std::memory_order_relaxed); }  // refused: ring full
    uint16_t worker() const { return worker_; }
    unsigned capacity() const { return rte_ring_get_capacity(ring_); }

private:
    // Single writer: a relaxed load and store (no read-modify-write), as cheap as a plain add,
    // and readers on other threads see whole values.
    static void bump(std::atomic<uint64_t>& c, uint64_t n) {
        c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }

    rte_ring* ring_ = nullptr;
    uint16_t worker_;
    unsigned staged_ = 0;
    std::atomic<uint64_t> emitted_{0};
    std::atomic<uint64_t> lost_{0};
    NatEvent stage_[kStage];
};

}  // namespace snatgw
