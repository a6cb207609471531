// The fragment state of one worker ("virtual reassembly", see docs/architecture.md,
// Fragments): per fragmented IPv4 datagram, keyed by (source, destination, IP id, protocol,
// side), what its first fragment decided for all of them - rewrite the address, hand them to the
// session's worker, or drop them - and the later fragments that came before the first one,
// waiting for it (the caller's buffers: the table keeps a pointer and the caller's cookie).
//
// Bounded everywhere: a fixed number of datagrams (the caller evicts the oldest to make room),
// a fixed number of waiting fragments, and a datagram lives at most the caller's timeout
// (oldest-first list, so expiry looks at one end only). Preallocated at construction; one
// writer (the owning worker), so the hash table has no concurrency flags.
#pragma once

#include <cstdint>
#include <string>

#include "counters.h"
#include "drop_reasons.h"

struct rte_hash;

namespace snatgw {

// Wire-order fields; 12 bytes, no padding (rte_hash compares raw bytes).
struct FragmentKey {
    uint32_t src = 0;
    uint32_t dst = 0;
    uint16_t id = 0;
    uint8_t proto = 0;
    uint8_t side = 0;  // 0 inside, 1 outside: the two directions never share state

    bool operator==(const FragmentKey&) const = default;
};
static_assert(sizeof(FragmentKey) == 12, "fragment keys are 12 bytes without padding");

// The worker that keeps the state of an outside datagram when there are several workers: later
// fragments carry no port, so they cannot be steered to the session's owner by themselves.
uint16_t fragment_owner(const FragmentKey& key, uint16_t workers);

enum class DatagramAction : uint8_t {
    Wait,       // first fragment not seen yet: later fragments wait for it
    Translate,  // rewrite the address to `addr` (source inside -> out, destination outside -> in)
    Handoff,    // hand every fragment to `worker`, the owner of the datagram's session
    Drop,       // the first fragment was dropped for `reason`: so are the others
};

inline constexpr uint32_t kNoFragment = ~uint32_t{0};

struct Datagram {
    FragmentKey key;
    DatagramAction action = DatagramAction::Wait;
    DropReason reason = DropReason::Count;  // Drop
    uint16_t worker = 0;                    // Handoff
    uint32_t addr = 0;                      // Translate (wire order)
    uint16_t sport = 0, dport = 0;          // the first fragment's ports (ICMP: identifier)
    bool first_seen = false;
    uint16_t held = 0;                      // fragments waiting in this datagram
    uint32_t created_ms = 0;
    uint32_t seen_bytes = 0;   // payload bytes of the fragments seen (overlaps count twice)
    uint32_t total_bytes = 0;  // the datagram's payload length, once its last fragment came
    uint32_t held_head = kNoFragment, held_tail = kNoFragment;  // arrival order
    uint32_t older = kNoFragment, newer = kNoFragment;          // creation order
};

// A fragment waiting for its datagram's first fragment: the caller's buffer, untouched.
struct HeldFragment {
    uint8_t* data = nullptr;
    uint32_t len = 0;
    void* cookie = nullptr;
    Side side = Side::Inside;
    uint32_t next = kNoFragment;
};

class FragmentTable {
public:
    // name: unique per process (rte_hash names are global). Throws std::runtime_error when
    // DPDK cannot allocate (control path only).
    FragmentTable(const std::string& name, uint32_t datagrams, uint32_t held, int socket_id);
    ~FragmentTable();
    FragmentTable(const FragmentTable&) = delete;
    FragmentTable& operator=(const FragmentTable&) = delete;

    // The datagram's index, or -1.
    int32_t find(const FragmentKey& key) const;
    // New state (Wait) for a datagram not in the table; -1 when there is no room (the table is
    // full, or its hash bucket is): evict oldest() and try again.
    int32_t add(const FragmentKey& key, uint32_t now_ms);
    // Forgets a datagram; its waiting fragments must have been taken first.
    void remove(uint32_t idx);

    Datagram& at(uint32_t idx) { return datagrams_[idx]; }
    const Datagram& at(uint32_t idx) const { return datagrams_[idx]; }
    uint32_t oldest() const { return oldest_; }  // kNoFragment when empty

    // Keeps a fragment at the tail of a datagram's waiting list; false when every slot is taken.
    bool hold(uint32_t idx, uint8_t* data, uint32_t len, void* cookie, Side side);
    // Hands the datagram's waiting fragments, in arrival order, to f(const HeldFragment&) and
    // frees their slots.
    template <typename F>
    void take_held(uint32_t idx, F&& f) {
        Datagram& d = datagrams_[idx];
        uint32_t h = d.held_head;
        while (h != kNoFragment) {
            const HeldFragment frag = held_[h];
            held_[h] = HeldFragment{};
            held_[h].next = free_held_;
            free_held_ = h;
            --held_in_use_;
            h = frag.next;
            f(frag);
        }
        d.held_head = d.held_tail = kNoFragment;
        d.held = 0;
    }

    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }
    bool full() const { return size_ >= capacity_; }
    uint32_t held() const { return held_in_use_; }
    uint32_t held_capacity() const { return held_capacity_; }

private:
    void unlink(uint32_t idx);

    uint32_t capacity_;
    uint32_t held_capacity_;
    uint32_t size_ = 0;
    uint32_t held_in_use_ = 0;
    uint32_t free_held_ = kNoFragment;
    uint32_t oldest_ = kNoFragment, newest_ = kNoFragment;
    rte_hash* hash_ = nullptr;
    Datagram* datagrams_ = nullptr;
    HeldFragment* held_ = nullptr;
};

}  // namespace snatgw
