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

NeighbourTable::NeighbourTable(uint32_t capacity, uint64_t stale_grace_ms, uint64_t idle_ms,
                               uint32_t pending_per_source)
    : capacity_(capacity),
      stale_grace_ms_(stale_grace_ms),
      idle_ms_(idle_ms),
      pending_per_source_(pending_per_source) {
    if (capacity == 0 || capacity > (1u << 30))
        throw std::invalid_argument("neighbour table capacity must be 1 .. 2^30");
    uint32_t slots = 2;
    while (slots < 2 * capacity) slots <<= 1;
    mask_ = slots - 1;
    probe_limit_ = slots < kMaxProbe ? slots : kMaxProbe;
    slots_ = std::make_unique<Slot[]>(slots);
    meta_ = std::make_unique<Meta[]>(slots);
    pending_by_source_.reserve(capacity < 1024 ? capacity : 1024);
}

uint32_t NeighbourTable::home(uint32_t ip) const noexcept {
    // Fibonacci hashing: neighbours are mostly consecutive addresses of one subnet.
    const uint32_t h = ip * 0x9E3779B1u;
    return (h ^ (h >> 16)) & mask_;
}

bool NeighbourTable::lookup(uint32_t ip, MacAddr& out) const noexcept {
    if (!usable(ip)) return false;
    uint32_t i = home(ip);
    for (uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
        const Slot& s = slots_[i];
        const uint64_t k = s.key.load(std::memory_order_acquire);
        const uint32_t kip = key_ip(k);
        if (kip == ip) {
            const uint64_t v = s.mac_state.load(std::memory_order_acquire);
            // Another generation's word: the slot was reclaimed (and maybe reused) meanwhile.
            if ((v & kValid) == 0 || (v >> kTagShift) != key_gen(k)) return false;
            out = unpack_mac(v & kMacMask);
            const uint32_t t = tick_.load(std::memory_order_relaxed);
            if (s.used.load(std::memory_order_relaxed) != t) s.used.store(t, std::memory_order_relaxed);
            return true;
        }
        if (kip == 0) return false;
    }
    return false;
}

uint32_t NeighbourTable::find(uint32_t ip) const noexcept {
    if (!usable(ip)) return kNone;
    uint32_t i = home(ip);
    for (uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
        const uint32_t kip = key_ip(slots_[i].key.load(std::memory_order_relaxed));  // our writes
        if (kip == ip) return i;
        if (kip == 0) return kNone;
    }
    return kNone;
}

void NeighbourTable::set_mac(uint32_t i, uint64_t bits) {
    const uint32_t gen = key_gen(slots_[i].key.load(std::memory_order_relaxed));
    slots_[i].mac_state.store(tag(gen) | (bits & ~(uint64_t{kGenMask} << kTagShift)),
                              std::memory_order_release);
}

void NeighbourTable::lru_push_back(uint32_t i) {
    Meta& m = meta_[i];
    m.prev = lru_tail_;
    m.next = kNone;
    if (lru_tail_ == kNone) lru_head_ = i;
    else meta_[lru_tail_].next = i;
    lru_tail_ = i;
    m.touched = ++touch_clock_;
}

void NeighbourTable::lru_remove(uint32_t i) {
    Meta& m = meta_[i];
    if (m.prev == kNone) lru_head_ = m.next;
    else meta_[m.prev].next = m.next;
    if (m.next == kNone) lru_tail_ = m.prev;
    else meta_[m.next].prev = m.prev;
    m.prev = m.next = kNone;
}

void NeighbourTable::touch(uint32_t i) {
    if (meta_[i].pinned) return;
    lru_remove(i);
    lru_push_back(i);
}

void NeighbourTable::release_source(Meta& m) {
    if (!m.has_source) return;
    m.has_source = false;
    const auto it = pending_by_source_.find(m.source);
    if (it != pending_by_source_.end() && --it->second == 0) pending_by_source_.erase(it);
}

