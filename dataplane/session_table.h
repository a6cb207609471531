// The sessions of one worker: a preallocated array of Session and two rte_hash tables, one
// keyed by the inside flow, one by the outside flow. One writer (the owning worker), so the
// tables are created without any concurrency flag.
//
// The session index is the inside table's key position (as DPDK's l3fwd indexes its value
// array), so no separate free list is needed; the outside table stores the index as its data.
#pragma once

#include <cstdint>
#include <string>

#include "flow_key.h"
#include "session.h"

struct rte_hash;

namespace snatgw {

// rte_hash_lookup_bulk takes at most this many keys at once.
inline constexpr uint32_t kLookupBulkMax = 64;

class SessionTable {
public:
    // name: unique per process (rte_hash names are global). Throws std::runtime_error when
    // DPDK cannot allocate (control path only).
    SessionTable(const std::string& name, uint32_t capacity, int socket_id);
    ~SessionTable();
    SessionTable(const SessionTable&) = delete;
    SessionTable& operator=(const SessionTable&) = delete;

    // Bulk lookups: idx[i] = session index or -1. n <= kLookupBulkMax.
    void lookup_inside_bulk(const FlowKey* const* keys, uint32_t n, int32_t* idx) const;
    void lookup_outside_bulk(const FlowKey* const* keys, uint32_t n, int32_t* idx) const;
    int32_t lookup_inside(const FlowKey& k) const;
    int32_t lookup_outside(const FlowKey& k) const;
    bool outside_taken(const FlowKey& k) const { return lookup_outside(k) >= 0; }

    // Adds both keys; returns the new session's index (its fields zeroed except the flow), or
    // -1 when a table has no room. The inside key must not exist yet.
    int32_t insert(const FlowKey& inside, const FlowKey& outside);
    // Removes both keys of a live session.
    void remove(uint32_t idx);

    Session& at(uint32_t idx) { return sessions_[idx]; }
    const Session& at(uint32_t idx) const { return sessions_[idx]; }
    Session* data() { return sessions_; }
    uint32_t size() const { return size_; }
    uint32_t capacity() const { return capacity_; }

    static FlowKey inside_key(const Session& s) {
        return FlowKey(s.inside_addr, s.inside_port, s.remote_addr, s.remote_port, s.proto);
    }
    static FlowKey outside_key(const Session& s) {
        return FlowKey(s.outside_addr, s.outside_port, s.remote_addr, s.remote_port, s.proto);
    }

private:
    uint32_t capacity_;
    uint32_t size_ = 0;
    rte_hash* inside_ = nullptr;
    rte_hash* outside_ = nullptr;
    Session* sessions_ = nullptr;
};

}  // namespace snatgw
