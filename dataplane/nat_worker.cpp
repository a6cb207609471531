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
      pairs_(params.table_prefix + "pair_w" + std::to_string(params.worker_id),
             params.session_capacity, params.socket_id),
      lru_(sessions_.data()),
      inside_tsval_(std::make_unique<uint32_t[]>(params.session_capacity)),
      frags_(params.table_prefix + "frag_w" + std::to_string(params.worker_id),
             params.fragment_datagrams, params.fragments_held, params.socket_id),
      ready_(std::make_unique<ReleasedFrame[]>(params.fragments_held ? params.fragments_held : 1)) {
    set_config(config);
}

void NatWorker::set_config(const NatConfig* config) {
    // Between bursts. The snapshot's index says which addresses give ports, which drain
    // (invariant I6) and in what range.
    config_ = config;
    const uint16_t w = params_.worker_id;
    if (w < config->port_state.size() && config->port_state[w] != nullptr) {
        ports_.adopt(config->port_state[w].get());
        return;
    }
    if (!local_ports_) local_ports_ = std::make_unique<PortStateStore>(config->workers);
    local_index_ = local_ports_->build(*config, w);
    ports_.adopt(local_index_.get());
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
        case TimeoutClass::SynSent: sec = t.tcp_syn_sent; break;
        case TimeoutClass::SynRecv: sec = t.tcp_syn_recv; break;
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
        if (side == Side::Inside && bare_syn && tcp_syn_reopens(s, seg)) {
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
            start_tracking(idx, seg);
        } else if (s.state == TcpState::Expired) {
            return drop(r, DropReason::TcpNotSyn);
        } else {
            const TcpState before = s.state;
            const Pool* pool = pool_of(s);
            const TcpVerdict tv = tcp_track(s, side == Side::Inside ? kOrig : kReply, seg,
                                            pool ? pool->policy : Policy::Liberal);
            count_state_change(before, s.state);
            if (!tv.forward) return drop(r, tv.reason);
            if (tv.rst_ignored) ++counters_.tcp_rst_ignored;
            // Closing: keep the newest TSval the inside sends (what the remote's TIME_WAIT
            // will compare a later SYN on this pair against).
            if (side == Side::Inside &&
                (s.flags & (session_flag::kInsideFin | session_flag::kRemoteFin)))
                note_inside_tsval(idx, v);
        }
        const TimeoutClass c = tcp_timeout_class(s);
        if (c != s.tclass) reclass(idx, c, now_ms);
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

    const int32_t id =
        create_session(p.key, *pool, v.proto == kProtoTcp ? &seg : nullptr, r, now_ms);
    if (id < 0) return;
    Session& s = sessions_.at(static_cast<uint32_t>(id));
    if (v.proto == kProtoTcp) {
        set_state(s, TcpState::SynSent);
        start_tracking(static_cast<uint32_t>(id), seg);
    }
    forward(Side::Inside, static_cast<uint32_t>(id), p, r, now_ms);
}

