// The invariants the packet harnesses assert (fuzz_packet, fuzz_icmp_error, fuzz_router):
// check_frame after every frame the engine handled, check_worker after every burst; and the
// SNATGW_FUZZ_TRACE switch that prints every verdict.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "port_allocator.h"
#include "translate.h"

namespace snatgw::fuzz {

inline const char* verdict_name(Verdict v) {
    switch (v) {
        case Verdict::Forward: return "Forward";
        case Verdict::Drop: return "Drop";
        case Verdict::Handoff: return "Handoff";
        case Verdict::TtlExceeded: return "TtlExceeded";
        case Verdict::Punt: return "Punt";
    }
    return "?";
}

// SNATGW_FUZZ_TRACE=1 in the environment: print every frame's verdict (to see what an input
// does, e.g. a crash reproducer: `SNATGW_FUZZ_TRACE=1 fuzz_packet crash-file`).
inline bool tracing() {
    static const bool on = std::getenv("SNATGW_FUZZ_TRACE") != nullptr;
    return on;
}

inline void trace(Side side, uint32_t len, const FrameResult& r) {
    if (!tracing()) return;
    std::fprintf(stderr, "  %-7s %4u bytes: %-11s %s\n", side == Side::Inside ? "inside" : "outside", len,
                 verdict_name(r.verdict),
                 r.reason < DropReason::Count ? std::string(drop_reason_name(r.reason)).c_str() : "");
}

// One frame's verdict against the frame before (`before`) and after (`after`, same length).
inline void check_frame(Side side, const uint8_t* before, uint8_t* after, uint32_t len,
                        const FrameResult& r, const NatConfig& cfg, const EngineShape& shape) {
    trace(side, len, r);
    const char* from = side == Side::Inside ? "inside" : "outside";
    if (r.verdict != Verdict::Forward) {
        // Dropped, handed off or answered: the frame must be exactly what arrived (another
        // worker or the ICMP time-exceeded answer reads it).
        FUZZ_CHECK(len == 0 || std::memcmp(before, after, len) == 0,
                   "%s frame with verdict %s was modified:\nbefore %s\nafter  %s", from,
                   verdict_name(r.verdict), hex(before, len).c_str(), hex(after, len).c_str());
    }
    switch (r.verdict) {
        case Verdict::Drop:
            FUZZ_CHECK(r.reason < DropReason::Count, "drop without a reason");
            return;
        case Verdict::TtlExceeded: {
            FUZZ_CHECK(r.reason == DropReason::TtlExpired, "TtlExceeded with reason %d",
                       static_cast<int>(r.reason));
            const uint32_t off = ipv4_offset(before, len);
            FUZZ_CHECK(off != 0 && before[off + ipv4_off::kTtl] <= 1,
                       "TtlExceeded for a frame whose TTL is not <= 1");
            return;
        }
        case Verdict::Handoff:
            FUZZ_CHECK(side == Side::Outside, "handoff of an inside frame");
            FUZZ_CHECK(r.worker < shape.workers && r.worker != shape.worker_id,
                       "handoff to worker %u (workers %u, this one %u)", r.worker, shape.workers,
                       shape.worker_id);
            return;
        case Verdict::Punt: {
            FUZZ_CHECK(len >= 14, "punt of a %u-byte frame", len);
            uint16_t type = load_be16(before + 12);
            if (type == kEtherTypeVlan && len >= 18) type = load_be16(before + 16);
            FUZZ_CHECK(type == kEtherTypeArp, "punt of ethertype 0x%04x", type);
            return;
        }
        case Verdict::Forward:
            break;
    }

    // Forwarded: the result must still be a valid frame, translated the way the side says.
    // (Fragments are parsed as the engine does.)
    PacketView in, out;
    std::vector<uint8_t> copy(before, before + len);
    FUZZ_CHECK(parse_frame(copy.data(), len, in, true, true).cls == FrameClass::Ipv4,
               "%s frame forwarded although it does not parse", from);
    const ParseResult pr = parse_frame(after, len, out, true, true);
    FUZZ_CHECK(pr.cls == FrameClass::Ipv4, "forwarded %s frame no longer parses (%s):\n%s", from,
               std::string(drop_reason_name(pr.reason)).c_str(), hex(after, len).c_str());
    FUZZ_CHECK(out.l3_off == r.l3_off, "l3_off %u, parse says %u", r.l3_off, out.l3_off);
    FUZZ_CHECK(std::memcmp(before, after, out.l3_off) == 0, "the engine changed the L2 header");
    FUZZ_CHECK(out.proto == in.proto && out.icmp == in.icmp && out.l4_off == in.l4_off,
               "translation changed the packet's structure");
    FUZZ_CHECK(packet_ttl(out) + 1 == packet_ttl(in), "TTL %u -> %u", packet_ttl(in),
               packet_ttl(out));
    if (checksums_ok(before, len)) {
        const test::ChecksumReport rep = test::verify_checksums(after, len);
        FUZZ_CHECK(rep.ok, "%s frame had valid checksums, after translation: %s\nbefore %s\nafter  %s",
                   from, rep.detail.c_str(), hex(before, len).c_str(), hex(after, len).c_str());
    }

    const uint8_t* ip_in = copy.data() + in.l3_off;
    const uint8_t* ip_out = after + out.l3_off;
    const uint32_t src_in = load_be32(ip_in + ipv4_off::kSrc), dst_in = load_be32(ip_in + ipv4_off::kDst);
    const uint32_t src = load_be32(ip_out + ipv4_off::kSrc), dst = load_be32(ip_out + ipv4_off::kDst);
    auto public_port_ok = [&](uint32_t addr, uint16_t port) {
        const Pool* pool = cfg.pool_for_address(addr);
        return pool != nullptr && port >= pool->port_min && port <= pool->port_max &&
               port_owner(port, shape.workers) == shape.worker_id;
    };
    if (in.later_fragment()) {
        // No L4 header: only the address (and TTL, checksum) of the IPv4 header change.
        FUZZ_CHECK(std::memcmp(before + out.l4_off, after + out.l4_off, len - out.l4_off) == 0,
                   "a later fragment's payload was modified");
        if (side == Side::Inside)
            FUZZ_CHECK(dst == dst_in && cfg.pool_for_source(src_in) != nullptr &&
                           cfg.pool_for_address(src) != nullptr,
                       "inside fragment %s -> %s forwarded as %s -> %s", test::ip_str(src_in).c_str(),
                       test::ip_str(dst_in).c_str(), test::ip_str(src).c_str(), test::ip_str(dst).c_str());
        else
            FUZZ_CHECK(src == src_in && cfg.pool_for_address(dst_in) != nullptr &&
                           cfg.pool_for_source(dst) != nullptr,
                       "outside fragment %s -> %s forwarded as %s -> %s", test::ip_str(src_in).c_str(),
                       test::ip_str(dst_in).c_str(), test::ip_str(src).c_str(), test::ip_str(dst).c_str());
        return;
    }
    if (in.icmp != IcmpKind::Error) {
        const uint8_t* l4 = after + out.l4_off;
        const bool icmp = out.proto == kProtoIcmp;
        const uint16_t sport = load_be16(l4 + (icmp ? l4_off::kIcmpId : l4_off::kSport));
        const uint16_t dport = load_be16(l4 + (icmp ? l4_off::kIcmpId : l4_off::kDport));
        if (side == Side::Inside) {
            FUZZ_CHECK(dst == dst_in, "inside->outside changed the destination");
            FUZZ_CHECK(cfg.pool_for_source(src_in) != nullptr,
                       "forwarded an inside source no rule covers");
            FUZZ_CHECK(public_port_ok(src, sport), "inside->outside source %s:%u is not a public "
                       "address and port of this worker", test::ip_str(src).c_str(), sport);
        } else {
            FUZZ_CHECK(src == src_in, "outside->inside changed the source");
            FUZZ_CHECK(public_port_ok(dst_in, load_be16(copy.data() + in.l4_off +
                                                        (icmp ? l4_off::kIcmpId : l4_off::kDport))),
                       "forwarded an outside packet not addressed to a public port of this worker");
            FUZZ_CHECK(cfg.pool_for_source(dst) != nullptr,
                       "outside->inside destination %s:%u is not an inside address",
                       test::ip_str(dst).c_str(), dport);
        }
        return;
    }
    // ICMP errors: the outer address on our side and the embedded one must agree.
    const uint8_t* inner = after + out.inner.l3_off;
    const uint8_t* inner_l4 = after + out.inner.l4_off;
    const bool inner_icmp = out.inner.proto == kProtoIcmp;
    if (side == Side::Inside) {
        const uint32_t inner_dst = load_be32(inner + ipv4_off::kDst);
        const uint16_t inner_dport = load_be16(inner_l4 + (inner_icmp ? l4_off::kIcmpId : l4_off::kDport));
        FUZZ_CHECK(dst == dst_in, "ICMP error from inside: outer destination changed");
        FUZZ_CHECK(src == inner_dst, "ICMP error from inside: outer source %s, embedded destination %s",
                   test::ip_str(src).c_str(), test::ip_str(inner_dst).c_str());
        FUZZ_CHECK(public_port_ok(inner_dst, inner_dport),
                   "ICMP error from inside: embedded destination %s:%u is not public",
                   test::ip_str(inner_dst).c_str(), inner_dport);
    } else {
        const uint32_t inner_src = load_be32(inner + ipv4_off::kSrc);
        FUZZ_CHECK(src == src_in, "ICMP error from outside: outer source changed");
        FUZZ_CHECK(dst == inner_src, "ICMP error from outside: outer destination %s, embedded source %s",
                   test::ip_str(dst).c_str(), test::ip_str(inner_src).c_str());
        FUZZ_CHECK(cfg.pool_for_source(inner_src) != nullptr,
                   "ICMP error from outside: embedded source %s is not an inside address",
                   test::ip_str(inner_src).c_str());
    }
}

inline PortSpace space_of_proto(uint8_t proto) {
    return proto == kProtoTcp ? PortSpace::Tcp : proto == kProtoUdp ? PortSpace::Udp : PortSpace::Icmp;
}

// The worker's tables and counters agree with each other. Cheap on the small tables the
// harnesses use (one pass over the session array).
inline void check_worker(const NatWorker& w, const NatConfig& cfg, const EngineShape& shape) {
    const WorkerCounters& c = w.counters();
    const uint64_t rx = c.rx[0] + c.rx[1];
    // Fragments the engine holds (or released but not yet taken) have no verdict yet.
    const uint64_t out = c.forwarded[0] + c.forwarded[1] + c.drop_total() + c.handoffs + c.punted +
                         c.fragments_waiting;
    FUZZ_CHECK(rx == out, "counters: %llu received, %llu forwarded+dropped+handed off+punted+waiting",
               static_cast<unsigned long long>(rx), static_cast<unsigned long long>(out));
    FUZZ_CHECK(c.fragment_datagrams == w.fragments().size(), "fragment_datagrams gauge");

    const SessionTable& st = w.sessions();
    FUZZ_CHECK(st.size() <= st.capacity(), "%u sessions in a table of %u", st.size(), st.capacity());
    uint64_t gauges = c.udp_sessions + c.icmp_sessions;
    for (uint64_t g : c.tcp_state) gauges += g;
    FUZZ_CHECK(gauges == st.size(), "gauges count %llu sessions, the table %u",
               static_cast<unsigned long long>(gauges), st.size());

    uint32_t live = 0;
    std::map<std::tuple<uint32_t, int, uint16_t>, uint32_t> port_owners;
    std::map<std::pair<uint32_t, int>, uint32_t> sharers;
    std::map<uint32_t, std::pair<uint32_t, uint32_t>> host_sessions;  // -> (count, public addr)
    for (uint32_t i = 0; i < st.capacity(); ++i) {
        const Session& s = st.at(i);
        if (!(s.flags & session_flag::kInUse)) continue;
        ++live;
        FUZZ_CHECK(st.lookup_inside(SessionTable::inside_key(s)) == static_cast<int32_t>(i),
                   "session %u: its inside key finds %d", i, st.lookup_inside(SessionTable::inside_key(s)));
        FUZZ_CHECK(st.lookup_outside(SessionTable::outside_key(s)) == static_cast<int32_t>(i),
                   "session %u: its outside key finds %d", i, st.lookup_outside(SessionTable::outside_key(s)));
        FUZZ_CHECK(s.proto == kProtoTcp || s.proto == kProtoUdp || s.proto == kProtoIcmp,
                   "session %u: protocol %u", i, s.proto);
        FUZZ_CHECK((s.proto == kProtoTcp) == (s.state != TcpState::None),
                   "session %u: protocol %u in TCP state %d", i, s.proto, static_cast<int>(s.state));
        FUZZ_CHECK(s.pool_id < cfg.pools.size(), "session %u: pool %u", i, s.pool_id);
        const Pool& pool = cfg.pools[s.pool_id];
        const uint16_t port = ntohs(s.outside_port);
        FUZZ_CHECK(cfg.pool_for_address(ntohl(s.outside_addr)) == &pool && port >= pool.port_min &&
                       port <= pool.port_max && port_owner(port, shape.workers) == shape.worker_id,
                   "session %u: public %s:%u is not a port of pool %s on this worker", i,
                   test::ip_str(ntohl(s.outside_addr)).c_str(), port, pool.name.c_str());
        FUZZ_CHECK(cfg.pool_for_source(ntohl(s.inside_addr)) == &pool,
                   "session %u: inside %s does not map to pool %s", i,
                   test::ip_str(ntohl(s.inside_addr)).c_str(), pool.name.c_str());
        if (s.flags & session_flag::kOwnsPort)
            ++port_owners[{s.outside_addr, static_cast<int>(space_of_proto(s.proto)), port}];
        else
            ++sharers[{s.outside_addr, static_cast<int>(space_of_proto(s.proto))}];
        auto& h = host_sessions[s.inside_addr];
        ++h.first;
        if (h.first == 1) h.second = s.outside_addr;
        FUZZ_CHECK(h.second == s.outside_addr, "inside host %s has sessions on two public addresses",
                   test::ip_str(ntohl(s.inside_addr)).c_str());
    }
    FUZZ_CHECK(live == st.size(), "%u sessions in use, the table says %u", live, st.size());
    // A port has at most one owning session, and the allocator marks exactly those; the other
    // sessions are the address's sharers.
    std::map<std::pair<uint32_t, int>, uint32_t> owned_ports;
    for (const auto& [k, n] : port_owners) {
        const auto& [addr, space, port] = k;
        FUZZ_CHECK(n == 1, "port %s:%u (space %d) has %u owning sessions",
                   test::ip_str(ntohl(addr)).c_str(), port, space, n);
        FUZZ_CHECK(w.ports().owned(addr, static_cast<PortSpace>(space), port),
                   "port %s:%u (space %d) has an owning session, the allocator says unowned",
                   test::ip_str(ntohl(addr)).c_str(), port, space);
        ++owned_ports[{addr, space}];
    }
    for (const auto& [k, n] : owned_ports) {
        const uint32_t counted = w.ports().ports_in_use(k.first, static_cast<PortSpace>(k.second));
        FUZZ_CHECK(counted == n, "address %s (space %d): %u owned ports, the allocator counts %u",
                   test::ip_str(ntohl(k.first)).c_str(), k.second, n, counted);
    }
    for (const auto& [k, n] : sharers) {
        const uint32_t counted = w.ports().sharers(k.first, static_cast<PortSpace>(k.second));
        FUZZ_CHECK(counted == n, "address %s (space %d): %u sharing sessions, the allocator counts %u",
                   test::ip_str(ntohl(k.first)).c_str(), k.second, n, counted);
    }
    FUZZ_CHECK(w.hosts().size() == host_sessions.size(), "host table holds %u hosts, sessions have %zu",
               w.hosts().size(), host_sessions.size());
    auto& hosts = const_cast<HostTable&>(w.hosts());  // find() does not modify
    for (const auto& [addr, h] : host_sessions) {
        const HostEntry* e = hosts.find(addr);
        FUZZ_CHECK(e != nullptr && e->sessions == h.first && e->public_addr == h.second,
                   "host %s: %u sessions on %s, the host table says %d on %s",
                   test::ip_str(ntohl(addr)).c_str(), h.first, test::ip_str(ntohl(h.second)).c_str(),
                   e ? static_cast<int>(e->sessions) : -1, e ? test::ip_str(ntohl(e->public_addr)).c_str() : "-");
    }
}

}  // namespace snatgw::fuzz
