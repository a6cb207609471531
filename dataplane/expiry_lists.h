// Per-worker expiry lists: one doubly linked list per (pool, timeout class), threaded through
// the sessions themselves (Session::lru_prev/lru_next), oldest at the head.
//
// Keeping the list order exact would cost two extra cache misses per packet (the neighbours'
// links). Instead a packet only updates last_seen_ms, and re-queues the session at the tail
// when its last_seen crossed into a new ~1 s bucket (kRequeueShift). So every session was
// queued less than one bucket before its last_seen, the lists stay ordered by queue time, and
// checking from the head expires every session at most one bucket late: O(1) per packet.
#pragma once

#include <cstdint>
#include <vector>

#include "session.h"

namespace snatgw {

inline constexpr uint32_t kRequeueShift = 10;  // 1024 ms buckets
inline constexpr uint16_t kMaxPools = 64;

class ExpiryLists {
public:
    explicit ExpiryLists(Session* sessions)
        : sessions_(sessions), head_(kLists, kNil), tail_(kLists, kNil), size_(kLists, 0) {}

    static uint32_t list_of(uint16_t pool_id, TimeoutClass c) {
        return static_cast<uint32_t>(pool_id) * kTimeoutClasses + static_cast<uint32_t>(c);
    }

    void append(uint32_t idx) {
        Session& s = sessions_[idx];
        const uint32_t l = list_of(s.pool_id, s.tclass);
        s.lru_next = kNil;
        s.lru_prev = tail_[l];
        if (tail_[l] != kNil) sessions_[tail_[l]].lru_next = idx;
        else head_[l] = idx;
        tail_[l] = idx;
        ++size_[l];
    }

    void unlink(uint32_t idx) {
        Session& s = sessions_[idx];
        const uint32_t l = list_of(s.pool_id, s.tclass);
        if (s.lru_prev != kNil) sessions_[s.lru_prev].lru_next = s.lru_next;
        else head_[l] = s.lru_next;
        if (s.lru_next != kNil) sessions_[s.lru_next].lru_prev = s.lru_prev;
        else tail_[l] = s.lru_prev;
        s.lru_prev = s.lru_next = kNil;
        --size_[l];
    }

    // A packet was seen at now_ms.
    void touch(uint32_t idx, uint32_t now_ms) {
        Session& s = sessions_[idx];
        const bool requeue = ((s.last_seen_ms ^ now_ms) >> kRequeueShift) != 0;
        s.last_seen_ms = now_ms;
        if (requeue && tail_[list_of(s.pool_id, s.tclass)] != idx) {
            unlink(idx);
            append(idx);
        }
    }

    // Moves a session to another class (state change), queued now.
    void reclass(uint32_t idx, TimeoutClass c, uint32_t now_ms) {
        unlink(idx);
        sessions_[idx].tclass = c;
        sessions_[idx].last_seen_ms = now_ms;
        append(idx);
    }

    uint32_t head(uint32_t list) const { return head_[list]; }
    uint32_t size(uint32_t list) const { return size_[list]; }
    static constexpr uint32_t kLists = uint32_t{kMaxPools} * kTimeoutClasses;

private:
    Session* sessions_;
    std::vector<uint32_t> head_, tail_, size_;
};

}  // namespace snatgw
