// Per-worker public port partitions; see port_allocator.h.
#include "port_allocator.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <numeric>
#include <utility>

namespace snatgw {

Partition Partition::of(uint16_t port_min, uint16_t port_max, uint16_t worker, uint16_t workers) {
    Partition p;
    p.step = workers;
    if (port_min > port_max || workers == 0 || worker >= workers) return p;
    const uint32_t offset = (worker + workers - port_min % workers) % workers;
    const uint32_t first = uint32_t{port_min} + offset;
    if (first > port_max) return p;
    p.first = static_cast<uint16_t>(first);
    p.count = (port_max - first) / workers + 1;
    return p;
}

PortAllocator::PortAllocator(uint16_t worker, uint16_t workers, uint64_t seed)
    : worker_(worker), workers_(workers), rng_(seed | 1) {}

namespace {
uint32_t slot_hash(uint32_t addr) { return (addr * 0x9E3779B1u) ^ (addr >> 16); }
}  // namespace

void PortAllocator::build(AddressPorts& ap, uint16_t port_min, uint16_t port_max,
                          const AddressPorts* old, uint16_t worker, uint16_t workers) {
    ap.port_min = old != nullptr && old->port_min < port_min ? old->port_min : port_min;
    ap.port_max = old != nullptr && old->port_max > port_max ? old->port_max : port_max;
    ap.part = Partition::of(ap.port_min, ap.port_max, worker, workers);
    const Partition active = Partition::of(port_min, port_max, worker, workers);
    ap.active_lo = active.count == 0 ? 0 : ap.part.index_of(active.first);
    ap.active_hi = ap.active_lo + active.count;
    for (int sp = 0; sp < static_cast<int>(PortSpace::Count); ++sp) {
        Space& s = ap.spaces[sp];
        s.users.assign(ap.part.count, 0);
        s.unused.assign((ap.part.count + 63) / 64, 0);
        s.in_use = 0;
        s.free_active = 0;
        if (old != nullptr) {
            // Same step and residue: every old port is in the union; carry its count over.
            const Space& o = old->spaces[sp];
            for (uint32_t i = 0; i < old->part.count; ++i) {
                if (o.users[i] == 0) continue;
                s.users[ap.part.index_of(old->part.port_at(i))] = o.users[i];
                ++s.in_use;
            }
            s.recent_next = o.recent_next;
            std::copy(std::begin(o.recent), std::end(o.recent), std::begin(s.recent));
        }
        for (uint32_t i = ap.active_lo; i < ap.active_hi; ++i) {
            if (s.users[i] != 0) continue;
            s.unused[i / 64] |= uint64_t{1} << (i % 64);
            ++s.free_active;
        }
    }
}

void PortAllocator::add_address(uint32_t addr, uint16_t port_min, uint16_t port_max) {
    if (AddressPorts* cur = find(addr)) {
        cur->draining = false;
        const Partition want = Partition::of(port_min, port_max, worker_, workers_);
        const uint32_t lo = want.count == 0 ? 0 : cur->part.index_of(want.first);
        const bool same = want.count == 0 ? cur->active_hi == cur->active_lo
                                          : cur->part.contains(want.first) &&
                                                cur->active_lo == lo &&
                                                cur->active_hi == lo + want.count;
        if (same) return;
        AddressPorts next;
        build(next, port_min, port_max, cur, worker_, workers_);
        *cur = std::move(next);
        return;
    }
    AddressPorts ap;
    build(ap, port_min, port_max, nullptr, worker_, workers_);
    addrs_.push_back(std::move(ap));
    // Keep the address index at most half full; rebuild it when it grows.
    if (slots_.size() < addrs_.size() * 2) {
        std::size_t size = 16;
        while (size < addrs_.size() * 4) size *= 2;
        slots_.assign(size, SlotEntry{0, kEmpty});
        for (uint32_t i = 0; i < addrs_.size(); ++i) {
            const uint32_t a = i + 1 == addrs_.size() ? addr : addr_of_[i];
            std::size_t h = slot_hash(a) & (size - 1);
            while (slots_[h].index != kEmpty) h = (h + 1) & (size - 1);
            slots_[h] = SlotEntry{a, i};
        }
    } else {
        const std::size_t mask = slots_.size() - 1;
        std::size_t h = slot_hash(addr) & mask;
        while (slots_[h].index != kEmpty) h = (h + 1) & mask;
        slots_[h] = SlotEntry{addr, static_cast<uint32_t>(addrs_.size() - 1)};
    }
    addr_of_.push_back(addr);
}

PortAllocator::AddressPorts* PortAllocator::find(uint32_t addr) {
    return const_cast<AddressPorts*>(std::as_const(*this).find(addr));
}

const PortAllocator::AddressPorts* PortAllocator::find(uint32_t addr) const {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t h = slot_hash(addr) & mask;; h = (h + 1) & mask) {
        if (slots_[h].index == kEmpty) return nullptr;
        if (slots_[h].addr == addr) return &addrs_[slots_[h].index];
    }
}

