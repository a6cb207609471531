// The per-worker NAT engine; see nat_worker.h for the pipeline.
#include "nat_worker.h"

#include <arpa/inet.h>
#include <rte_malloc.h>
#include <rte_hash_crc.h>
#include <rte_prefetch.h>

#include <random>

#include "byte_order.h"
#include "checksum.h"
#include "tcp_tracker.h"
#include "translate.h"

namespace snatgw {

namespace {

constexpr std::size_t kLeastLoadedScan = 64;  // pools up to this size pair hosts by load


PortSpace space_of(uint8_t proto) {
    switch (proto) {
        case kProtoTcp: return PortSpace::Tcp;
        case kProtoUdp: return PortSpace::Udp;
        default: return PortSpace::Icmp;
    }
}

uint64_t os_seed() {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
}

// Reads the flow of an L4 header (or of an embedded one) in wire order. For ICMP echo the
// identifier is the local port and the remote port is 0.
struct WireFlow {
    uint32_t src, dst;
    uint16_t sport, dport;
};

WireFlow read_flow(const uint8_t* l3, const uint8_t* l4, uint8_t proto) {
    WireFlow f{csum::load32(l3 + ipv4_off::kSrc), csum::load32(l3 + ipv4_off::kDst), 0, 0};
    if (proto == kProtoIcmp) {
        f.sport = csum::load16(l4 + l4_off::kIcmpId);
        f.dport = f.sport;
    } else {
        f.sport = csum::load16(l4 + l4_off::kSport);
        f.dport = csum::load16(l4 + l4_off::kDport);
    }
    return f;
}

}  // namespace

NatWorker::NatWorker(const NatConfig* config, const WorkerParams& params)
    : config_(config),
      params_(params),
      sessions_(params.table_prefix + "sess_w" + std::to_string(params.worker_id), params.session_capacity,
                params.socket_id),
      hosts_(params.table_prefix + "host_w" + std::to_string(params.worker_id), params.host_capacity,
             params.socket_id),
      ports_(params.worker_id, config->workers, params.seed != 0 ? params.seed : os_seed()),
      lru_(sessions_.data()),
      frags_(params.table_prefix + "frag_w" + std::to_string(params.worker_id),
             params.fragment_datagrams, params.fragments_held, params.socket_id),
      ready_(std::make_unique<ReleasedFrame[]>(params.fragments_held ? params.fragments_held : 1)) {
    set_config(config);
}

void NatWorker::set_config(const NatConfig* config) {
    // Control path (a new snapshot, between bursts). Every address this worker knows stops
    // giving ports unless the snapshot still lists it: removed addresses drain (invariant I6).
    config_ = config;
    ports_.set_all_draining();
    for (const Pool& pool : config->pools)
        for (uint32_t a : pool.addresses) ports_.add_address(htonl(a), pool.port_min, pool.port_max);
}

void NatWorker::drop(FrameResult& r, DropReason why) {
    r.verdict = Verdict::Drop;
    r.reason = why;
    ++counters_.drops[static_cast<std::size_t>(why)];
}

const Pool* NatWorker::pool_of(const Session& s) const {
    return s.pool_id < config_->pools.size() ? &config_->pools[s.pool_id] : nullptr;
}

uint32_t NatWorker::timeout_ms(const Session& s) const {
    static const Timeouts kDefaults;
    const Pool* pool = pool_of(s);
    const Timeouts& t = pool != nullptr ? pool->timeouts : kDefaults;
    uint32_t sec = 0;
    switch (s.tclass) {
        case TimeoutClass::Embryonic:
        case TimeoutClass::Transitory: sec = t.tcp_transitory; break;
        case TimeoutClass::Established: sec = t.tcp_established; break;
        case TimeoutClass::Quarantine: sec = t.quarantine; break;
        case TimeoutClass::Linger: sec = t.linger; break;
        case TimeoutClass::Udp: sec = t.udp; break;
        case TimeoutClass::Icmp: sec = t.icmp; break;
        case TimeoutClass::Count: break;
    }
    return sec * 1000u;
}

void NatWorker::count_state_change(TcpState from, TcpState to) {
    if (from == to) return;
    if (from != TcpState::None) --counters_.tcp_state[static_cast<std::size_t>(from)];
    if (to != TcpState::None) ++counters_.tcp_state[static_cast<std::size_t>(to)];
}

void NatWorker::set_state(Session& s, TcpState st) {
    count_state_change(s.state, st);
    s.state = st;
}

void NatWorker::process(Side side, Frame* frames, FrameResult* results, uint32_t n,
                        uint32_t now_ms, const BurstOrigin& origin) {
    for (uint32_t off = 0; off < n; off += kChunkMax) {
        const uint32_t m = n - off < kChunkMax ? n - off : kChunkMax;
        BurstOrigin chunk = origin;
        if (origin.cookies != nullptr) chunk.cookies = origin.cookies + off;
        process_chunk(side, frames + off, results + off, m, now_ms, chunk);
    }
}

// Parses a frame and builds its lookup key. False when the frame is finished (dropped,
// punted, handed off) or is a fragment (p.fragment: the fragment path takes it).
bool NatWorker::classify(Side side, Frame& f, FrameResult& r, Pending& p) {
    const ParseResult pr = parse_frame(f.data, f.len, p.v, true, true);
    if (pr.cls == FrameClass::Arp) {
        r.verdict = Verdict::Punt;
        ++counters_.punted;
        return false;
    }
    if (pr.cls == FrameClass::Dropped) {
        drop(r, pr.reason);
        return false;
    }
    r.l3_off = static_cast<uint16_t>(p.v.l3_off);
    if (p.v.fragment) {
        p.fragment = true;
        return false;
    }
    DropReason why = DropReason::Count;
    if (!make_key(side, p, why)) {
        drop(r, why);
        return false;
    }
    if (side == Side::Inside) return true;
    const uint16_t owner = port_owner(p.owner_port, config_->workers);
    if (owner != params_.worker_id) {
        r.verdict = Verdict::Handoff;
        r.worker = owner;
        ++counters_.handoffs;
        return false;
    }
    return true;
}

// The lookup key (and, outside, the public port that decides the owner) of a whole packet or
// a first fragment. False with the reason when it can have no session.
bool NatWorker::make_key(Side side, Pending& p, DropReason& why) const {
    const PacketView& v = p.v;
    p.icmp_error = v.icmp == IcmpKind::Error;
    if (side == Side::Inside) {
        if (p.icmp_error) {
            // About a packet the inside host received: its destination is the inside end.
            const WireFlow in = read_flow(v.frame + v.inner.l3_off, v.frame + v.inner.l4_off,
                                          v.inner.proto);
            p.key = FlowKey(in.dst, in.dport, in.src, v.inner.proto == kProtoIcmp ? 0 : in.sport,
                            v.inner.proto);
        } else {
            const WireFlow fl = read_flow(v.l3(), v.l4(), v.proto);
            p.key = FlowKey(fl.src, fl.sport, fl.dst, v.proto == kProtoIcmp ? 0 : fl.dport,
                            v.proto);
        }
        return true;
    }
    if (p.icmp_error) {
        // About a packet we sent out: its source is the public end.
        const WireFlow in =
            read_flow(v.frame + v.inner.l3_off, v.frame + v.inner.l4_off, v.inner.proto);
        p.key = FlowKey(in.src, in.sport, in.dst, v.inner.proto == kProtoIcmp ? 0 : in.dport,
                        v.inner.proto);
        p.owner_port = ntohs(in.sport);
    } else {
        if (v.proto == kProtoIcmp && v.l4()[l4_off::kIcmpType] != kIcmpEchoReply) {
            // An echo request from outside opens nothing (RFC 5382/5508: unsolicited).
            why = DropReason::NoSession;
            return false;
        }
        const WireFlow fl = read_flow(v.l3(), v.l4(), v.proto);
        p.key = FlowKey(fl.dst, fl.dport, fl.src, v.proto == kProtoIcmp ? 0 : fl.sport, v.proto);
        p.owner_port = ntohs(fl.dport);
    }
    return true;
}

void NatWorker::process_chunk(Side side, Frame* frames, FrameResult* results, uint32_t n,
                              uint32_t now_ms, const BurstOrigin& origin) {
    Pending pend[kChunkMax];
    const FlowKey* keys[kChunkMax];
    uint32_t which[kChunkMax];
    uint32_t frag[kChunkMax];
    uint32_t nkeys = 0, nfrag = 0;

    counters_.rx[static_cast<int>(side)] += n;
    // Start every header load of the chunk at once so the cache misses overlap.
    for (uint32_t i = 0; i < n; ++i) rte_prefetch0(frames[i].data);
    for (uint32_t i = 0; i < n; ++i) {
        results[i] = FrameResult{};
        if (classify(side, frames[i], results[i], pend[i])) {
            keys[nkeys] = &pend[i].key;
            which[nkeys++] = i;
        } else if (pend[i].fragment) {
            frag[nfrag++] = i;
        }
    }
    if (nkeys != 0) lookup_and_translate(side, pend, results, keys, which, nkeys, now_ms);
    // Fragments one by one, in arrival order, after the rest of the chunk: a first fragment
    // decides for the later ones of its datagram, which may follow it in this very chunk.
    for (uint32_t j = 0; j < nfrag; ++j) {
        const uint32_t i = frag[j];
        fragment(side, frames[i], results[i], pend[i],
                 origin.cookies != nullptr ? origin.cookies[i] : nullptr, origin.from_worker,
                 now_ms);
    }
}

// One bulk lookup for the chunk's keys, then the fast or slow path per packet.
void NatWorker::lookup_and_translate(Side side, Pending* pend, FrameResult* results,
                                     const FlowKey* const* keys, const uint32_t* which,
                                     uint32_t nkeys, uint32_t now_ms) {
    int32_t idx[kChunkMax];
    if (side == Side::Inside) sessions_.lookup_inside_bulk(keys, nkeys, idx);
    else sessions_.lookup_outside_bulk(keys, nkeys, idx);
    for (uint32_t j = 0; j < nkeys; ++j)
        if (idx[j] >= 0) rte_prefetch0(&sessions_.at(static_cast<uint32_t>(idx[j])));

    chunk_created_ = 0;
    const uint32_t frees_before = frees_;
    for (uint32_t j = 0; j < nkeys; ++j) {
        Pending& p = pend[which[j]];
        FrameResult& r = results[which[j]];
        int32_t id = idx[j];
        // The slow path may have changed the table earlier in this chunk: a hit may point at a
        // freed (or reused) slot, a miss may have been created since.
        if (id >= 0 && frees_ != frees_before && !session_matches(side, p.key, id))
            id = side == Side::Inside ? sessions_.lookup_inside(p.key)
                                      : sessions_.lookup_outside(p.key);
        if (id < 0 && chunk_created_ != 0) id = created_in_chunk(p.key);
        if (id >= 0) {
            ++counters_.found;
            fast_path(side, static_cast<uint32_t>(id), p, r, now_ms);
        } else if (side == Side::Inside) {
            slow_path_inside(p, r, now_ms);
        } else {
            drop(r, p.icmp_error ? DropReason::IcmpErrorNoSession : DropReason::NoSession);
        }
    }
}

bool NatWorker::session_matches(Side side, const FlowKey& key, int32_t id) const {
    const Session& s = sessions_.at(static_cast<uint32_t>(id));
    const FlowKey have =
        side == Side::Inside ? SessionTable::inside_key(s) : SessionTable::outside_key(s);
    return (s.flags & session_flag::kInUse) && have == key;
}

// Sessions are only created from the inside, so `key` is an inside key.
int32_t NatWorker::created_in_chunk(const FlowKey& key) const {
    for (uint32_t i = 0; i < chunk_created_; ++i) {
        const int32_t id = static_cast<int32_t>(chunk_created_idx_[i]);
        if (session_matches(Side::Inside, key, id)) return id;
    }
    return -1;
}

void NatWorker::fast_path(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms) {
    Session& s = sessions_.at(idx);
    const PacketView& v = p.v;

    if (p.icmp_error) {
        // Errors about a live session pass; they never change its state or timers.
        if (s.state == TcpState::Expired) return drop(r, DropReason::IcmpErrorNoSession);
        if (packet_ttl(v) <= 1) {
            ++counters_.ttl_exceeded;
            drop(r, DropReason::TtlExpired);
            r.verdict = Verdict::TtlExceeded;
            return;
        }
        if (side == Side::Inside) rewrite_icmp_error_from_inside(v, s.outside_addr, s.outside_port);
        else rewrite_icmp_error_from_outside(v, s.inside_addr, s.inside_port);
        decrement_ttl(v);
        r.verdict = Verdict::Forward;
        ++counters_.forwarded[static_cast<int>(side)];
        return;
    }

    if (side == Side::Outside && s.state == TcpState::Expired)
        return drop(r, DropReason::NoSession);
    if (packet_ttl(v) <= 1) {
        ++counters_.ttl_exceeded;
        drop(r, DropReason::TtlExpired);
        r.verdict = Verdict::TtlExceeded;
        return;
    }

    if (s.proto == kProtoTcp) {
        const TcpSegment seg = read_tcp_segment(v);
        const bool bare_syn = (seg.flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin)) == kTcpSyn;
        if (side == Side::Inside && bare_syn &&
            (s.state == TcpState::SynSent || s.state == TcpState::TimeWait ||
             s.state == TcpState::Closed || s.state == TcpState::Expired)) {
            // A (re)transmitted SYN, or the same inside port reconnecting to the same remote:
            // the session reopens with the same public port (invariant I4).
            if (s.state != TcpState::SynSent) {
                ++counters_.sessions_reopened;
                // For abuse tracing each connection is its own interval in the event log.
                if (events_ != nullptr) {
                    events_->deleted(s, DeleteReason::Reopened, now_ms);
                    events_->created(s, now_ms);
                }
            }
            set_state(s, TcpState::SynSent);
            tcp_open(s, seg);
        } else if (s.state == TcpState::Expired) {
            return drop(r, DropReason::TcpNotSyn);
        } else {
            const TcpState before = s.state;
            const Pool* pool = pool_of(s);
            const TcpVerdict tv = tcp_track(s, side == Side::Inside ? kOrig : kReply, seg,
                                            pool ? pool->policy : Policy::Liberal);
            count_state_change(before, s.state);
            if (!tv.forward) return drop(r, tv.reason);
        }
        const TimeoutClass c = tcp_timeout_class(s);
        if (c != s.tclass) lru_.reclass(idx, c, now_ms);
    }
    forward(side, idx, p, r, now_ms);
}

