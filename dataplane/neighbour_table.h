// Neighbour (next hop IPv4 -> MAC) table and the hold queue for packets waiting on resolution.
//
// NeighbourTable has ONE writer, the main lcore (it sees ARP and sends requests), and any number
// of lock-free readers, the workers (lookup() per packet). It is a fixed array of slots, open
// addressing with linear probing; a slot's address is set once and the slot never moves or
// empties, so a reader's probe is always valid. Each slot's MAC and state sit in one 64-bit
// atomic, so a reader sees either the old or the new MAC, never a mix. Timestamps and request
// bookkeeping are plain fields only the writer touches.
//
// Entry states (per slot): pending (address known, no MAC yet: a request went out), reachable
// (MAC confirmed within `reachable_ms`), stale (not confirmed for reachable_ms: still used for
// `stale_grace_ms`, and the writer re-requests it), invalid (grace over: readers miss again).
//
// Slots are never reclaimed: the capacity bounds the number of distinct neighbours (next hops and
// directly connected hosts) the table sees over its lifetime. learn()/needs_request() return
// false once it is full.
//
// Requests for an unresolved neighbour are retried with a backoff (kFirstRetryMs, doubling, at
// most kRequestIntervalMs apart) for as long as the writer keeps asking (needs_request()), so a
// lost request or reply costs a quarter of a second, not a second; a stale entry is re-asked
// every kRequestIntervalMs.
//
// HoldQueue keeps the packets of a burst per unresolved neighbour (opaque pointers, mbufs in the
// daemon) until its MAC is learnt or they are too old. Main lcore only.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "arp.h"

namespace snatgw {

class NeighbourTable {
public:
    // Spacing of ARP requests for one neighbour: the first retry of an unresolved one after
    // kFirstRetryMs, then doubling up to kRequestIntervalMs (also the spacing of refreshes of a
    // stale one, whose MAC is still in use). Linux retries an unresolved neighbour every second
    // (retrans_time); a gateway holding a burst for it wants a lost request repaired sooner.
    static constexpr uint64_t kFirstRetryMs = 250;
    static constexpr uint64_t kRequestIntervalMs = 1000;

    // Room for `capacity` neighbours (the slot array is the next power of two >= 2 * capacity,
    // so probe chains stay short). Throws std::invalid_argument for capacity 0 or > 2^30.
    explicit NeighbourTable(uint32_t capacity, uint64_t stale_grace_ms = 5000);
    NeighbourTable(const NeighbourTable&) = delete;
    NeighbourTable& operator=(const NeighbourTable&) = delete;

    // --- readers (any thread, lock-free, no allocation) ---

    // The MAC of `ip` if it is reachable or stale (within the grace period).
    bool lookup(uint32_t ip, MacAddr& out) const noexcept;

    // --- writer (one thread) ---

    // Inserts or updates ip -> mac, reachable as of now. False when ip is 0 or the table is full.
    bool learn(uint32_t ip, const MacAddr& mac, uint64_t now_ms);
    // Updates an existing entry only (for unsolicited ARP: learn only what we asked about or
    // already know). False when ip is not in the table.
    bool refresh(uint32_t ip, const MacAddr& mac, uint64_t now_ms);
    // True when an ARP request for ip should go out now: ip is unresolved (pending, stale or
    // invalid) and the last request is older than its spacing (see kFirstRetryMs). Records the
    // request, creating a pending entry if ip is new. False when the table is full.
    bool needs_request(uint32_t ip, uint64_t now_ms);
    // Ages entries: reachable entries not confirmed for reachable_ms become stale; stale entries
    // older than reachable_ms + stale_grace_ms become invalid. Returns how many became invalid.
    uint32_t expire(uint64_t now_ms, uint64_t reachable_ms);
    // Stale entries whose re-request is due (no request in the last kRequestIntervalMs), so that
    // a neighbour in use is confirmed before its grace runs out. Records nothing: for each, the
    // writer calls needs_request(ip, now_ms) (true here; it records the request) and sends.
    std::vector<uint32_t> due_refreshes(uint64_t now_ms) const;

    // Slots in use (every address ever inserted, whatever its state). Writer thread.
    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }
    // Entries whose MAC is usable (reachable or stale). Walks the table: for stats.
    uint32_t resolved() const;

    // Diagnostics (writer thread): the state of ip, if present.
    enum class State : uint8_t { Pending, Reachable, Stale, Invalid };
    struct Info {
        State state;
        MacAddr mac;
        uint64_t updated_ms;
    };
    bool info(uint32_t ip, Info& out) const;

private:
    struct Slot {
        std::atomic<uint32_t> ip{0};         // 0 = empty; set once
        std::atomic<uint64_t> mac_state{0};  // MAC in bits 0-47, kValid, kStale
        uint64_t updated_ms = 0;             // writer only: last confirmation
        uint64_t requested_ms = 0;           // writer only: last request sent
        bool requested = false;              // writer only: requested_ms is meaningful
        uint8_t unanswered = 0;              // writer only: requests since it last had a MAC
        bool resolved_once = false;          // writer only: had a MAC at some point
    };