int32_t NatWorker::create_session(const FlowKey& in, const Pool& pool, const TcpSegment* syn,
                                  FrameResult& r, uint32_t now_ms) {
    HostEntry* host = hosts_.find_or_add(in.local_addr);
    if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
    auto give_up = [&](DropReason why) {
        if (host->sessions == 0) hosts_.remove(in.local_addr);
        drop(r, why);
        return -1;
    };
    if (pool.max_sessions_per_host != 0 && host->sessions >= pool.max_sessions_per_host)
        return give_up(DropReason::HostSessionLimit);
    // A host at its handshake cap recycles its own oldest handshake: a SYN flood keeps
    // re-using its own pairs and cannot pin the rest of the pool (I7).
    PairPick hint;
    if (syn != nullptr && pool.max_embryonic_per_host != 0 &&
        host->embryonic >= pool.max_embryonic_per_host) {
        const bool recycled = recycle_own_handshake(in.local_addr, pool, in, now_ms, hint);
        host = hosts_.find_or_add(in.local_addr);  // the recycled session may have been its last
        if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
        if (!recycled) return give_up(DropReason::HostEmbryonicLimit);
    }
    if (sessions_.size() >= sessions_.capacity()) {
        const bool made_room = make_room(now_ms);
        // Eviction may have freed this very host's entry: look it up again.
        host = hosts_.find_or_add(in.local_addr);
        if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
        if (!made_room) return give_up(DropReason::SessionTableFull);
    }

    const PortSpace space = space_of(in.proto);
    auto pair_taken = [&](uint32_t addr, uint16_t port) {
        return sessions_.outside_taken(
            FlowKey(addr, htons(port), in.remote_addr, in.remote_port, in.proto));
    };
    auto try_address = [&](uint32_t addr) -> std::optional<uint16_t> {
        return ports_.allocate(
            addr, space,
            [&] { return pairs_.count(FlowKey(addr, 0, in.remote_addr, in.remote_port, in.proto)); },
            [&](uint16_t port) { return pair_taken(addr, port); });
    };

    uint32_t addr = 0;
    std::optional<uint16_t> port;
    // The pair of the handshake just recycled: the flood stays on the ports it already held.
    if (hint.addr != 0 && !ports_.draining(hint.addr) && !pair_taken(hint.addr, hint.port)) {
        addr = hint.addr;
        port = hint.port;
    }
    const bool paired = host->sessions > 0 && host->pool_id == pool.id &&
                        !ports_.draining(host->public_addr);
    // The addresses this session may use, in order: the paired one, or the pool's least loaded.
    uint32_t candidates[kLeastLoadedScan];
    std::size_t ncand = 0;
    if (paired) {
        // Paired pooling: a host keeps its public address while it has sessions (unless the
        // address is being drained: then it moves to another one of the pool).
        candidates[ncand++] = host->public_addr;
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
        for (std::size_t i = 0; i < n && i < kLeastLoadedScan; ++i)
            candidates[ncand++] = htonl(pool.addresses[(start + i) % n]);
    }
    for (std::size_t i = 0; i < ncand && !port; ++i) {
        addr = candidates[i];
        port = try_address(addr);
    }
    // No free pair toward this remote: a TCP SYN may take over a held pair the remote will
    // accept it on, or a handshake of the host holding the most (both bounded probes).
    static constexpr std::size_t kTakeOverAddresses = 4;
    for (std::size_t i = 0; i < ncand && i < kTakeOverAddresses && !port && syn != nullptr; ++i) {
        PairPick got;
        if (take_over_pair(candidates[i], in, *syn, now_ms, got)) {
            addr = got.addr;
            port = got.port;
            host = hosts_.find_or_add(in.local_addr);  // the freed session may have been its last
            if (host == nullptr) return drop(r, DropReason::HostTableFull), -1;
        }
    }
    if (!port) return give_up(DropReason::PortsExhausted);

    const FlowKey out(addr, htons(*port), in.remote_addr, in.remote_port, in.proto);
    const int32_t id = sessions_.insert(in, out);
    if (id < 0) {
        ++counters_.insert_failed;
        return give_up(DropReason::SessionTableFull);
    }
    if (!pairs_.add(out)) ++counters_.pair_count_failed;
    Session& s = sessions_.at(static_cast<uint32_t>(id));
    s.pool_id = pool.id;
    s.flags = session_flag::kInUse;
    s.state = TcpState::None;
    s.tclass = in.proto == kProtoTcp   ? TimeoutClass::SynSent
               : in.proto == kProtoUdp ? TimeoutClass::Udp
                                       : TimeoutClass::Icmp;
    s.last_seen_ms = now_ms;
    lru_.append(static_cast<uint32_t>(id));
    if (ports_.acquire(addr, space, *port)) s.flags |= session_flag::kOwnsPort;
    ++host->sessions;
    host->public_addr = addr;
    host->pool_id = pool.id;
    if (in.proto == kProtoTcp) count_embryonic(in.local_addr, host, +1);
    if (in.proto == kProtoUdp) ++counters_.udp_sessions;
    if (in.proto == kProtoIcmp) ++counters_.icmp_sessions;
    ++counters_.sessions_created;
    if (events_ != nullptr) events_->created(s, now_ms);
    if (chunk_created_ < kChunkMax) chunk_created_idx_[chunk_created_++] = static_cast<uint32_t>(id);
    return id;
}

// Starts tracking a TCP connection from its SYN, and keeps the SYN's TSval.
void NatWorker::start_tracking(uint32_t idx, const TcpSegment& syn) {
    Session& s = sessions_.at(idx);
    tcp_open(s, syn);
    if (syn.has_ts) {
        s.flags |= session_flag::kInsideTimestamps;
        inside_tsval_[idx] = syn.tsval;
    }
}