void NeighbourTable::reclaim(uint32_t i) {
    Slot& s = slots_[i];
    Meta& m = meta_[i];
    const uint32_t gen = key_gen(s.key.load(std::memory_order_relaxed));
    // Readers that matched the address now miss; then the address goes, the slot stays
    // non-empty (a tombstone) so that the chains through it hold.
    s.mac_state.store(tag(gen), std::memory_order_release);
    s.key.store(uint64_t{gen} << 32 | kTombstone, std::memory_order_release);
    release_source(m);
    if (!m.pinned) lru_remove(i);
    m = Meta{};
    --size_;
    // Tombstones right before an empty slot are crossed by no live entry's chain: empty them,
    // so that misses stop early again.
    if (key_ip(slots_[(i + 1) & mask_].key.load(std::memory_order_relaxed)) != 0) return;
    uint32_t j = i;
    for (uint32_t n = 0; n <= mask_; ++n, j = (j - 1) & mask_) {
        const uint64_t k = slots_[j].key.load(std::memory_order_relaxed);
        if (key_ip(k) != kTombstone) break;
        slots_[j].key.store(uint64_t{key_gen(k)} << 32, std::memory_order_release);
    }
}

bool NeighbourTable::evict_lru() {
    if (lru_head_ == kNone) return false;
    reclaim(lru_head_);
    ++stats_.evicted;
    return true;
}

uint32_t NeighbourTable::insert(uint32_t ip, uint64_t now_ms) {
    if (size_ >= capacity_ && !evict_lru()) {
        ++stats_.table_full;
        return kNone;
    }
    // The first free slot of the window (find() saw ip nowhere before the first empty one), or
    // the window's least recently used entry.
    uint32_t at = kNone, victim = kNone;
    uint32_t i = home(ip);
    for (uint32_t n = 0; n < probe_limit_; ++n, i = (i + 1) & mask_) {
        const uint32_t kip = key_ip(slots_[i].key.load(std::memory_order_relaxed));
        if (kip == 0 || kip == kTombstone) {
            at = i;
            break;
        }
        if (!meta_[i].pinned && (victim == kNone || meta_[i].touched < meta_[victim].touched))
            victim = i;
    }
    if (at == kNone) {
        if (victim == kNone) {
            ++stats_.table_full;
            return kNone;
        }
        reclaim(victim);
        ++stats_.evicted;
        at = victim;
    }
    Slot& s = slots_[at];
    const uint32_t gen = (key_gen(s.key.load(std::memory_order_relaxed)) + 1) & kGenMask;
    // The new generation's first word, then the key (release): a reader that sees the new key
    // sees a word of its generation.
    s.mac_state.store(tag(gen), std::memory_order_relaxed);
    const uint32_t t = tick_.load(std::memory_order_relaxed);
    s.used.store(t, std::memory_order_relaxed);
    s.key.store(uint64_t{gen} << 32 | ip, std::memory_order_release);
    Meta& m = meta_[at];
    m = Meta{};
    m.seen_used = t;
    m.used_ms = now_ms;
    m.asked_ms = now_ms;
    lru_push_back(at);
    ++size_;
    return at;
}

uint32_t NeighbourTable::find_or_insert(uint32_t ip, uint64_t now_ms) {
    if (!usable(ip)) return kNone;
    const uint32_t i = find(ip);
    return i != kNone ? i : insert(ip, now_ms);
}

void NeighbourTable::resolve(uint32_t i, const MacAddr& mac, uint64_t now_ms) {
    Meta& m = meta_[i];
    const bool was_valid = (slots_[i].mac_state.load(std::memory_order_relaxed) & kValid) != 0;
    set_mac(i, pack_mac(mac) | kValid);
    m.updated_ms = now_ms;
    m.requested = false;
    m.unanswered = 0;
    m.resolved_once = true;
    release_source(m);
    if (!was_valid) {  // frames are about to use it
        m.used_ms = now_ms;
        touch(i);
    }
}

