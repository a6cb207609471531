// The NAT event sink's ring set-up and the event names; see nat_event.h.
#include "nat_event.h"

#include <rte_errno.h>

#include <stdexcept>

namespace snatgw {

const char* event_type_name(EventType t) {
    return t == EventType::Created ? "create" : "delete";
}

const char* delete_reason_name(DeleteReason r) {
    switch (r) {
        case DeleteReason::None: return "none";
        case DeleteReason::Expired: return "expired";
        case DeleteReason::Closed: return "closed";
        case DeleteReason::Evicted: return "evicted";
        case DeleteReason::Flushed: return "flushed";
        case DeleteReason::Reopened: return "reopened";
        case DeleteReason::Reused: return "reused";
        case DeleteReason::Reclaimed: return "reclaimed";
        case DeleteReason::Shutdown: return "shutdown";
        case DeleteReason::Count: break;
    }
    return "unknown";
}

EventSink::EventSink(const std::string& name, uint32_t ring_size, uint16_t worker, int socket_id)
    : worker_(worker) {
    if (ring_size < 2 || (ring_size & (ring_size - 1)) != 0)
        throw std::invalid_argument("event ring '" + name + "': size " +
                                    std::to_string(ring_size) + " is not a power of two >= 2");
    ring_ = rte_ring_create_elem(name.c_str(), sizeof(NatEvent), ring_size, socket_id,
                                 RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (ring_ == nullptr)
        throw std::runtime_error("cannot create event ring '" + name + "' (" +
                                 std::to_string(ring_size) + " events): " +
                                 rte_strerror(rte_errno));
}

EventSink::~EventSink() { rte_ring_free(ring_); }

}  // namespace snatgw