void NatWorker::note_inside_tsval(uint32_t idx, const PacketView& v) {
    uint32_t ts = 0;
    if (!read_tcp_tsval(v, ts)) return;
    Session& s = sessions_.at(idx);
    if (!(s.flags & session_flag::kInsideTimestamps) ||
        static_cast<int32_t>(ts - inside_tsval_[idx]) > 0) {
        s.flags |= session_flag::kInsideTimestamps;
        inside_tsval_[idx] = ts;
    }
}

// The rule a Linux remote applies to a SYN arriving on a TIME_WAIT of the same 4-tuple
// (tcp_timewait_state_process, RFC 6191): with timestamps on both, the SYN's TSval must be newer
// than the last one it saw (or equal, with a higher ISN); otherwise its ISN must lie beyond what
// the old connection sent.
bool NatWorker::remote_accepts_syn(uint32_t idx, const TcpSegment& syn) const {
    const Session& s = sessions_.at(idx);
    const bool isn_beyond = static_cast<int32_t>(syn.seq - s.td_end[kOrig]) > 0;
    if ((s.flags & session_flag::kInsideTimestamps) && syn.has_ts) {
        const int32_t newer = static_cast<int32_t>(syn.tsval - inside_tsval_[idx]);
        return newer > 0 || (newer == 0 && isn_beyond);
    }
    return isn_beyond;
}

// Probes ports of `addr` toward the SYN's remote (bounded) for a pair it may take: a free one;
// else one whose session is over and held only for the remote's TIME_WAIT, if the remote will
// accept this SYN on it (a pair last used by the same inside host first: its timestamps are
// monotonic); else a handshake of the host holding the most (SYN_SENT before SYN_RECV, the
// oldest). The session found is freed.
bool NatWorker::take_over_pair(uint32_t addr, const FlowKey& in, const TcpSegment& syn,
                               uint32_t now_ms, PairPick& got) {
    const PortSpace space = space_of(in.proto);
    uint16_t probes[PortAllocator::kMaxProbes];
    const uint32_t n = ports_.probe_ports(addr, space, probes, PortAllocator::kMaxProbes);
    uint32_t reuse = kNil, reclaim = kNil;
    bool refused = false;
    // Handshakes are taken only from the host holding the most, only when it holds enough to
    // look like a flood (kFloodHandshakes), and at least twice as many as the asking host: hosts
    // on a par do not take each other's pairs (that would only move the failure), and a host
    // does not take its own here (at its cap it recycles them: recycle_own_handshake).
    static constexpr uint32_t kFloodHandshakes = 256;
    const HostEntry* asker = hosts_.find(in.local_addr);
    const uint32_t asker_handshakes = asker != nullptr ? asker->embryonic : 0;
    const bool may_take_from_heavy = in.local_addr != heavy_host_ &&
                                     heavy_count_ >= kFloodHandshakes &&
                                     heavy_count_ >= 2 * (asker_handshakes + 1);
    auto better_handshake = [&](const Session& c) {
        if (reclaim == kNil) return true;
        const Session& b = sessions_.at(reclaim);
        if (c.tclass != b.tclass) return c.tclass == TimeoutClass::SynSent;
        return static_cast<int32_t>(c.last_seen_ms - b.last_seen_ms) < 0;
    };
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t id = sessions_.lookup_outside(
            FlowKey(addr, htons(probes[i]), in.remote_addr, in.remote_port, in.proto));
        if (id < 0) {  // free after all (the count was not exact, or it was just freed)
            got = {addr, probes[i]};
            return true;
        }
        const uint32_t idx = static_cast<uint32_t>(id);
        const Session& c = sessions_.at(idx);
        const bool over = c.state == TcpState::TimeWait || c.state == TcpState::Closed;
        if (over && (c.flags & session_flag::kRemoteHoldsTimeWait)) {
            if (!remote_accepts_syn(idx, syn)) {
                refused = true;
                continue;
            }
            if (c.inside_addr == in.local_addr) {
                reuse = idx;
                break;
            }
            if (reuse == kNil) reuse = idx;
        } else if (is_embryonic(c.tclass) && c.inside_addr == heavy_host_ && may_take_from_heavy &&
                   better_handshake(c)) {
            reclaim = idx;
        }
    }
    if (reuse != kNil) {
        got = {addr, ntohs(sessions_.at(reuse).outside_port)};
        free_session(reuse, DeleteReason::Reused, now_ms);
        ++counters_.pairs_reused_timewait;
        return true;
    }
    if (refused) ++counters_.pairs_reuse_refused;
    if (reclaim != kNil) {
        got = {addr, ntohs(sessions_.at(reclaim).outside_port)};
        free_session(reclaim, DeleteReason::Reclaimed, now_ms);
        ++counters_.sessions_reclaimed;
        return true;
    }
    return false;
}

