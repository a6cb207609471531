// Pairs in use per (public address, remote); see pair_counts.h.
#include "pair_counts.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <stdexcept>

namespace snatgw {

PairCounts::PairCounts(const std::string& name, uint32_t capacity, int socket_id) {
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity < 8 ? 8 : capacity;
    p.key_len = sizeof(FlowKey);
    p.hash_func = rte_hash_crc;
    p.socket_id = socket_id;
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;  // as the session tables: no early refusal
    hash_ = rte_hash_create(&p);
    if (hash_ == nullptr)
        throw std::runtime_error("cannot create hash table '" + name +
                                 "': " + rte_strerror(rte_errno));
    // rte_hash positions go up to entries (plus the extendable buckets' keys): size the counts
    // by what the table reports it can hold.
    const uint32_t slots = static_cast<uint32_t>(rte_hash_max_key_id(hash_)) + 1;
    counts_ = static_cast<uint32_t*>(
        rte_zmalloc_socket(name.c_str(), sizeof(uint32_t) * slots, 64, socket_id));
    if (counts_ == nullptr) {
        rte_hash_free(hash_);
        throw std::runtime_error("cannot allocate the pair counts of '" + name + "'");
    }
}

PairCounts::~PairCounts() {
    rte_hash_free(hash_);
    rte_free(counts_);
}

bool PairCounts::add(const FlowKey& outside) {
    const FlowKey k = remote_key(outside);
    int32_t pos = rte_hash_lookup(hash_, &k);
    if (pos < 0) {
        pos = rte_hash_add_key(hash_, &k);
        if (pos < 0) return false;
        counts_[pos] = 0;
        ++size_;
    }
    ++counts_[pos];
    return true;
}

void PairCounts::remove(const FlowKey& outside) {
    const FlowKey k = remote_key(outside);
    const int32_t pos = rte_hash_lookup(hash_, &k);
    if (pos < 0) return;  // its add was refused
    if (--counts_[pos] == 0) {
        rte_hash_del_key(hash_, &k);
        --size_;
    }
}

uint32_t PairCounts::count(const FlowKey& outside) const {
    const FlowKey k = remote_key(outside);
    const int32_t pos = rte_hash_lookup(hash_, &k);
    return pos < 0 ? 0 : counts_[pos];
}

}  // namespace snatgw
