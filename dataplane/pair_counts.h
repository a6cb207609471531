// How many (public port, remote) pairs of one public address toward one remote endpoint are in
// use on this worker: the sessions keyed (public addr, *, remote addr, remote port, proto).
//
// When every port of a partition carries a session, a new session toward remote R can only
// take a port whose pair with R is free. This count says in O(1) whether one is left
// (count < partition size), so a SYN that cannot get a pair is refused at the cost of one hash
// lookup instead of a scan of the partition (issue 12), and the search for a free pair is a
// bounded number of random probes.
//
// An rte_hash keyed by the outside key with the public port zeroed; the count lives in an array
// indexed by the key's position. One writer, the owning worker. Every entry has a count >= 1
// and is the outside key of at least one session, so a table as large as the session table
// never runs out of room.
#pragma once

#include <cstdint>
#include <string>

#include "flow_key.h"

struct rte_hash;

namespace snatgw {

class PairCounts {
public:
    // Throws std::runtime_error when DPDK cannot allocate (control path only).
    PairCounts(const std::string& name, uint32_t capacity, int socket_id);
    ~PairCounts();
    PairCounts(const PairCounts&) = delete;
    PairCounts& operator=(const PairCounts&) = delete;

    // `outside` is a session's outside key; its public port is ignored.
    // False when the table refused the key (cannot happen while sessions <= capacity; the
    // caller counts it).
    bool add(const FlowKey& outside);
    void remove(const FlowKey& outside);
    uint32_t count(const FlowKey& outside) const;

    uint32_t remotes() const { return size_; }

private:
    static FlowKey remote_key(const FlowKey& outside) {
        FlowKey k = outside;
        k.local_port = 0;
        return k;
    }

    uint32_t size_ = 0;
    rte_hash* hash_ = nullptr;
    uint32_t* counts_ = nullptr;
};

}  // namespace snatgw
