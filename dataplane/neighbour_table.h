// Neighbour (next hop IPv4 -> MAC) table and the hold queue for packets waiting on resolution.
//
// NeighbourTable has ONE writer, the main lcore (it sees ARP and sends requests), and any number
// of lock-free readers, the workers (lookup() per packet). It is a fixed array of slots, open
// addressing with linear probing, every entry within kMaxProbe slots of its home (a reader
// probes at most that many, whatever the table holds).
//
// Entry states (per slot): pending (address known, no MAC yet: a request went out), reachable
// (MAC confirmed within `reachable_ms`), stale (not confirmed for reachable_ms: still used for
// `stale_grace_ms`, and the writer re-requests it), invalid (grace over: readers miss again).
//
// Reclamation (issue 13: the table must never stay full). The writer reclaims
//   - resolved entries no worker used for `idle_ms` (60 s by default, Linux's gc_stale_time),
//   - pending and invalid ones nobody asked about for kUnresolvedKeepMs (a held frame's retries
//     keep asking; 3 s after the last request the entry goes),
//   - and, when an insertion finds the table at capacity, the least recently used entry (an
//     intrusive LRU list, writer-only; an entry moves to its tail when it is inserted, resolved
//     after a request, or seen used by expire()). If the new address's probe window has no free
//     slot, the least recently used entry of that window goes instead.
// Configured next hops are pinned (pin()): never reclaimed or evicted, and unsolicited ARP
// cannot change their MAC (learn_from_arp(); a different MAC only makes the writer ask again).
// Unsolicited ARP for a new address creates nothing once the table is 3/4 full, and pending
// entries created for frames of one source address are bounded (`pending_per_source`).
//
// Why this is safe for lock-free readers: slots never move, and
//   - a reclaimed slot becomes a TOMBSTONE (its key's address is kTombstone), never empty, so
//     every probe chain that went through it still does; a tombstone is turned back into an
//     empty slot only when the next slot is empty (then no live entry's chain crosses it: an
//     entry's chain from its home to its slot has no empty slot in it). New entries take the
//     first tombstone or empty slot of their window, which breaks no chain either.
//   - every slot carries a generation (14 bits), bumped each time the slot gets a new address.
//     The key (generation << 32 | address) is one 64-bit atomic and the MAC word (MAC, valid
//     and stale bits, generation tag) another; the writer writes the MAC word of a generation
//     only while the key holds that generation's address, and publishes a new key (release)
//     only after the new generation's first MAC word. A reader that matched the key takes the
//     MAC word only if its tag is the key's generation: a slot reclaimed and reused for another
//     address between its two loads shows a newer tag, so the reader misses (and punts, which
//     is always correct) rather than use another neighbour's MAC. Within a generation the MAC
//     word is one atomic: the old or the new MAC, never a mix. (A wrong accept needs the slot
//     reused 16384 times between two adjacent loads of one lookup.)
// This was chosen over a rebuilt-and-swapped array: that needs a grace period before the old
// array is freed (the workers report no quiescent states to the neighbour table), and a
// rebuild costs the whole table at once; tombstones cost a reader at most kMaxProbe loads.
//
// Use marks: a reader that hits stores the table's coarse clock (tick_, advanced by the writer,
// kUseTickMs per tick) into the slot's `used` word with a relaxed store, and only when it
// differs from what is there: one relaxed load per hit, one store per slot and tick. No RMW, no
// per-packet write to a shared line. expire() compares `used` with what it saw last to learn
// which entries were used; that orders the LRU list and decides idleness (to a tick plus one
// housekeeping pass). A reader that stores into a slot just reused marks the new entry used:
// harmless (it is kept a little longer).
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
    // A resolved entry no reader used for this long is reclaimed (Linux: gc_stale_time).
    static constexpr uint64_t kDefaultIdleMs = 60'000;
    // A pending or invalid entry not asked about for this long is reclaimed (a frame waits
    // 3 s at most for its next hop, and is retried until then).
    static constexpr uint64_t kUnresolvedKeepMs = 3'000;
    // Pending entries created for frames of one source address (request()) at most.
    static constexpr uint32_t kDefaultPendingPerSource = 64;
    // Readers probe at most this many slots from an address's home.
    static constexpr uint32_t kMaxProbe = 64;
    // The readers' use clock advances every 2^kUseTickShift ms (1.024 s).
    static constexpr unsigned kUseTickShift = 10;

    // Room for `capacity` neighbours (the slot array is the next power of two >= 2 * capacity,
    // so probe chains stay short). pending_per_source 0: no per-source bound. Throws
    // std::invalid_argument for capacity 0 or > 2^30.
    explicit NeighbourTable(uint32_t capacity, uint64_t stale_grace_ms = 5000,
                            uint64_t idle_ms = kDefaultIdleMs,
                            uint32_t pending_per_source = kDefaultPendingPerSource);
    NeighbourTable(const NeighbourTable&) = delete;
    NeighbourTable& operator=(const NeighbourTable&) = delete;

    // --- readers (any thread, lock-free, no allocation, no RMW) ---

    // The MAC of `ip` if it is reachable or stale (within the grace period). Marks the entry
    // used (see "Use marks").
    bool lookup(uint32_t ip, MacAddr& out) const noexcept;

    // --- writer (one thread) ---

    // Inserts or updates ip -> mac, reachable as of now (an answer to our request: the caller's
    // policy). Inserting into a full table evicts the least recently used entry. False when ip
    // is 0 or 255.255.255.255, or there is no slot that may be evicted (table_full).
    bool learn(uint32_t ip, const MacAddr& mac, uint64_t now_ms);
    // Updates an existing entry only. False when ip is not in the table.
    bool refresh(uint32_t ip, const MacAddr& mac, uint64_t now_ms);

    // What an ARP frame from (ip, mac) may do to the table (the caller decided it is worth
    // learning from at all: a reply, or a request for our address, from our subnet).
    //   a reply while a request for ip is outstanding: learnt, pinned or not;
    //   otherwise (unsolicited: gratuitous, a request, a reply nobody asked for):
    //     an existing entry: learnt, unless it is pinned and the MAC differs (IgnoredPinned;
    //       the entry is marked stale, so the writer asks again: a real change is learnt from
    //       the answer);
    //     a new address: IgnoredPressure when the table is 3/4 full, else inserted.
    enum class ArpLearn : uint8_t { Learned, IgnoredPinned, IgnoredPressure, NoRoom };
    ArpLearn learn_from_arp(uint32_t ip, const MacAddr& mac, bool reply, uint64_t now_ms);

    // Whether an ARP request for ip should go out now: ip is unresolved (pending, stale or
    // invalid) and the last request is older than its spacing (see kFirstRetryMs).
    //   request(): for a frame from `source` waiting on ip. A new ip gets a pending entry,
    //     unless `source` already has pending_per_source of them (Refused, counted) or no slot
    //     may be evicted (Full, counted).
    //   needs_request(): the writer's own (no per-source bound); true for Due.
    //   retry(): existing entries only (held frames, configured next hops, refreshes).
    // Due records the request.
    enum class Request : uint8_t { Due, NotDue, Refused, Full };
    Request request(uint32_t ip, uint64_t now_ms, uint32_t source);
    bool needs_request(uint32_t ip, uint64_t now_ms);
    bool retry(uint32_t ip, uint64_t now_ms);

    // Pins ip (a configured next hop): created pending if new (evicting if the table is full),
    // never reclaimed or evicted after. False when ip is 0 or no slot could be had.
    bool pin(uint32_t ip, uint64_t now_ms);

    // Ages entries: reachable entries not confirmed for reachable_ms become stale; stale entries
    // older than reachable_ms + stale_grace_ms become invalid. Advances the use clock, picks up
    // the readers' use marks and reclaims idle, failed and unasked entries (see Reclamation).
    // Returns how many became invalid. Call every second or more often.
    uint32_t expire(uint64_t now_ms, uint64_t reachable_ms);
    // Stale entries whose re-request is due (no request in the last kRequestIntervalMs), so that
    // a neighbour in use is confirmed before its grace runs out. Records nothing: for each, the
    // writer calls retry(ip, now_ms) (true here; it records the request) and sends.
    std::vector<uint32_t> due_refreshes(uint64_t now_ms) const;

    // Entries in use (whatever their state). Writer thread.
    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }
    // Entries whose MAC is usable (reachable or stale). Walks the table: for stats.
    uint32_t resolved() const;
    // Pending entries created for frames of `source` and not resolved yet.
    uint32_t pending_from(uint32_t source) const;
    // No more unsolicited entries from here on (3/4 of the capacity).
    uint32_t unsolicited_limit() const { return capacity_ - capacity_ / 4; }

    // What the writer reclaimed and refused, since the start (writer thread; the control lcore
    // copies them into its counters).
    struct Stats {
        uint64_t evicted = 0;          // the LRU entry (or its window's) made room for a new one
        uint64_t expired = 0;          // reclaimed: unused for idle_ms, or unresolved and unasked
        uint64_t pending_refused = 0;  // request(): the source had pending_per_source already
        uint64_t table_full = 0;       // no slot could be had (everything evictable was pinned)
    };
    const Stats& stats() const { return stats_; }

    // Diagnostics (writer thread): the state of ip, if present.
    enum class State : uint8_t { Pending, Reachable, Stale, Invalid };
    struct Info {
        State state;
        MacAddr mac;
        uint64_t updated_ms;
        bool pinned;
    };
    bool info(uint32_t ip, Info& out) const;

