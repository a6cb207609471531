// Inside hosts known to one worker: how many sessions each has (for the per-host cap) and which
// public address it was paired with (paired pooling: a host keeps one public address while it
// has sessions). Keyed by the inside address in an rte_hash; one writer, the worker.
#pragma once

#include <cstdint>
#include <string>

struct rte_hash;

namespace snatgw {

struct HostEntry {
    uint32_t sessions;     // live sessions of this host on this worker
    uint32_t public_addr;  // paired address, network order
    uint32_t embryonic;    // of them, TCP sessions never established (SYN_SENT, SYN_RECV)
    uint16_t pool_id;
};

class HostTable {
public:
    HostTable(const std::string& name, uint32_t capacity, int socket_id);
    ~HostTable();
    HostTable(const HostTable&) = delete;
    HostTable& operator=(const HostTable&) = delete;

    // The entry of `inside_addr` (network order), or nullptr.
    HostEntry* find(uint32_t inside_addr);
    // Finds or creates (sessions = 0, no address yet); nullptr when the table is full.
    HostEntry* find_or_add(uint32_t inside_addr);
    // Drops the entry (when its last session is gone).
    void remove(uint32_t inside_addr);

    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }

private:
    uint32_t capacity_;
    uint32_t size_ = 0;
    rte_hash* hash_ = nullptr;
    HostEntry* entries_ = nullptr;
};

}  // namespace snatgw