    static constexpr uint64_t kMacMask = (uint64_t{1} << 48) - 1;
    static constexpr uint64_t kValid = uint64_t{1} << 48;
    static constexpr uint64_t kStale = uint64_t{1} << 49;

    uint32_t home(uint32_t ip) const noexcept;
    Slot* find(uint32_t ip);
    const Slot* find(uint32_t ip) const noexcept;
    Slot* find_or_insert(uint32_t ip);
    static uint64_t request_spacing(const Slot& s, uint64_t v);
    bool request_due(const Slot& s, uint64_t now_ms) const;

    uint32_t capacity_;
    uint32_t mask_;
    uint64_t stale_grace_ms_;
    uint32_t size_ = 0;
    std::unique_ptr<Slot[]> slots_;
};

// Packets parked while their next hop is being resolved. Main lcore only.
//
// Sized for a burst: a connect storm's first SYNs (and the first replies to inside hosts) all
// arrive before their next hop is resolved, and every one lost costs its connection a 1 s SYN
// retransmission. Linux keeps unres_qlen_bytes = 212992 bytes of skb truesize per neighbour,
// on the order of a hundred full-size frames or a few hundred small ones. Here a held frame
// costs one mbuf whatever its length, so the limit counts frames: kDefaultPerNeighbour per
// neighbour, and a global cap so that held frames can never take the mbufs the ports need (the
// daemon derives it from its pools and its control ring: hold_limits_for()).
//
// Storage is preallocated (global_cap entries, one free list and a FIFO per neighbour threaded
// through them), so holding a frame never allocates; a neighbour's first frame adds one map
// entry. Frames come back oldest first, per neighbour.
class HoldQueue {
public:
    static constexpr uint32_t kDefaultPerNeighbour = 256;
    static constexpr uint32_t kDefaultGlobalCap = 2048;

    explicit HoldQueue(uint32_t per_neighbour = kDefaultPerNeighbour,
                       uint32_t global_cap = kDefaultGlobalCap);

    // Parks pkt for ip. False when ip already has per_neighbour packets or the queue holds
    // global_cap: the caller drops the packet and counts it.
    bool hold(uint32_t ip, void* pkt, uint64_t now_ms);
    // The packets waiting for ip, oldest first (ip is resolved: send them).
    std::vector<void*> release(uint32_t ip);
    // Packets held longer than max_age_ms (the caller frees and counts them).
    std::vector<void*> expire(uint64_t now_ms, uint64_t max_age_ms);
    // Every packet held (shutdown).
    std::vector<void*> drain();
    // Calls f(ip) for every neighbour with packets waiting (to retry its request). f must not
    // change the queue.
    template <typename F>
    void for_each_waiting(F f) const {
        for (const auto& [ip, fifo] : queues_) f(ip);
    }

    uint32_t size() const { return total_; }
    uint32_t waiting(uint32_t ip) const;
    uint32_t per_neighbour() const { return per_neighbour_; }
    uint32_t global_cap() const { return global_cap_; }

private:
    static constexpr uint32_t kNone = UINT32_MAX;
    struct Held {
        void* pkt = nullptr;
        uint64_t since_ms = 0;
        uint32_t next = kNone;  // the next in its neighbour's FIFO, or in the free list
    };
    struct Fifo {
        uint32_t head = kNone;
        uint32_t tail = kNone;
        uint32_t count = 0;
    };
    // Unlinks the oldest entry of q into the free list and returns its packet.
    void* pop(Fifo& q);

    uint32_t per_neighbour_;
    uint32_t global_cap_;
    uint32_t total_ = 0;
    uint32_t free_ = kNone;
    std::vector<Held> slots_;
    std::unordered_map<uint32_t, Fifo> queues_;
};

// The hold queue's limits for the daemon, whose held frames sit in its ports' mbuf pools (the
// smaller one has pool_mbufs) and leave through worker 0's control ring (ring_capacity frames).
//   global cap: pool_mbufs / kHoldPoolShare, at most ring_capacity. A port's RX descriptors
//     take at most half its pool (ethdev_port.cpp), per-lcore caches, TX rings and the punt and
//     control rings much of the rest; an eighth (2047 of the default 16383) leaves RX refills
//     their mbufs even with the queue full. Bounded by the ring, so that releasing everything
//     held at once (many neighbours resolved in one poll) never overflows it.
//   per neighbour: kDefaultPerNeighbour (a 128-SYN storm twice over), at most the global cap.
inline constexpr uint32_t kHoldPoolShare = 8;
struct HoldLimits {
    uint32_t per_neighbour;
    uint32_t global_cap;
};
HoldLimits hold_limits_for(uint32_t pool_mbufs, uint32_t ring_capacity);

}  // namespace snatgw