void NatWorker::forward(Side side, uint32_t idx, Pending& p, FrameResult& r, uint32_t now_ms) {
    const Session& s = sessions_.at(idx);
    if (side == Side::Inside) rewrite_source(p.v, s.outside_addr, s.outside_port);
    else rewrite_destination(p.v, s.inside_addr, s.inside_port);
    decrement_ttl(p.v);
    lru_.touch(idx, now_ms);
    r.verdict = Verdict::Forward;
    ++counters_.forwarded[static_cast<int>(side)];
}

void NatWorker::slow_path_inside(Pending& p, FrameResult& r, uint32_t now_ms) {
    const PacketView& v = p.v;
    if (p.icmp_error) return drop(r, DropReason::IcmpErrorNoSession);
    if (packet_ttl(v) <= 1) {
        // No session for a packet that dies here (traceroute's first hop).
        ++counters_.ttl_exceeded;
        drop(r, DropReason::TtlExpired);
        r.verdict = Verdict::TtlExceeded;
        return;
    }
    TcpSegment seg;
    if (v.proto == kProtoTcp) {
        seg = read_tcp_segment(v);
        if (!tcp_flags_valid(seg.flags)) return drop(r, DropReason::TcpInvalidFlags);
        if ((seg.flags & (kTcpSyn | kTcpAck)) != kTcpSyn) return drop(r, DropReason::TcpNotSyn);
    } else if (v.proto == kProtoIcmp && v.l4()[l4_off::kIcmpType] != kIcmpEchoRequest) {
        return drop(r, DropReason::NoSession);
    }
    const Pool* pool = config_->pool_for_source(ntohl(p.key.local_addr));
    if (pool == nullptr) return drop(r, DropReason::NoRule);

    const int32_t id = create_session(p.key, *pool, r, now_ms);
    if (id < 0) return;
    Session& s = sessions_.at(static_cast<uint32_t>(id));
    if (v.proto == kProtoTcp) {
        set_state(s, TcpState::SynSent);
        tcp_open(s, seg);
    }
    forward(Side::Inside, static_cast<uint32_t>(id), p, r, now_ms);
}

