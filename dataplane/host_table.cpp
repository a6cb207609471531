// Per-worker inside host table; see host_table.h.
#include "host_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <stdexcept>

namespace snatgw {

namespace {
// 16 bytes although the address is 4: rte_hash compares 16-byte keys with one vector compare,
// other lengths with memcmp (a hotspot when every new session looks its host up).
struct HostKey {
    uint32_t addr, pad0, pad1, pad2;
};
static_assert(sizeof(HostKey) == 16);
}  // namespace

HostTable::HostTable(const std::string& name, uint32_t capacity, int socket_id)
    : capacity_(capacity) {
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = capacity < 8 ? 8 : capacity;
    p.key_len = sizeof(HostKey);
    p.hash_func = rte_hash_crc;
    p.socket_id = socket_id;
    hash_ = rte_hash_create(&p);
    if (hash_ == nullptr)
        throw std::runtime_error("cannot create host table '" + name +
                                 "': " + rte_strerror(rte_errno));
    entries_ = static_cast<HostEntry*>(
        rte_zmalloc_socket(name.c_str(), sizeof(HostEntry) * p.entries, 64, socket_id));
    if (entries_ == nullptr) {
        rte_hash_free(hash_);
        throw std::runtime_error("cannot allocate host table '" + name + "'");
    }
}

HostTable::~HostTable() {
    rte_hash_free(hash_);
    rte_free(entries_);
}

HostEntry* HostTable::find(uint32_t inside_addr) {
    const HostKey key{inside_addr, 0, 0, 0};
    const int32_t pos = rte_hash_lookup(hash_, &key);
    return pos < 0 ? nullptr : &entries_[pos];
}

HostEntry* HostTable::find_or_add(uint32_t inside_addr) {
    if (HostEntry* e = find(inside_addr)) return e;
    if (size_ >= capacity_) return nullptr;
    const HostKey key{inside_addr, 0, 0, 0};
    const int32_t pos = rte_hash_add_key(hash_, &key);
    if (pos < 0) return nullptr;
    ++size_;
    entries_[pos] = HostEntry{0, 0, 0, 0};
    return &entries_[pos];
}

void HostTable::remove(uint32_t inside_addr) {
    const HostKey key{inside_addr, 0, 0, 0};
    if (rte_hash_del_key(hash_, &key) >= 0) --size_;
}

}  // namespace snatgw