uint32_t PortAllocator::random_below(uint32_t n) {
    // xorshift64*: fast, per worker, no shared state. Unpredictable enough to defeat port
    // guessing from outside (the seed comes from the OS at start).
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    const uint64_t r = rng_ * 0x2545F4914F6CDD1DULL;
    return static_cast<uint32_t>(((r >> 32) * n) >> 32);
}

std::optional<uint32_t> PortAllocator::find_unused(const Space& s, uint32_t count,
                                                   uint32_t start) const {
    const std::size_t words = s.unused.size();
    std::size_t w = start / 64;
    // First word: only bits at or after start.
    uint64_t bits = s.unused[w] & (~uint64_t{0} << (start % 64));
    for (std::size_t n = 0; n <= words; ++n) {
        if (bits != 0) {
            const uint32_t idx = static_cast<uint32_t>(w * 64 + std::countr_zero(bits));
            if (idx < count) return idx;
        }
        w = (w + 1 == words) ? 0 : w + 1;
        bits = s.unused[w];
    }
    return std::nullopt;
}

uint32_t PortAllocator::probe_ports(uint32_t addr, PortSpace space, uint16_t* out,
                                    uint32_t max) {
    const AddressPorts* ap = find(addr);
    if (ap == nullptr || ap->draining || ap->active_hi == ap->active_lo) return 0;
    const Space& s = ap->spaces[static_cast<int>(space)];
    const uint32_t span = ap->active_hi - ap->active_lo;
    uint32_t n = 0;
    const uint32_t recent = s.recent_next < kRecent ? s.recent_next : kRecent;
    for (uint32_t i = 1; i <= recent && n < max; ++i) {
        const uint16_t port = s.recent[(s.recent_next - i) % kRecent];
        if (ap->part.contains(port) && ap->active(ap->part.index_of(port))) out[n++] = port;
    }
    // Random ones: a random start and a stride coprime with the span visit distinct ports.
    const uint32_t start = random_below(span);
    uint32_t stride = span > 1 ? 1 + random_below(span - 1) : 1;
    while (std::gcd(stride, span) != 1) ++stride;
    uint32_t off = start;
    for (uint32_t i = 0; i < span && n < max; ++i) {
        out[n++] = ap->part.port_at(ap->active_lo + off);
        off = (off + stride) % span;
    }
    return n;
}

void PortAllocator::acquire(uint32_t addr, PortSpace space, uint16_t port) {
    AddressPorts* ap = find(addr);
    assert(ap != nullptr && ap->part.contains(port));
    if (ap == nullptr || !ap->part.contains(port)) return;
    Space& s = ap->spaces[static_cast<int>(space)];
    const uint32_t idx = ap->part.index_of(port);
    if (s.users[idx]++ == 0) {
        ++s.in_use;
        uint64_t& word = s.unused[idx / 64];
        const uint64_t bit = uint64_t{1} << (idx % 64);
        if (word & bit) {
            word &= ~bit;
            --s.free_active;
        }
    }
}

void PortAllocator::release(uint32_t addr, PortSpace space, uint16_t port) {
    AddressPorts* ap = find(addr);
    assert(ap != nullptr && ap->part.contains(port));
    if (ap == nullptr || !ap->part.contains(port)) return;
    Space& s = ap->spaces[static_cast<int>(space)];
    const uint32_t idx = ap->part.index_of(port);
    assert(s.users[idx] > 0);
    if (s.users[idx] == 0) return;
    s.recent[s.recent_next++ % kRecent] = port;
    if (--s.users[idx] == 0) {
        --s.in_use;
        if (ap->active(idx)) {
            s.unused[idx / 64] |= uint64_t{1} << (idx % 64);
            ++s.free_active;
        }
    }
}

uint32_t PortAllocator::use_count(uint32_t addr, PortSpace space, uint16_t port) const {
    const AddressPorts* ap = find(addr);
    if (ap == nullptr || !ap->part.contains(port)) return 0;
    return ap->spaces[static_cast<int>(space)].users[ap->part.index_of(port)];
}

uint32_t PortAllocator::ports_in_use(uint32_t addr, PortSpace space) const {
    const AddressPorts* ap = find(addr);
    return ap == nullptr ? 0 : ap->spaces[static_cast<int>(space)].in_use;
}

uint32_t PortAllocator::partition_size(uint32_t addr) const {
    const AddressPorts* ap = find(addr);
    return ap == nullptr ? 0 : ap->active_hi - ap->active_lo;
}

void PortAllocator::set_draining(uint32_t addr, bool draining) {
    if (AddressPorts* ap = find(addr)) ap->draining = draining;
}

void PortAllocator::set_all_draining() {
    for (AddressPorts& ap : addrs_) ap.draining = true;
}

bool PortAllocator::draining(uint32_t addr) const {
    const AddressPorts* ap = find(addr);
    return ap != nullptr && ap->draining;
}

std::size_t PortAllocator::memory_bytes() const {
    std::size_t total = addrs_.capacity() * sizeof(AddressPorts) +
                        slots_.capacity() * sizeof(SlotEntry) + addr_of_.capacity() * 4;
    for (const AddressPorts& ap : addrs_)
        for (const Space& s : ap.spaces)
            total += s.users.capacity() * sizeof(uint32_t) + s.unused.capacity() * 8;
    return total;
}

}  // namespace snatgw