int32_t NatWorker::create_session(const FlowKey& in, const Pool& pool, FrameResult& r,
                                  uint32_t now_ms) {
    HostEntry* host = hosts_.find_or_add(in.local_addr);
    if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
    auto give_up = [&](DropReason why) {
        if (host->sessions == 0) hosts_.remove(in.local_addr);
        drop(r, why);
        return -1;
    };
    if (pool.max_sessions_per_host != 0 && host->sessions >= pool.max_sessions_per_host)
        return give_up(DropReason::HostSessionLimit);
    if (sessions_.size() >= sessions_.capacity()) {
        const bool made_room = make_room(now_ms);
        // Eviction may have freed this very host's entry: look it up again.
        host = hosts_.find_or_add(in.local_addr);
        if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
        if (!made_room) return give_up(DropReason::SessionTableFull);
    }

    const PortSpace space = space_of(in.proto);
    auto try_address = [&](uint32_t addr) -> std::optional<uint16_t> {
        return ports_.allocate(addr, space, [&](uint16_t port) {
            return sessions_.outside_taken(
                FlowKey(addr, htons(port), in.remote_addr, in.remote_port, in.proto));
        });
    };

    uint32_t addr = 0;
    std::optional<uint16_t> port;
    const bool paired = host->sessions > 0 && host->pool_id == pool.id &&
                        !ports_.draining(host->public_addr);
    if (paired) {
        // Paired pooling: a host keeps its public address while it has sessions (unless the
        // address is being drained: then it moves to another one of the pool).
        addr = host->public_addr;
        port = try_address(addr);
    } else if (!pool.addresses.empty()) {
        // A host without sessions is paired with the address whose partition (on this
        // worker, in this protocol) has the most unused ports, so busy hosts spread over the
        // pool instead of landing together by the luck of a hash. Small pools: scan them all.
        const std::size_t n = pool.addresses.size();
        std::size_t start = rte_hash_crc_4byte(in.local_addr, 0) % n;
        if (n <= kLeastLoadedScan) {
            uint32_t best = ~uint32_t{0};
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t k = (start + i) % n;
                const uint32_t used = ports_.ports_in_use(htonl(pool.addresses[k]), space);
                if (used < best) best = used, start = k;
            }
        }
        for (std::size_t i = 0; i < n && !port; ++i) {
            addr = htonl(pool.addresses[(start + i) % n]);
            port = try_address(addr);
        }
    }
    if (!port) return give_up(DropReason::PortsExhausted);

    const FlowKey out(addr, htons(*port), in.remote_addr, in.remote_port, in.proto);
    const int32_t id = sessions_.insert(in, out);
    if (id < 0) {
        ++counters_.insert_failed;
        return give_up(DropReason::SessionTableFull);
    }
    Session& s = sessions_.at(static_cast<uint32_t>(id));
    s.pool_id = pool.id;
    s.flags = session_flag::kInUse;
    s.state = TcpState::None;
    s.tclass = in.proto == kProtoTcp   ? TimeoutClass::Embryonic
               : in.proto == kProtoUdp ? TimeoutClass::Udp
                                       : TimeoutClass::Icmp;
    s.last_seen_ms = now_ms;
    lru_.append(static_cast<uint32_t>(id));
    ports_.acquire(addr, space, *port);
    ++host->sessions;
    host->public_addr = addr;
    host->pool_id = pool.id;
    if (in.proto == kProtoUdp) ++counters_.udp_sessions;
    if (in.proto == kProtoIcmp) ++counters_.icmp_sessions;
    ++counters_.sessions_created;
    if (events_ != nullptr) events_->created(s, now_ms);
    if (chunk_created_ < kChunkMax) chunk_created_idx_[chunk_created_++] = static_cast<uint32_t>(id);
    return id;
}