bool NeighbourTable::learn(uint32_t ip, const MacAddr& mac, uint64_t now_ms) {
    const uint32_t i = find_or_insert(ip, now_ms);
    if (i == kNone) return false;
    resolve(i, mac, now_ms);
    return true;
}

bool NeighbourTable::refresh(uint32_t ip, const MacAddr& mac, uint64_t now_ms) {
    const uint32_t i = find(ip);
    if (i == kNone) return false;
    resolve(i, mac, now_ms);
    return true;
}

NeighbourTable::ArpLearn NeighbourTable::learn_from_arp(uint32_t ip, const MacAddr& mac,
                                                        bool reply, uint64_t now_ms) {
    const uint32_t i = find(ip);
    if (i == kNone) {
        if (!usable(ip)) return ArpLearn::NoRoom;
        if (size_ >= unsolicited_limit()) return ArpLearn::IgnoredPressure;
        return learn(ip, mac, now_ms) ? ArpLearn::Learned : ArpLearn::NoRoom;
    }
    const Meta& m = meta_[i];
    const uint64_t v = slots_[i].mac_state.load(std::memory_order_relaxed);
    const bool asked = reply && m.requested && m.unanswered > 0;
    const bool same = m.resolved_once && (v & kMacMask) == pack_mac(mac);
    if (asked || !m.pinned || same) {
        resolve(i, mac, now_ms);
        return ArpLearn::Learned;
    }
    // A pinned next hop claimed by another MAC: keep the one we have, and ask (a stale entry is
    // re-requested by due_refreshes()); the answer to that request is learnt.
    if ((v & kValid) != 0 && (v & kStale) == 0) set_mac(i, v | kStale);
    return ArpLearn::IgnoredPinned;
}

uint64_t NeighbourTable::request_spacing(const Meta& m, uint64_t v) {
    // Stale: the MAC still works, a refresh a second is enough. Unresolved: frames may be
    // waiting, so retry soon and back off (250, 500, 1000, 1000 ... ms).
    if ((v & kValid) != 0) return kRequestIntervalMs;
    const unsigned doublings = m.unanswered > 1 ? m.unanswered - 1u : 0u;
    if (doublings >= 8) return kRequestIntervalMs;
    const uint64_t spacing = kFirstRetryMs << doublings;
    return spacing < kRequestIntervalMs ? spacing : kRequestIntervalMs;
}

bool NeighbourTable::request_due(uint32_t i, uint64_t now_ms) const {
    const Meta& m = meta_[i];
    const uint64_t v = slots_[i].mac_state.load(std::memory_order_relaxed);
    if ((v & kValid) != 0 && (v & kStale) == 0) return false;  // reachable
    return !m.requested || elapsed(now_ms, m.requested_ms) >= request_spacing(m, v);
}

NeighbourTable::Request NeighbourTable::ask(uint32_t i, uint64_t now_ms) {
    if (!request_due(i, now_ms)) return Request::NotDue;
    Meta& m = meta_[i];
    m.requested = true;
    m.requested_ms = now_ms;
    m.asked_ms = now_ms;
    if (m.unanswered < UINT8_MAX) ++m.unanswered;
    return Request::Due;
}

NeighbourTable::Request NeighbourTable::request(uint32_t ip, uint64_t now_ms, uint32_t source) {
    if (!usable(ip)) return Request::Full;
    uint32_t i = find(ip);
    if (i == kNone) {
        if (pending_per_source_ != 0 && pending_from(source) >= pending_per_source_) {
            ++stats_.pending_refused;
            return Request::Refused;
        }
        i = insert(ip, now_ms);
        if (i == kNone) return Request::Full;
        meta_[i].source = source;
        meta_[i].has_source = true;
        ++pending_by_source_[source];
    }
    return ask(i, now_ms);
}

bool NeighbourTable::needs_request(uint32_t ip, uint64_t now_ms) {
    const uint32_t i = find_or_insert(ip, now_ms);
    return i != kNone && ask(i, now_ms) == Request::Due;
}

