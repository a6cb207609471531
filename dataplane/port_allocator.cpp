// Per-worker public port partitions; see port_allocator.h.
#include "port_allocator.h"

#include <bit>
#include <cassert>
#include <numeric>

namespace snatgw {

PortAllocator::PortAllocator(uint16_t worker, uint16_t workers, uint64_t seed)
    : worker_(worker), workers_(workers), rng_(seed | 1) {}

bool PortAllocator::draining(uint32_t addr) const {
    const PortEntry* e = find(addr);
    return e == nullptr || e->draining;
}

void PortAllocator::sync_window(const PortEntry& e) {
    AddressPorts& ap = *e.ports;
    if (ap.win_lo == e.lo && ap.win_hi == e.hi) return;
    for (int sp = 0; sp < kPortSpaceCount; ++sp) {
        const uint64_t* bits = ap.bits(static_cast<PortSpace>(sp));
        uint32_t n = 0;
        for (uint32_t i = e.lo; i < e.hi;) {
            const uint32_t w = i / 64;
            uint64_t word = bits[w] & (~uint64_t{0} << (i % 64));
            const uint32_t end = (w + 1) * 64;
            if (e.hi < end) word &= (uint64_t{1} << (e.hi - w * 64)) - 1;
            n += static_cast<uint32_t>(std::popcount(word));
            i = end;
        }
        ap.owned_in_window[sp] = n;
    }
    ap.win_lo = e.lo;
    ap.win_hi = e.hi;
}

std::optional<uint32_t> PortAllocator::find_unowned(const uint64_t* bits, uint32_t lo,
                                                    uint32_t hi, uint32_t from) {
    auto scan = [bits](uint32_t a, uint32_t b) -> std::optional<uint32_t> {
        while (a < b) {
            const uint32_t w = a / 64;
            uint64_t free = ~bits[w] & (~uint64_t{0} << (a % 64));
            const uint32_t end = (w + 1) * 64;
            if (b < end) free &= (uint64_t{1} << (b - w * 64)) - 1;
            if (free != 0) return w * 64 + static_cast<uint32_t>(std::countr_zero(free));
            a = end;
        }
        return std::nullopt;
    };
    if (auto idx = scan(from, hi)) return idx;
    return scan(lo, from);
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

uint32_t PortAllocator::probe_ports(uint32_t addr, PortSpace space, uint16_t* out,
                                    uint32_t max) {
    const PortEntry* e = find(addr);
    if (e == nullptr || e->draining || e->hi == e->lo) return 0;
    const Partition& part = e->ports->part;
    const int sp = static_cast<int>(space);
    const uint32_t span = e->hi - e->lo;
    uint32_t n = 0;
    const uint32_t recent = recent_next_[sp] < kRecent ? recent_next_[sp] : kRecent;
    for (uint32_t i = 1; i <= recent && n < max; ++i) {
        const Recent& r = recent_[sp][(recent_next_[sp] - i) % kRecent];
        if (r.addr != addr || !part.contains(r.port)) continue;
        const uint32_t idx = part.index_of(r.port);
        if (idx >= e->lo && idx < e->hi) out[n++] = r.port;
    }
    // Random ones: a random start and a stride coprime with the span visit distinct ports.
    const uint32_t start = random_below(span);
    uint32_t stride = span > 1 ? 1 + random_below(span - 1) : 1;
    while (std::gcd(stride, span) != 1) ++stride;
    uint32_t off = start;
    for (uint32_t i = 0; i < span && n < max; ++i) {
        out[n++] = part.port_at(e->lo + off);
        off = (off + stride) % span;
    }
    return n;
}

bool PortAllocator::acquire(uint32_t addr, PortSpace space, uint16_t port) {
    const PortEntry* e = find(addr);
    assert(e != nullptr && e->ports->part.contains(port));
    if (e == nullptr || !e->ports->part.contains(port)) return false;
    AddressPorts& ap = *e->ports;
    const int sp = static_cast<int>(space);
    const uint32_t idx = ap.part.index_of(port);
    uint64_t& word = ap.bits(space)[idx / 64];
    const uint64_t bit = uint64_t{1} << (idx % 64);
    if (word & bit) {
        ++ap.sharers[sp];
        return false;
    }
    word |= bit;
    ++ap.owned_count[sp];
    if (idx >= ap.win_lo && idx < ap.win_hi) ++ap.owned_in_window[sp];
    return true;
}

void PortAllocator::release(uint32_t addr, PortSpace space, uint16_t port, bool owner) {
    const PortEntry* e = find(addr);
    // An address leaves the snapshots only once it has no session left (LiveConfig prunes
    // drained addresses by sessions_on()).
    assert(e != nullptr && e->ports->part.contains(port));
    if (e == nullptr || !e->ports->part.contains(port)) return;
    AddressPorts& ap = *e->ports;
    const int sp = static_cast<int>(space);
    recent_[sp][recent_next_[sp]++ % kRecent] = Recent{addr, port};
    if (!owner) {
        assert(ap.sharers[sp] > 0);
        if (ap.sharers[sp] > 0) --ap.sharers[sp];
        return;
    }
    const uint32_t idx = ap.part.index_of(port);
    uint64_t& word = ap.bits(space)[idx / 64];
    const uint64_t bit = uint64_t{1} << (idx % 64);
    assert(word & bit);
    if (!(word & bit)) return;
    word &= ~bit;
    --ap.owned_count[sp];
    if (idx >= ap.win_lo && idx < ap.win_hi) --ap.owned_in_window[sp];
}

bool PortAllocator::owned(uint32_t addr, PortSpace space, uint16_t port) const {
    const PortEntry* e = find(addr);
    if (e == nullptr || !e->ports->part.contains(port)) return false;
    return e->ports->is_owned(space, e->ports->part.index_of(port));
}

uint32_t PortAllocator::ports_in_use(uint32_t addr, PortSpace space) const {
    const PortEntry* e = find(addr);
    return e == nullptr ? 0 : e->ports->owned_count[static_cast<int>(space)];
}

uint32_t PortAllocator::sharers(uint32_t addr, PortSpace space) const {
    const PortEntry* e = find(addr);
    return e == nullptr ? 0 : e->ports->sharers[static_cast<int>(space)];
}

uint32_t PortAllocator::sessions_on(uint32_t addr) const {
    const PortEntry* e = find(addr);
    return e == nullptr ? 0 : e->ports->sessions();
}

uint32_t PortAllocator::partition_size(uint32_t addr) const {
    const PortEntry* e = find(addr);
    return e == nullptr ? 0 : e->hi - e->lo;
}

std::size_t PortAllocator::memory_bytes() const {
    if (index_ == nullptr) return sizeof(*this);
    std::size_t total = sizeof(*this) + index_->size() * (sizeof(PortEntry) + 2 * sizeof(uint32_t));
    for (const PortEntry& e : index_->entries()) total += e.ports->memory_bytes();
    return total;
}

}  // namespace snatgw