// Table full: evict the oldest session that is cheapest to lose (as conntrack's early drop):
// one lingering after an inside-first close or RST, else an embryonic TCP one, else UDP.
bool NatWorker::make_room(uint32_t now_ms) {
    static constexpr TimeoutClass kEvictable[] = {TimeoutClass::Linger, TimeoutClass::Embryonic,
                                                  TimeoutClass::Udp};
    const uint16_t pools = static_cast<uint16_t>(config_->pools.size());
    for (TimeoutClass c : kEvictable) {
        uint32_t victim = kNil;
        for (uint16_t pool = 0; pool < pools && pool < kMaxPools; ++pool) {
            const uint32_t h = lru_.head(ExpiryLists::list_of(pool, c));
            if (h == kNil) continue;
            if (victim == kNil ||
                static_cast<int32_t>(sessions_.at(h).last_seen_ms -
                                     sessions_.at(victim).last_seen_ms) < 0)
                victim = h;
        }
        if (victim != kNil) {
            free_session(victim, DeleteReason::Evicted, now_ms);
            ++counters_.sessions_evicted;
            return true;
        }
    }
    return false;
}

void NatWorker::free_session(uint32_t idx, DeleteReason why, uint32_t now_ms) {
    Session& s = sessions_.at(idx);
    if (events_ != nullptr) events_->deleted(s, why, now_ms);
    ports_.release(s.outside_addr, space_of(s.proto), ntohs(s.outside_port));
    if (HostEntry* host = hosts_.find(s.inside_addr)) {
        if (host->sessions > 0) --host->sessions;
        if (host->sessions == 0) hosts_.remove(s.inside_addr);
    }
    lru_.unlink(idx);
    if (s.proto == kProtoTcp) set_state(s, TcpState::None);
    else if (s.proto == kProtoUdp) --counters_.udp_sessions;
    else --counters_.icmp_sessions;
    sessions_.remove(idx);
    ++counters_.sessions_freed;
    ++frees_;
}

