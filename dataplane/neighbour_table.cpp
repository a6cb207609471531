// Neighbour table (one writer, lock-free readers) and hold queue; see neighbour_table.h.
#include "neighbour_table.h"

#include <iterator>
#include <stdexcept>

namespace snatgw {

namespace {

uint64_t pack_mac(const MacAddr& m) {
    uint64_t v = 0;
    for (uint8_t b : m) v = (v << 8) | b;
    return v;
}

MacAddr unpack_mac(uint64_t v) {
    MacAddr m;
    for (int i = 5; i >= 0; --i) {
        m[static_cast<std::size_t>(i)] = static_cast<uint8_t>(v);
        v >>= 8;
    }
    return m;
}

uint64_t elapsed(uint64_t now_ms, uint64_t since_ms) { return now_ms > since_ms ? now_ms - since_ms : 0; }

}  // namespace

// ----------------------------------------------------------------------------------------------
// NeighbourTable
// ----------------------------------------------------------------------------------------------

NeighbourTable::NeighbourTable(uint32_t capacity, uint64_t stale_grace_ms)
    : capacity_(capacity), stale_grace_ms_(stale_grace_ms) {
    if (capacity == 0 || capacity > (1u << 30))
        throw std::invalid_argument("neighbour table capacity must be 1 .. 2^30");
    uint32_t slots = 2;
    while (slots < 2 * capacity) slots <<= 1;
    mask_ = slots - 1;
    slots_ = std::make_unique<Slot[]>(slots);
}

uint32_t NeighbourTable::home(uint32_t ip) const noexcept {
    // Fibonacci hashing: neighbours are mostly consecutive addresses of one subnet.
    const uint32_t h = ip * 0x9E3779B1u;
    return (h ^ (h >> 16)) & mask_;
}

const NeighbourTable::Slot* NeighbourTable::find(uint32_t ip) const noexcept {
    if (ip == 0) return nullptr;
    uint32_t i = home(ip);
    for (uint32_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
        const uint32_t k = slots_[i].ip.load(std::memory_order_acquire);
        if (k == ip) return &slots_[i];
        if (k == 0) return nullptr;
    }
    return nullptr;
}

NeighbourTable::Slot* NeighbourTable::find(uint32_t ip) {
    return const_cast<Slot*>(static_cast<const NeighbourTable*>(this)->find(ip));
}

NeighbourTable::Slot* NeighbourTable::find_or_insert(uint32_t ip) {
    if (ip == 0) return nullptr;
    uint32_t i = home(ip);
    for (uint32_t n = 0; n <= mask_; ++n, i = (i + 1) & mask_) {
        Slot& s = slots_[i];
        const uint32_t k = s.ip.load(std::memory_order_relaxed);  // only this thread writes it
        if (k == ip) return &s;
        if (k != 0) continue;
        if (size_ >= capacity_) return nullptr;
        // The state first, then publish the address: a reader that sees the address sees a
        // state written for it.
        s.mac_state.store(0, std::memory_order_relaxed);
        s.updated_ms = 0;
        s.requested = false;
        s.unanswered = 0;
        s.resolved_once = false;
        s.ip.store(ip, std::memory_order_release);
        ++size_;
        return &s;
    }
    return nullptr;
}

bool NeighbourTable::lookup(uint32_t ip, MacAddr& out) const noexcept {
    const Slot* s = find(ip);
    if (s == nullptr) return false;
    const uint64_t v = s->mac_state.load(std::memory_order_acquire);
    if ((v & kValid) == 0) return false;
    out = unpack_mac(v & kMacMask);
    return true;
}

bool NeighbourTable::learn(uint32_t ip, const MacAddr& mac, uint64_t now_ms) {
    Slot* s = find_or_insert(ip);
    if (s == nullptr) return false;
    s->mac_state.store(pack_mac(mac) | kValid, std::memory_order_release);
    s->updated_ms = now_ms;
    s->requested = false;
    s->unanswered = 0;
    s->resolved_once = true;
    return true;
}

bool NeighbourTable::refresh(uint32_t ip, const MacAddr& mac, uint64_t now_ms) {
    if (find(ip) == nullptr) return false;
    return learn(ip, mac, now_ms);
}

uint64_t NeighbourTable::request_spacing(const Slot& s, uint64_t v) {
    // Stale: the MAC still works, a refresh a second is enough. Unresolved: frames may be
    // waiting, so retry soon and back off (250, 500, 1000, 1000 ... ms).
    if ((v & kValid) != 0) return kRequestIntervalMs;
    const unsigned doublings = s.unanswered > 1 ? s.unanswered - 1u : 0u;
    if (doublings >= 8) return kRequestIntervalMs;
    const uint64_t spacing = kFirstRetryMs << doublings;
    return spacing < kRequestIntervalMs ? spacing : kRequestIntervalMs;
}

bool NeighbourTable::request_due(const Slot& s, uint64_t now_ms) const {
    const uint64_t v = s.mac_state.load(std::memory_order_relaxed);
    if ((v & kValid) != 0 && (v & kStale) == 0) return false;  // reachable
    return !s.requested || elapsed(now_ms, s.requested_ms) >= request_spacing(s, v);
}

bool NeighbourTable::needs_request(uint32_t ip, uint64_t now_ms) {
    Slot* s = find_or_insert(ip);
    if (s == nullptr || !request_due(*s, now_ms)) return false;
    s->requested = true;
    s->requested_ms = now_ms;
    if (s->unanswered < UINT8_MAX) ++s->unanswered;
    return true;
}

uint32_t NeighbourTable::expire(uint64_t now_ms, uint64_t reachable_ms) {
    uint32_t invalidated = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        if (s.ip.load(std::memory_order_relaxed) == 0) continue;
        const uint64_t v = s.mac_state.load(std::memory_order_relaxed);
        if ((v & kValid) == 0) continue;
        const uint64_t age = elapsed(now_ms, s.updated_ms);
        if ((v & kStale) == 0) {
            if (age >= reachable_ms) s.mac_state.store(v | kStale, std::memory_order_release);
        } else if (age >= reachable_ms + stale_grace_ms_) {
            // Keep the MAC bits for diagnostics; readers only look at kValid. Asking again
            // starts with the short retries: frames will wait for this neighbour now.
            s.mac_state.store(v & kMacMask, std::memory_order_release);
            s.unanswered = 0;
            ++invalidated;
        }
    }
    return invalidated;
}