// The oldest handshake (SYN_SENT first, then SYN_RECV) of one inside host, looking at most
// `scan` sessions into each list; kNil when none is found.
uint32_t NatWorker::oldest_handshake_of(uint32_t host_addr, uint16_t pool_id,
                                        uint32_t scan) const {
    if (pool_id >= kMaxPools) return kNil;
    for (TimeoutClass c : {TimeoutClass::SynSent, TimeoutClass::SynRecv}) {
        uint32_t idx = lru_.head(ExpiryLists::list_of(pool_id, c));
        for (uint32_t i = 0; i < scan && idx != kNil; ++i) {
            const Session& s = sessions_.at(idx);
            if (s.inside_addr == host_addr) return idx;
            idx = s.lru_next;
        }
    }
    return kNil;
}

// A host at its handshake cap: frees its oldest handshake. `hint` gets the freed pair when it
// led to the same remote, so the new SYN takes it.
bool NatWorker::recycle_own_handshake(uint32_t host_addr, const Pool& pool, const FlowKey& in,
                                      uint32_t now_ms, PairPick& hint) {
    static constexpr uint32_t kScan = 256;
    const uint32_t idx = oldest_handshake_of(host_addr, pool.id, kScan);
    if (idx == kNil) return false;
    const Session& s = sessions_.at(idx);
    if (s.remote_addr == in.remote_addr && s.remote_port == in.remote_port && s.proto == in.proto)
        hint = {s.outside_addr, ntohs(s.outside_port)};
    free_session(idx, DeleteReason::Reclaimed, now_ms);
    ++counters_.sessions_reclaimed;
    return true;
}

void NatWorker::count_embryonic(uint32_t host_addr, HostEntry* host, int delta) {
    if (host == nullptr) return;
    if (delta > 0) {
        ++host->embryonic;
    } else if (host->embryonic > 0) {
        --host->embryonic;
    }
    if (host_addr == heavy_host_ || host->embryonic > heavy_count_) {
        heavy_host_ = host_addr;
        heavy_count_ = host->embryonic;
    }
}

// Moves a session to another expiry class, keeping its host's handshake count.
void NatWorker::reclass(uint32_t idx, TimeoutClass c, uint32_t now_ms) {
    Session& s = sessions_.at(idx);
    const bool was = is_embryonic(s.tclass), will = is_embryonic(c);
    if (was != will) count_embryonic(s.inside_addr, hosts_.find(s.inside_addr), will ? +1 : -1);
    lru_.reclass(idx, c, now_ms);
}

// Table full: evict the oldest session that is cheapest to lose (as conntrack's early drop):
// one lingering after a passive close or RST, else a handshake (of the host holding the most,
// else the oldest: SYN_SENT, then SYN_RECV), else UDP.
bool NatWorker::make_room(uint32_t now_ms) {
    static constexpr TimeoutClass kEvictable[] = {TimeoutClass::Linger, TimeoutClass::SynSent,
                                                  TimeoutClass::SynRecv, TimeoutClass::Udp};
    const uint16_t pools = static_cast<uint16_t>(config_->pools.size());
    for (TimeoutClass c : kEvictable) {
        uint32_t victim = kNil;
        const HostEntry* heavy = c == TimeoutClass::SynSent && heavy_count_ > 0
                                     ? hosts_.find(heavy_host_)
                                     : nullptr;
        if (heavy != nullptr) victim = oldest_handshake_of(heavy_host_, heavy->pool_id, 256);
        if (victim != kNil) {
            free_session(victim, DeleteReason::Evicted, now_ms);
            ++counters_.sessions_evicted;
            return true;
        }
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
    ports_.release(s.outside_addr, space_of(s.proto), ntohs(s.outside_port),
                   (s.flags & session_flag::kOwnsPort) != 0);
    pairs_.remove(SessionTable::outside_key(s));
    if (HostEntry* host = hosts_.find(s.inside_addr)) {
        if (s.proto == kProtoTcp && is_embryonic(s.tclass)) count_embryonic(s.inside_addr, host, -1);
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
        reclass(idx, TimeoutClass::Quarantine, now_ms);
        return;
    }
    const bool handshake = s.proto == kProtoTcp && is_embryonic(s.tclass);
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