void NatWorker::expire_one(uint32_t idx, uint32_t now_ms) {
    Session& s = sessions_.at(idx);
    // An expired handshake is freed at once, as conntrack does: after tcp_transitory (>= 4 min,
    // RFC 5382) without a packet, the remote holds nothing for the pair (a listener drops an
    // unanswered SYN_RECV within about a minute; a connection that never opened leaves no
    // TIME_WAIT), and holding the port for a quarantine would let a SYN flood pin the table.
    const bool open_tcp = s.proto == kProtoTcp && (s.tclass == TimeoutClass::Established ||
                                                   s.tclass == TimeoutClass::Transitory);
    if (open_tcp) {
        // An opened connection: we cannot know what the remote still holds, so keep the pair
        // out of reuse for the quarantine (invariant I4). The same inside flow may reopen it
        // with a SYN.
        ++counters_.sessions_expired;
        set_state(s, TcpState::Expired);
        lru_.reclass(idx, TimeoutClass::Quarantine, now_ms);
        return;
    }
    const bool handshake = s.proto == kProtoTcp && s.tclass == TimeoutClass::Embryonic;
    if (s.proto != kProtoTcp || handshake) ++counters_.sessions_expired;
    // A TCP session freed here had ended (closed, reset), was in quarantine after expiring, or
    // expired in its handshake.
    free_session(idx,
                 s.proto == kProtoTcp && s.state != TcpState::Expired && !handshake
                     ? DeleteReason::Closed
                     : DeleteReason::Expired,
                 now_ms);
}

