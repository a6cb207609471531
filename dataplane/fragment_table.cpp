// Per-worker fragment state; see fragment_table.h.
#include "fragment_table.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include <stdexcept>

namespace snatgw {

uint16_t fragment_owner(const FragmentKey& key, uint16_t workers) {
    if (workers <= 1) return 0;
    return static_cast<uint16_t>(rte_hash_crc(&key, sizeof(key), 0xf4a9) % workers);
}

FragmentTable::FragmentTable(const std::string& name, uint32_t datagrams, uint32_t held,
                             int socket_id)
    : capacity_(datagrams), held_capacity_(held) {
    if (datagrams < 8) throw std::invalid_argument("fragment table: at least 8 datagrams");
    rte_hash_parameters p{};
    p.name = name.c_str();
    p.entries = datagrams;
    p.key_len = sizeof(FragmentKey);
    p.hash_func = rte_hash_crc;
    p.hash_func_init_val = 0;
    p.socket_id = socket_id;
    p.extra_flag = 0;  // one writer, no other reader
    hash_ = rte_hash_create(&p);
    if (hash_ == nullptr)
        throw std::runtime_error("cannot create hash table '" + name + "': " +
                                 rte_strerror(rte_errno));
    // Key positions of the hash index the datagram array (0 .. datagrams - 1).
    datagrams_ = static_cast<Datagram*>(
        rte_zmalloc_socket(name.c_str(), sizeof(Datagram) * datagrams, 64, socket_id));
    held_ = static_cast<HeldFragment*>(
        rte_zmalloc_socket(name.c_str(), sizeof(HeldFragment) * (held ? held : 1), 64, socket_id));
    if (datagrams_ == nullptr || held_ == nullptr) {
        rte_free(datagrams_);
        rte_free(held_);
        rte_hash_free(hash_);
        throw std::runtime_error("cannot allocate the fragment table '" + name + "'");
    }
    for (uint32_t i = 0; i < datagrams; ++i) datagrams_[i] = Datagram{};
    for (uint32_t i = 0; i < held; ++i) {
        held_[i] = HeldFragment{};
        held_[i].next = i + 1 < held ? i + 1 : kNoFragment;
    }
    free_held_ = held != 0 ? 0 : kNoFragment;
}

FragmentTable::~FragmentTable() {
    rte_hash_free(hash_);
    rte_free(datagrams_);
    rte_free(held_);
}

int32_t FragmentTable::find(const FragmentKey& key) const {
    const int32_t pos = rte_hash_lookup(hash_, &key);
    return pos < 0 ? -1 : pos;
}

int32_t FragmentTable::add(const FragmentKey& key, uint32_t now_ms) {
    if (full()) return -1;
    const int32_t pos = rte_hash_add_key(hash_, &key);
    if (pos < 0) return -1;
    Datagram& d = datagrams_[pos];
    d = Datagram{};
    d.key = key;
    d.created_ms = now_ms;
    // Newest at the tail: a datagram's deadline is its creation time plus one timeout for all.
    d.older = newest_;
    if (newest_ != kNoFragment) datagrams_[newest_].newer = static_cast<uint32_t>(pos);
    newest_ = static_cast<uint32_t>(pos);
    if (oldest_ == kNoFragment) oldest_ = static_cast<uint32_t>(pos);
    ++size_;
    return pos;
}

void FragmentTable::unlink(uint32_t idx) {
    Datagram& d = datagrams_[idx];
    if (d.older != kNoFragment) datagrams_[d.older].newer = d.newer;
    else oldest_ = d.newer;
    if (d.newer != kNoFragment) datagrams_[d.newer].older = d.older;
    else newest_ = d.older;
    d.older = d.newer = kNoFragment;
}

void FragmentTable::remove(uint32_t idx) {
    unlink(idx);
    rte_hash_del_key(hash_, &datagrams_[idx].key);
    datagrams_[idx] = Datagram{};
    --size_;
}

bool FragmentTable::hold(uint32_t idx, uint8_t* data, uint32_t len, void* cookie, Side side) {
    if (free_held_ == kNoFragment) return false;
    const uint32_t h = free_held_;
    free_held_ = held_[h].next;
    held_[h] = HeldFragment{data, len, cookie, side, kNoFragment};
    Datagram& d = datagrams_[idx];
    if (d.held_tail != kNoFragment) held_[d.held_tail].next = h;
    else d.held_head = h;
    d.held_tail = h;
    ++d.held;
    ++held_in_use_;
    return true;
}

}  // namespace snatgw
