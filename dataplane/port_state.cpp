// Port state built on the control thread; see port_state.h.
#include "port_state.h"

#include <arpa/inet.h>

#include <bit>

#include "nat_config.h"

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

AddressPorts::AddressPorts(uint16_t worker, uint16_t workers)
    : part(Partition::of(0, 65535, worker, workers)),
      words((part.count + 63) / 64),
      owned(std::make_unique<uint64_t[]>(std::size_t{words} * kPortSpaceCount)) {}

uint32_t AddressPorts::sessions() const {
    uint32_t n = 0;
    for (int sp = 0; sp < kPortSpaceCount; ++sp) n += owned_count[sp] + sharers[sp];
    return n;
}

void PortIndex::add(const PortEntry& e, std::shared_ptr<AddressPorts> state) {
    entries_.push_back(e);
    keep_.push_back(std::move(state));
}

void PortIndex::build_slots() {
    std::size_t size = 16;
    while (size < entries_.size() * 2) size *= 2;
    slots_.assign(size, kEmpty);
    for (uint32_t i = 0; i < entries_.size(); ++i) {
        std::size_t h = hash(entries_[i].addr) & (size - 1);
        while (slots_[h] != kEmpty) h = (h + 1) & (size - 1);
        slots_[h] = i;
    }
}

PortStateStore::PortStateStore(uint16_t workers) : workers_(workers), known_(workers) {}

std::size_t PortStateStore::bytes_per_address(uint16_t workers) {
    std::size_t total = 0;
    for (uint16_t w = 0; w < workers; ++w) {
        const Partition p = Partition::of(0, 65535, w, workers);
        total += sizeof(AddressPorts) + std::size_t{(p.count + 63) / 64} * 8 * kPortSpaceCount +
                 2 * sizeof(PortEntry) + 4 * sizeof(uint32_t);  // entry and index slots
    }
    return total;
}

std::size_t PortStateStore::bytes_for(const NatConfig& c) {
    std::size_t addresses = 0;
    for (const Pool& p : c.pools) addresses += p.addresses.size() + p.draining.size();
    return addresses * bytes_per_address(c.workers);
}

std::shared_ptr<const PortIndex> PortStateStore::build_into(const NatConfig& c, uint16_t worker,
                                                            Registry& next) const {
    auto index = std::make_shared<PortIndex>();
    const Registry& known = known_[worker];
    auto add = [&](uint32_t addr_host, const Pool& pool, bool draining) {
        const uint32_t addr = htonl(addr_host);
        if (next.count(addr)) return;  // listed twice (active wins: see the callers' order)
        auto it = known.find(addr);
        std::shared_ptr<AddressPorts> st =
            it != known.end() ? it->second : std::make_shared<AddressPorts>(worker, c.workers);
        PortEntry e;
        e.addr = addr;
        e.draining = draining;
        e.ports = st.get();
        const Partition active = Partition::of(pool.port_min, pool.port_max, worker, c.workers);
        if (active.count != 0) {
            e.lo = st->part.index_of(active.first);
            e.hi = e.lo + active.count;
        }
        index->add(e, st);
        next.emplace(addr, std::move(st));
    };
    // Active addresses first: an address drained from one pool and now in another is active.
    for (const Pool& pool : c.pools)
        for (uint32_t a : pool.addresses) add(a, pool, false);
    for (const Pool& pool : c.pools)
        for (uint32_t a : pool.draining) add(a, pool, true);
    index->build_slots();
    return index;
}

void PortStateStore::attach(NatConfig& c) {
    std::vector<Registry> next(workers_);
    std::vector<std::shared_ptr<const PortIndex>> indexes;
    for (uint16_t w = 0; w < workers_; ++w) indexes.push_back(build_into(c, w, next[w]));
    // Nothing above changed the registry: a std::bad_alloc leaves it as it was.
    c.port_state = std::move(indexes);
    known_ = std::move(next);
}

std::shared_ptr<const PortIndex> PortStateStore::build(const NatConfig& c, uint16_t worker) {
    Registry next;
    auto index = build_into(c, worker, next);
    known_[worker] = std::move(next);
    return index;
}

}  // namespace snatgw
