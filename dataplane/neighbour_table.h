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
// HoldQueue keeps a few packets per unresolved neighbour (opaque pointers, mbufs in the daemon)
// until its MAC is learnt or they are too old. Main lcore only.
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
    // Minimum spacing of ARP requests for one neighbour.
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
    // invalid) and no request was sent in the last kRequestIntervalMs. Records the request,
    // creating a pending entry if ip is new. False when the table is full.
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
        bool resolved_once = false;          // writer only: had a MAC at some point
    };

    static constexpr uint64_t kMacMask = (uint64_t{1} << 48) - 1;
    static constexpr uint64_t kValid = uint64_t{1} << 48;
    static constexpr uint64_t kStale = uint64_t{1} << 49;

    uint32_t home(uint32_t ip) const noexcept;
    Slot* find(uint32_t ip);
    const Slot* find(uint32_t ip) const noexcept;
    Slot* find_or_insert(uint32_t ip);
    bool request_due(const Slot& s, uint64_t now_ms) const;

    uint32_t capacity_;
    uint32_t mask_;
    uint64_t stale_grace_ms_;
    uint32_t size_ = 0;
    std::unique_ptr<Slot[]> slots_;
};

// Packets parked while their next hop is being resolved. Main lcore only.
class HoldQueue {
public:
    explicit HoldQueue(uint32_t per_neighbour = 4, uint32_t global_cap = 256);

    // Parks pkt for ip. False when ip already has per_neighbour packets or the queue holds
    // global_cap: the caller drops the packet and counts it.
    bool hold(uint32_t ip, void* pkt, uint64_t now_ms);
    // The packets waiting for ip, oldest first (ip is resolved: send them).
    std::vector<void*> release(uint32_t ip);
    // Packets held longer than max_age_ms (the caller frees and counts them).
    std::vector<void*> expire(uint64_t now_ms, uint64_t max_age_ms);
    // Every packet held (shutdown).
    std::vector<void*> drain();

    uint32_t size() const { return total_; }
    uint32_t waiting(uint32_t ip) const;

private:
    struct Held {
        void* pkt;
        uint64_t since_ms;
    };
    uint32_t per_neighbour_;
    uint32_t global_cap_;
    uint32_t total_ = 0;
    std::unordered_map<uint32_t, std::vector<Held>> queues_;
};

}  // namespace snatgw