bool NeighbourTable::retry(uint32_t ip, uint64_t now_ms) {
    const uint32_t i = find(ip);
    return i != kNone && ask(i, now_ms) == Request::Due;
}

bool NeighbourTable::pin(uint32_t ip, uint64_t now_ms) {
    const uint32_t i = find_or_insert(ip, now_ms);
    if (i == kNone) return false;
    Meta& m = meta_[i];
    if (!m.pinned) {
        lru_remove(i);
        m.pinned = true;
    }
    release_source(m);
    return true;
}

uint32_t NeighbourTable::pending_from(uint32_t source) const {
    const auto it = pending_by_source_.find(source);
    return it == pending_by_source_.end() ? 0 : it->second;
}

uint32_t NeighbourTable::expire(uint64_t now_ms, uint64_t reachable_ms) {
    const uint32_t t = static_cast<uint32_t>(now_ms >> kUseTickShift);
    tick_.store(t, std::memory_order_relaxed);
    uint32_t invalidated = 0;
    for (uint32_t i = 0; i <= mask_; ++i) {
        Slot& s = slots_[i];
        if (!usable(key_ip(s.key.load(std::memory_order_relaxed)))) continue;
        Meta& m = meta_[i];
        const uint32_t used = s.used.load(std::memory_order_relaxed);
        if (used != m.seen_used) {  // a reader hit it since the last pass
            m.seen_used = used;
            m.used_ms = now_ms;
            touch(i);
        }
        const uint64_t v = s.mac_state.load(std::memory_order_relaxed);
        if ((v & kValid) != 0) {
            const uint64_t age = elapsed(now_ms, m.updated_ms);
            if ((v & kStale) == 0) {
                if (age >= reachable_ms) set_mac(i, v | kStale);
            } else if (age >= reachable_ms + stale_grace_ms_) {
                // Keep the MAC bits for diagnostics; readers only look at kValid. Asking again
                // starts with the short retries: frames will wait for this neighbour now.
                set_mac(i, v & kMacMask);
                m.unanswered = 0;
                m.asked_ms = now_ms;
                ++invalidated;
                continue;
            }
        }
        if (m.pinned) continue;
        const bool idle = (v & kValid) != 0 ? elapsed(now_ms, m.used_ms) >= idle_ms_
                                            : elapsed(now_ms, m.asked_ms) >= kUnresolvedKeepMs;
        if (idle) {
            reclaim(i);
            ++stats_.expired;
        }
    }
    return invalidated;
}

std::vector<uint32_t> NeighbourTable::due_refreshes(uint64_t now_ms) const {
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i <= mask_; ++i) {
        const uint32_t ip = key_ip(slots_[i].key.load(std::memory_order_relaxed));
        if (!usable(ip)) continue;
        const uint64_t v = slots_[i].mac_state.load(std::memory_order_relaxed);
        if ((v & kValid) != 0 && (v & kStale) != 0 && request_due(i, now_ms)) out.push_back(ip);
    }
    return out;
}

uint32_t NeighbourTable::resolved() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i)
        if (usable(key_ip(slots_[i].key.load(std::memory_order_relaxed))) &&
            (slots_[i].mac_state.load(std::memory_order_relaxed) & kValid))
            ++n;
    return n;
}

bool NeighbourTable::info(uint32_t ip, Info& out) const {
    const uint32_t i = find(ip);
    if (i == kNone) return false;
    const Meta& m = meta_[i];
    const uint64_t v = slots_[i].mac_state.load(std::memory_order_relaxed);
    out.mac = unpack_mac(v & kMacMask);
    out.updated_ms = m.updated_ms;
    out.pinned = m.pinned;
    if (v & kValid)
        out.state = (v & kStale) ? State::Stale : State::Reachable;
    else
        out.state = m.resolved_once ? State::Invalid : State::Pending;
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