private:
    static constexpr uint32_t kTombstone = 0xffffffffu;  // 255.255.255.255: never a neighbour
    static constexpr uint32_t kNone = UINT32_MAX;
    static constexpr unsigned kGenBits = 14;
    static constexpr uint32_t kGenMask = (1u << kGenBits) - 1;
    static constexpr unsigned kTagShift = 50;
    static constexpr uint64_t kMacMask = (uint64_t{1} << 48) - 1;
    static constexpr uint64_t kValid = uint64_t{1} << 48;
    static constexpr uint64_t kStale = uint64_t{1} << 49;

    // What readers touch, two to a cache line.
    struct alignas(32) Slot {
        std::atomic<uint64_t> key{0};        // generation << 32 | ip; ip 0 empty, kTombstone reclaimed
        std::atomic<uint64_t> mac_state{0};  // MAC in bits 0-47, kValid, kStale, generation tag
        mutable std::atomic<uint32_t> used{0};  // readers: the use tick of their last hit
    };
    // The writer's bookkeeping for the same slot.
    struct Meta {
        uint64_t updated_ms = 0;    // last confirmation
        uint64_t requested_ms = 0;  // last request sent
        uint64_t asked_ms = 0;      // unresolved: created, last requested or invalidated
        uint64_t used_ms = 0;       // last use seen (or insertion)
        uint64_t touched = 0;       // LRU order: larger is more recent
        uint32_t seen_used = 0;     // `used` as expire() last saw it
        uint32_t source = 0;        // has_source: the source the pending entry was created for
        uint32_t prev = kNone;      // LRU list (unpinned entries), head = least recently used
        uint32_t next = kNone;
        uint8_t unanswered = 0;     // requests since it last had a MAC
        bool requested = false;     // requested_ms is meaningful
        bool resolved_once = false; // had a MAC at some point
        bool pinned = false;
        bool has_source = false;    // counts in pending_by_source_
    };

    static bool usable(uint32_t ip) { return ip != 0 && ip != kTombstone; }
    static uint32_t key_ip(uint64_t k) { return static_cast<uint32_t>(k); }
    static uint32_t key_gen(uint64_t k) { return static_cast<uint32_t>(k >> 32); }
    static uint64_t tag(uint32_t gen) { return uint64_t{gen} << kTagShift; }
    uint32_t home(uint32_t ip) const noexcept;
    uint32_t find(uint32_t ip) const noexcept;  // slot index or kNone
    uint32_t find_or_insert(uint32_t ip, uint64_t now_ms);
    uint32_t insert(uint32_t ip, uint64_t now_ms);
    void set_mac(uint32_t i, uint64_t bits);  // stores MAC/flag bits under the slot's tag
    void resolve(uint32_t i, const MacAddr& mac, uint64_t now_ms);
    void reclaim(uint32_t i);
    bool evict_lru();
    void release_source(Meta& m);
    void lru_push_back(uint32_t i);
    void lru_remove(uint32_t i);
    void touch(uint32_t i);
    Request ask(uint32_t i, uint64_t now_ms);
    static uint64_t request_spacing(const Meta& m, uint64_t v);
    bool request_due(uint32_t i, uint64_t now_ms) const;

    uint32_t capacity_;
    uint32_t mask_;
    uint32_t probe_limit_;
    uint64_t stale_grace_ms_;
    uint64_t idle_ms_;
    uint32_t pending_per_source_;
    uint32_t size_ = 0;
    uint64_t touch_clock_ = 0;
    uint32_t lru_head_ = kNone;
    uint32_t lru_tail_ = kNone;
    Stats stats_;
    std::unique_ptr<Slot[]> slots_;
    std::unique_ptr<Meta[]> meta_;
    std::unordered_map<uint32_t, uint32_t> pending_by_source_;
    alignas(64) std::atomic<uint32_t> tick_{0};  // the readers' use clock (writer advances it)
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