std::vector<uint32_t> NeighbourTable::due_refreshes(uint64_t now_ms) const {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i <= mask_; ++i) {
        const Slot& s = slots_[i];
        const uint32_t ip = s.ip.load(std::memory_order_relaxed);
        if (ip == 0) continue;
        const uint64_t v = s.mac_state.load(std::memory_order_relaxed);
        if ((v & kValid) != 0 && (v & kStale) != 0 && request_due(s, now_ms)) out.push_back(ip);
    }
    return out;
}

uint32_t NeighbourTable::resolved() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i)
        if (slots_[i].mac_state.load(std::memory_order_relaxed) & kValid) ++n;
    return n;
}

bool NeighbourTable::info(uint32_t ip, Info& out) const {
    const Slot* s = find(ip);
    if (s == nullptr) return false;
    const uint64_t v = s->mac_state.load(std::memory_order_relaxed);
    out.mac = unpack_mac(v & kMacMask);
    out.updated_ms = s->updated_ms;
    if (v & kValid)
        out.state = (v & kStale) ? State::Stale : State::Reachable;
    else
        out.state = s->resolved_once ? State::Invalid : State::Pending;
    return true;
}

// ----------------------------------------------------------------------------------------------
// HoldQueue
// ----------------------------------------------------------------------------------------------

HoldQueue::HoldQueue(uint32_t per_neighbour, uint32_t global_cap)
    : per_neighbour_(per_neighbour), global_cap_(global_cap), slots_(global_cap) {
    // Every slot starts in the free list; the map gets its buckets now, not under a burst.
    for (uint32_t i = global_cap; i-- > 0;) {
        slots_[i].next = free_;
        free_ = i;
    }
    queues_.reserve(global_cap < 1024 ? global_cap : 1024);
}

bool HoldQueue::hold(uint32_t ip, void* pkt, uint64_t now_ms) {
    if (free_ == kNone || per_neighbour_ == 0) return false;  // free_ empty: global cap
    Fifo& q = queues_[ip];
    if (q.count >= per_neighbour_) return false;
    const uint32_t i = free_;
    Held& h = slots_[i];
    free_ = h.next;
    h = {pkt, now_ms, kNone};
    if (q.tail == kNone) q.head = i;
    else slots_[q.tail].next = i;
    q.tail = i;
    ++q.count;
    ++total_;
    return true;
}

void* HoldQueue::pop(Fifo& q) {
    const uint32_t i = q.head;
    Held& h = slots_[i];
    void* pkt = h.pkt;
    q.head = h.next;
    if (q.head == kNone) q.tail = kNone;
    --q.count;
    --total_;
    h.pkt = nullptr;
    h.next = free_;
    free_ = i;
    return pkt;
}

std::vector<void*> HoldQueue::release(uint32_t ip) {
    std::vector<void*> out;
    const auto it = queues_.find(ip);
    if (it == queues_.end()) return out;
    out.reserve(it->second.count);
    while (it->second.count != 0) out.push_back(pop(it->second));
    queues_.erase(it);
    return out;
}

std::vector<void*> HoldQueue::expire(uint64_t now_ms, uint64_t max_age_ms) {
    std::vector<void*> out;
    for (auto it = queues_.begin(); it != queues_.end();) {
        Fifo& q = it->second;
        // Oldest first: the expired ones are a prefix.
        while (q.count != 0 && elapsed(now_ms, slots_[q.head].since_ms) >= max_age_ms)
            out.push_back(pop(q));
        it = q.count == 0 ? queues_.erase(it) : std::next(it);
    }
    return out;
}

std::vector<void*> HoldQueue::drain() {
    std::vector<void*> out;
    out.reserve(total_);
    for (auto& [ip, q] : queues_)
        while (q.count != 0) out.push_back(pop(q));
    queues_.clear();
    return out;
}

uint32_t HoldQueue::waiting(uint32_t ip) const {
    const auto it = queues_.find(ip);
    return it == queues_.end() ? 0 : it->second.count;
}

HoldLimits hold_limits_for(uint32_t pool_mbufs, uint32_t ring_capacity) {
    uint32_t global = pool_mbufs / kHoldPoolShare;
    if (global > ring_capacity) global = ring_capacity;
    if (global == 0) global = 1;
    const uint32_t per = HoldQueue::kDefaultPerNeighbour < global ? HoldQueue::kDefaultPerNeighbour
                                                                  : global;
    return {per, global};
}

}  // namespace snatgw