uint32_t NatWorker::expire(uint32_t now_ms, uint32_t budget) {
    if (frags_.size() != 0) expire_fragments(now_ms);
    uint32_t done = 0;
    const std::size_t pools = config_->pools.size() < kMaxPools ? config_->pools.size() : kMaxPools;
    const uint32_t lists = static_cast<uint32_t>(pools) * kTimeoutClasses;
    for (uint32_t l = 0; l < lists && done < budget; ++l) {
        while (done < budget) {
            const uint32_t h = lru_.head(l);
            if (h == kNil) break;
            const Session& s = sessions_.at(h);
            if (now_ms - s.last_seen_ms < timeout_ms(s)) break;
            expire_one(h, now_ms);
            ++done;
        }
    }
    return done;
}

uint64_t NatWorker::query_sessions(const SessionMatch& m, uint64_t skip, SessionRecord* out,
                                   uint32_t max, uint32_t* copied, uint32_t now_ms) const {
    uint64_t matched = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < sessions_.capacity(); ++i) {
        const Session& s = sessions_.at(i);
        if (!(s.flags & session_flag::kInUse) || !m.matches(s)) continue;
        if (matched++ >= skip && n < max) {
            out[n].session = s;
            out[n].idle_ms = now_ms - s.last_seen_ms;
            out[n].worker = params_.worker_id;
            ++n;
        }
    }
    *copied = n;
    return matched;
}

uint32_t NatWorker::flush_sessions(const SessionMatch& m, uint32_t now_ms) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < sessions_.capacity(); ++i) {
        const Session& s = sessions_.at(i);
        if (!(s.flags & session_flag::kInUse) || !m.matches(s)) continue;
        free_session(i, DeleteReason::Flushed, now_ms);
        ++counters_.sessions_flushed;
        ++n;
    }
    return n;
}

std::size_t NatWorker::heap_bytes_in_use() {
    std::size_t total = 0;
    for (int socket = 0; socket < RTE_MAX_NUMA_NODES; ++socket) {
        rte_malloc_socket_stats st{};
        if (rte_malloc_get_socket_stats(socket, &st) == 0) total += st.heap_allocsz_bytes;
    }
    return total;
}

}  // namespace snatgw
