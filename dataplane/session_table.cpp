// Session storage and the two flow hash tables; see session_table.h.
#include "session_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <cstring>
#include <stdexcept>

namespace snatgw {

namespace {

rte_hash* create_hash(const std::string& name, uint32_t entries, int socket_id) {
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = entries;
    p.key_len = sizeof(FlowKey);
    p.hash_func = rte_hash_crc;
    p.hash_func_init_val = 0;
    p.socket_id = socket_id;
    // One writer, no readers elsewhere: no locks, no lcore cache. Extendable buckets: without
    // them a cuckoo insert can fail (bucket collisions) well before the table is full, and a
    // nearly full table would refuse sessions while it holds ones it could evict.
    p.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    rte_hash* h = rte_hash_create(&p);
    if (h == nullptr)
        throw std::runtime_error("cannot create hash table '" + name +
                                 "': " + rte_strerror(rte_errno));
    return h;
}

// rte_hash wants `const void**` for an array it only reads.
const void** as_key_array(const FlowKey* const* keys) {
    return const_cast<const void**>(reinterpret_cast<const void* const*>(keys));
}

}  // namespace

SessionTable::SessionTable(const std::string& name, uint32_t capacity, int socket_id)
    : capacity_(capacity) {
    if (capacity < 8) throw std::invalid_argument("session capacity must be at least 8");
    inside_ = create_hash(name + "_in", capacity, socket_id);
    try {
        outside_ = create_hash(name + "_out", capacity, socket_id);
    } catch (...) {
        rte_hash_free(inside_);
        throw;
    }
    sessions_ = static_cast<Session*>(
        rte_zmalloc_socket(name.c_str(), sizeof(Session) * capacity, 64, socket_id));
    if (sessions_ == nullptr) {
        rte_hash_free(inside_);
        rte_hash_free(outside_);
        throw std::runtime_error("cannot allocate " + std::to_string(capacity) + " sessions");
    }
}

SessionTable::~SessionTable() {
    rte_hash_free(inside_);
    rte_hash_free(outside_);
    rte_free(sessions_);
}

void SessionTable::lookup_inside_bulk(const FlowKey* const* keys, uint32_t n,
                                      int32_t* idx) const {
    // Positions of the inside table are the session indexes (-ENOENT on a miss).
    rte_hash_lookup_bulk(inside_, as_key_array(keys),
                         n, idx);
    for (uint32_t i = 0; i < n; ++i)
        if (idx[i] < 0) idx[i] = -1;
}

void SessionTable::lookup_outside_bulk(const FlowKey* const* keys, uint32_t n,
                                       int32_t* idx) const {
    void* data[kLookupBulkMax];
    uint64_t hits = 0;
    rte_hash_lookup_bulk_data(outside_,
                              as_key_array(keys), n,
                              &hits, data);
    for (uint32_t i = 0; i < n; ++i)
        idx[i] = (hits >> i) & 1 ? static_cast<int32_t>(reinterpret_cast<uintptr_t>(data[i])) : -1;
}

int32_t SessionTable::lookup_inside(const FlowKey& k) const {
    const int32_t pos = rte_hash_lookup(inside_, &k);
    return pos < 0 ? -1 : pos;
}

int32_t SessionTable::lookup_outside(const FlowKey& k) const {
    void* data = nullptr;
    if (rte_hash_lookup_data(outside_, &k, &data) < 0) return -1;
    return static_cast<int32_t>(reinterpret_cast<uintptr_t>(data));
}

int32_t SessionTable::insert(const FlowKey& in, const FlowKey& out) {
    if (size_ >= capacity_) return -1;
    const int32_t pos = rte_hash_add_key(inside_, &in);
    if (pos < 0) return -1;
    if (rte_hash_add_key_data(outside_, &out, reinterpret_cast<void*>(uintptr_t(pos))) < 0) {
        rte_hash_del_key(inside_, &in);
        return -1;
    }
    Session& s = sessions_[pos];
    std::memset(&s, 0, sizeof(s));
    s.inside_addr = in.local_addr;
    s.inside_port = in.local_port;
    s.outside_addr = out.local_addr;
    s.outside_port = out.local_port;
    s.remote_addr = in.remote_addr;
    s.remote_port = in.remote_port;
    s.proto = in.proto;
    s.lru_prev = s.lru_next = kNil;
    ++size_;
    return pos;
}

void SessionTable::remove(uint32_t idx) {
    Session& s = sessions_[idx];
    const FlowKey in = inside_key(s);
    const FlowKey out = outside_key(s);
    rte_hash_del_key(outside_, &out);
    rte_hash_del_key(inside_, &in);
    s.flags = 0;
    --size_;
}

}  // namespace snatgw
