// Writes the seed corpora of the fuzz harnesses: small, real inputs that start the fuzzers
// from the interesting places (valid TCP/UDP/ICMP flows both ways, ICMP errors about live
// sessions, bursts across the engine's chunk size, expiry, full tables, malformed headers,
// configuration files, control requests, frames for the gateway itself).
//
//   make_corpus OUTPUT_DIR SOURCE_ROOT
// writes OUTPUT_DIR/<harness>/<seed> (tests/fuzz/corpus is the committed copy; SOURCE_ROOT is
// where conf/snatgw.conf is read from). Deterministic: running it again gives the same files.
// The formats are documented at the top of each harness.
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "arp.h"
#include "fuzz_support.h"

namespace snatgw::fuzz {
namespace {

using test::ip;
using test::PacketBuilder;
using Bytes = std::vector<uint8_t>;

std::string g_out;
int g_written = 0;

void write_seed(const std::string& harness, const std::string& name, const Bytes& b) {
    const std::string dir = g_out + "/" + harness;
    mkdir(g_out.c_str(), 0755);
    mkdir(dir.c_str(), 0755);
    std::ofstream f(dir + "/" + name, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!f) {
        std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
        std::exit(1);
    }
    ++g_written;
}

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

const uint32_t kHost = ip("198.18.0.1");         // pool "wide"
const uint32_t kStrictHost = ip("198.18.0.130");  // pool "strict"
const uint32_t kRetransHost = ip("198.18.0.200"); // pool "retrans"
const uint32_t kRemote = ip("198.19.0.100");
const uint32_t kRouter = ip("192.0.2.1");

Bytes tcp(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, uint8_t flags, uint32_t seq,
          uint32_t ack, size_t payload = 0, uint8_t ttl = 64) {
    PacketBuilder b;
    b.eth().ipv4(src, dst).ttl(ttl).tcp(sp, dp, seq, ack, flags, 29200);
    if (flags & kTcpSyn) b.tcp_option_mss(1460).tcp_option_wscale(7);
    return b.payload(payload).build();
}
Bytes udp(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, size_t payload = 16, bool zero = false,
          uint8_t ttl = 64) {
    PacketBuilder b;
    b.eth().ipv4(src, dst).ttl(ttl).udp(sp, dp).udp_zero_checksum(zero);
    return b.payload(payload).build();
}
Bytes echo(uint32_t src, uint32_t dst, uint8_t type, uint16_t id, uint16_t seq = 1) {
    return PacketBuilder().eth().ipv4(src, dst).icmp_echo(type, id, seq).payload(32).build();
}
Bytes ip_of(const Bytes& frame) {
    const uint32_t off = ipv4_offset(frame.data(), frame.size());
    return Bytes(frame.begin() + off, frame.end());
}
Bytes icmp_error(uint32_t src, uint32_t dst, uint8_t type, uint8_t code, const Bytes& embedded,
                 size_t keep = 0, bool vlan = false) {
    Bytes e = embedded;
    if (keep != 0 && keep < e.size()) e.resize(keep);
    PacketBuilder b;
    b.eth();
    if (vlan) b.vlan(7);
    b.ipv4(src, dst).icmp_error(type, code, e);
    if (type == kIcmpDestUnreachable && code == 4) b.mtu(1400);
    return b.build();
}
// The IPv4 packet of `frame` cut into fragments of `chunk` payload bytes (a multiple of 8),
// each with its own header (offset, MF, total length, checksum), in order.
std::vector<Bytes> fragments(const Bytes& frame, size_t chunk) {
    const uint32_t off = ipv4_offset(frame.data(), frame.size());
    const size_t ihl = static_cast<size_t>(frame[off] & 0x0f) * 4;
    const size_t total = load_be16(frame.data() + off + 2);
    std::vector<Bytes> out;
    for (size_t pos = 0; pos < total - ihl; pos += chunk) {
        const size_t n = std::min(chunk, total - ihl - pos);
        const bool more = pos + n < total - ihl;
        Bytes f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(off + ihl));
        const auto from = frame.begin() + static_cast<std::ptrdiff_t>(off + ihl + pos);
        f.insert(f.end(), from, from + static_cast<std::ptrdiff_t>(n));
        store_be16(f.data() + off + 2, static_cast<uint16_t>(ihl + n));
        store_be16(f.data() + off + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | (pos / 8)));
        fix_checksums(f.data(), f.size(), false, false);
        out.push_back(std::move(f));
    }
    return out;
}

Bytes arp() {
    Bytes f(42, 0);
    for (int i = 0; i < 6; ++i) f[i] = 0xff;
    f[12] = 0x08;
    f[13] = 0x06;
    return f;
}

// The frame the engine of fuzz_packet sends out for `frame` (the harness's engine with the
// given shape, fresh): lets seeds carry ICMP errors about the real public port.
Bytes translated(uint8_t shape_byte, const std::vector<Bytes>& before, const Bytes& frame) {
    const EngineShape shape = engine_shape(shape_byte);
    const NatConfig cfg = fuzz_nat_config(shape.workers);
    NatWorker w(&cfg, worker_params(shape));
    for (Bytes b : before) {
        Frame f{b.data(), static_cast<uint32_t>(b.size())};
        FrameResult r;
        w.process(Side::Inside, &f, &r, 1, 1000);
    }
    Bytes out = frame;
    Frame f{out.data(), static_cast<uint32_t>(out.size())};
    FrameResult r;
    w.process(Side::Inside, &f, &r, 1, 1000);
    if (r.verdict != Verdict::Forward) {
        std::fprintf(stderr, "make_corpus: the engine did not forward a seed frame\n");
        std::exit(1);
    }
    return out;
}

// ---------------------------------------------------------------------------
// fuzz_packet: shape byte, then records (ctl, length, frame)
// ---------------------------------------------------------------------------

constexpr uint8_t kOutside = 0x01, kFix = 0x02, kAnswer = 0x20, kFlush = 0x40, kExpire = 0x80;
constexpr uint8_t advance(int n) { return static_cast<uint8_t>(n << 2); }  // kAdvanceMs index

struct PacketSeed {
    Bytes b;
    // options: bit 0 cookies (the engine may hold fragments), bits 1-2 the burst's origin.
    explicit PacketSeed(uint8_t shape, uint8_t options = 0x01) {
        b.push_back(shape);
        b.push_back(options);
    }
    PacketSeed& add(uint8_t ctl, const Bytes& f) {
        b.push_back(ctl);
        b.push_back(static_cast<uint8_t>(f.size() >> 8));
        b.push_back(static_cast<uint8_t>(f.size()));
        b.insert(b.end(), f.begin(), f.end());
        return *this;
    }
};

void packet_seeds() {
    const std::string h = "fuzz_packet";
    // A TCP connection, answered by the harness: handshake, data, close from the inside.
    write_seed(h, "tcp_connection", PacketSeed(0x00)
        .add(kAnswer | kFlush, tcp(kHost, kRemote, 40000, 80, kTcpSyn, 1000, 0))
        .add(kFlush, tcp(kHost, kRemote, 40000, 80, kTcpAck, 1001, 0x10000001))
        .add(kAnswer | kFlush, tcp(kHost, kRemote, 40000, 80, kTcpAck | kTcpPsh, 1001, 0x10000001, 100))
        .add(kAnswer | kFlush, tcp(kHost, kRemote, 40000, 80, kTcpAck | kTcpFin, 1101, 0x10000001))
        .add(advance(3) | kExpire, tcp(kHost, kRemote, 40000, 80, kTcpAck, 1102, 0x10000002)).b);
    // The same on the strict and retrans-ok pools, with a retransmitted SYN and an RST.
    write_seed(h, "tcp_strict_retrans", PacketSeed(0x10)
        .add(kAnswer, tcp(kStrictHost, kRemote, 40001, 443, kTcpSyn, 5000, 0))
        .add(kAnswer | kFlush, tcp(kRetransHost, kRemote, 40002, 443, kTcpSyn, 7000, 0))
        .add(kAnswer | kFlush, tcp(kStrictHost, kRemote, 40001, 443, kTcpSyn, 5000, 0))
        .add(kFlush, tcp(kStrictHost, kRemote, 40001, 443, kTcpAck, 5001, 0x10000001))
        .add(kAnswer | kFlush, tcp(kStrictHost, kRemote, 40001, 443, kTcpAck, 900000, 0x10000001, 10))
        .add(kFlush, tcp(kRetransHost, kRemote, 40002, 443, kTcpRst, 7001, 0)).b);
    // UDP from hosts of all three pools, with and without checksum, answered; one on a VLAN.
    {
        PacketSeed s(0x00);
        s.add(kAnswer, udp(kHost, kRemote, 5353, 53))
            .add(kAnswer, udp(kStrictHost, kRemote, 5354, 53, 0, true))
            .add(kAnswer, udp(kRetransHost, ip("203.0.113.9"), 5355, 123, 48))
            .add(kAnswer | kFlush, udp(ip("10.1.2.3"), kRemote, 1, 65535, 1));
        Bytes v = PacketBuilder().eth().vlan(42).ipv4(kHost, kRemote).udp(6000, 7000).payload(8).build();
        s.add(kAnswer | kFlush, v);
        write_seed(h, "udp_pools", s.b);
    }
    // ICMP echo both ways, an unsolicited echo request from outside, ARP (punted).
    write_seed(h, "icmp_echo", PacketSeed(0x00)
        .add(kAnswer | kFlush, echo(kHost, kRemote, kIcmpEchoRequest, 0x1234))
        .add(kAnswer | kFlush, echo(kStrictHost, kRemote, kIcmpEchoRequest, 0))
        .add(kOutside | kFlush, echo(kRemote, ip("198.19.0.10"), kIcmpEchoRequest, 9))
        .add(kOutside | kFlush, arp())
        .add(kFlush, arp()).b);
    // 40 UDP flows in one burst (more than the engine's chunk of 32), answered in one burst.
    {
        PacketSeed s(0x20);
        for (int i = 0; i < 40; ++i)
            s.add(kAnswer, udp(ip("198.18.0.0") | static_cast<uint32_t>(1 + i % 5), kRemote,
                               static_cast<uint16_t>(20000 + i), 53, 4));
        write_seed(h, "burst_40", s.b);
    }
    // A table of 16 sessions overflowing (eviction), one host over the strict pool's cap, the
    // retrans-ok pool's ports running out, 3 hosts in a host table of 2.
    {
        PacketSeed s(0xc0);
        for (int i = 0; i < 20; ++i)
            s.add(i % 3 == 0 ? kAnswer : 0, tcp(kHost, kRemote, static_cast<uint16_t>(30000 + i), 80, kTcpSyn, 1, 0));
        s.add(kFlush, udp(ip("198.18.0.2"), kRemote, 1, 2));
        s.add(kFlush, udp(ip("198.18.0.3"), kRemote, 1, 2));
        write_seed(h, "table_full", s.b);
        PacketSeed t(0x10);
        for (int i = 0; i < 6; ++i) t.add(0, udp(kStrictHost, kRemote, static_cast<uint16_t>(100 + i), 53));
        for (int i = 0; i < 20; ++i) t.add(0, udp(kRetransHost, kRemote, static_cast<uint16_t>(200 + i), 53));
        write_seed(h, "limits", t.b);
    }
    // Idle expiry: UDP and TCP sessions, time moves past their timeouts, late answers.
    write_seed(h, "expiry", PacketSeed(0x00)
        .add(kAnswer | kFlush, udp(kStrictHost, kRemote, 4000, 53))
        .add(kAnswer | kFlush, tcp(kStrictHost, kRemote, 4001, 80, kTcpSyn, 1, 0))
        .add(advance(4) | kExpire | kAnswer | kFlush, udp(kStrictHost, kRemote, 4002, 53))
        .add(advance(5) | kExpire | kFlush, tcp(kStrictHost, kRemote, 4001, 80, kTcpSyn, 1, 0))
        .add(advance(6) | kExpire | kAnswer | kFlush, udp(kHost, kRemote, 4003, 53))
        .add(advance(7) | kExpire | kFlush, udp(kHost, kRemote, 4003, 53)).b);
    // Two workers: outside frames for the other worker's ports are handed off.
    write_seed(h, "handoff", PacketSeed(0x01)
        .add(kAnswer | kFlush, udp(kHost, kRemote, 1000, 53))
        .add(kOutside, udp(kRemote, ip("198.19.0.10"), 53, 64513))
        .add(kOutside | kFlush, udp(kRemote, ip("198.19.0.11"), 53, 64514)).b);
    // TTL 1 and 0 from the inside (time exceeded), TTL 1 on an established flow.
    write_seed(h, "ttl", PacketSeed(0x00)
        .add(kFlush, udp(kHost, kRemote, 1, 2, 4, false, 1))
        .add(kAnswer | kFlush, udp(kHost, kRemote, 3, 4))
        .add(kFlush, udp(kHost, kRemote, 3, 4, 4, false, 1))
        .add(kFlush, tcp(kHost, kRemote, 5, 6, kTcpSyn, 1, 0, 0, 0)).b);
    // ICMP errors about live sessions: from a router (outside) about our SYN and UDP datagram,
    // from the inside host about the answer it got.
    {
        const Bytes syn = tcp(kHost, kRemote, 40000, 80, kTcpSyn, 1000, 0);
        const Bytes dgram = udp(kHost, kRemote, 5353, 53);
        const Bytes syn_out = translated(0x00, {}, syn);
        const Bytes dgram_out = translated(0x00, {syn}, dgram);
        write_seed(h, "icmp_error_outside", PacketSeed(0x00)
            .add(0, syn).add(kFlush, dgram)
            .add(kOutside, icmp_error(kRouter, load_be32(syn_out.data() + 14 + 12), kIcmpTimeExceeded, 0, ip_of(syn_out)))
            .add(kOutside | kFlush, icmp_error(kRemote, load_be32(dgram_out.data() + 14 + 12), kIcmpDestUnreachable, 3,
                                                ip_of(dgram_out), 28)).b);
        // The answer as the inside host received it: remote -> inside, TTL 63.
        const Bytes answer = udp(kRemote, kHost, 53, 5353, 16, false, 63);
        write_seed(h, "icmp_error_inside", PacketSeed(0x00)
            .add(kAnswer | kFlush, dgram)
            .add(kFlush, icmp_error(kHost, kRemote, kIcmpDestUnreachable, 3, ip_of(answer)))
            .add(kFlush, icmp_error(kHost, kRemote, kIcmpDestUnreachable, 3, ip_of(answer), 28, true)).b);
    }
    // Malformed frames (checksums repaired by the harness so they reach the later checks).
    {
        PacketSeed s(0x00);
        Bytes f = udp(kHost, kRemote, 1, 2);
        s.add(0, Bytes(f.begin(), f.begin() + 13));                         // no Ethernet header
        s.add(kFix, Bytes(f.begin(), f.begin() + 30));                      // IPv4 cut off
        Bytes bad_ihl = f; bad_ihl[14] = 0x44; s.add(kFix, bad_ihl);        // IHL 16
        Bytes long_total = f; long_total[17] = 0xff; s.add(kFix, long_total);
        Bytes frag = PacketBuilder().eth().ipv4(kHost, kRemote).frag(0, true).udp(1, 2).payload(8).build();
        s.add(0, frag);
        Bytes opts = PacketBuilder().eth().ipv4(kHost, kRemote).ip_options(8).tcp(7, 8, 1, 0, kTcpSyn).build();
        s.add(kAnswer, opts);
        Bytes doff = tcp(kHost, kRemote, 9, 10, kTcpSyn, 1, 0); doff[14 + 20 + 12] = 0xf0; s.add(kFix, doff);
        Bytes ulen = f; ulen[14 + 20 + 5] = 4; s.add(kFix, ulen);
        s.add(0, PacketBuilder().eth().ipv4(kHost, kRemote).ip_proto(47).payload(20).build());
        s.add(kFix | kFlush, PacketBuilder().eth().ipv4(kHost, kRemote).tcp(1, 2, 0, 0, kTcpSyn | kTcpFin).build());
        write_seed(h, "malformed", s.b);
    }
    // Fragments (virtual reassembly): in order, out of order (held, then released by the
    // first), without cookies, from the outside to a live session, via the fragment owner with
    // two workers, expiring while held, TCP and malformed ones, overlapping ones.
    {
        const Bytes big = udp(kHost, kRemote, 5000, 53, 1200);
        const std::vector<Bytes> fr = fragments(big, 512);
        const Bytes ping = PacketBuilder().eth().ipv4(kHost, kRemote).ip_id(0x777)
                               .icmp_echo(kIcmpEchoRequest, 0x42, 1).payload(1000).build();
        const std::vector<Bytes> pf = fragments(ping, 400);
        write_seed(h, "fragments_in_order", PacketSeed(0x00)
            .add(0, fr[0]).add(0, fr[1]).add(kFlush, fr[2]).add(0, pf[0]).add(0, pf[1]).add(kFlush, pf[2]).b);
        write_seed(h, "fragments_out_of_order", PacketSeed(0x00)
            .add(kFlush, fr[2]).add(kFlush, fr[1]).add(kFlush, fr[0])
            .add(kFlush, pf[1]).add(0, pf[2]).add(kFlush, pf[0]).b);
        write_seed(h, "fragments_no_cookies", PacketSeed(0x00, 0x00)
            .add(kFlush, fr[1]).add(0, fr[0]).add(kFlush, fr[2]).b);
        write_seed(h, "fragments_held_expire", PacketSeed(0x20)
            .add(kFlush, fr[1]).add(advance(4) | kExpire | kFlush, pf[1]).add(kFlush, fr[0]).b);
        // Outside: a datagram to the public port of a live UDP session.
        const Bytes dgram = udp(kHost, kRemote, 5353, 53);
        const Bytes out = translated(0x00, {}, dgram);
        const uint32_t pub = load_be32(out.data() + 14 + 12);
        const uint16_t pub_port = load_be16(out.data() + 14 + 20);
        const std::vector<Bytes> back = fragments(udp(kRemote, pub, 53, pub_port, 900), 304);
        write_seed(h, "fragments_outside", PacketSeed(0x00)
            .add(kFlush, dgram).add(kOutside, back[1]).add(kOutside, back[0]).add(kOutside | kFlush, back[2]).b);
        // Two workers; the outside burst comes from worker 1 (handed over by the fragment owner).
        const Bytes out2 = translated(0x01, {}, dgram);
        const std::vector<Bytes> back2 = fragments(
            udp(kRemote, load_be32(out2.data() + 14 + 12), 53, load_be16(out2.data() + 14 + 20), 900), 304);
        write_seed(h, "fragments_two_workers", PacketSeed(0x01, 0x01 | (2 << 1))
            .add(kAnswer | kFlush, dgram).add(kOutside, back2[0]).add(kOutside, back2[2]).add(kOutside | kFlush, back2[1]).b);
        // More datagrams waiting than the harness's tables hold (8 datagrams, 16 fragments):
        // eviction and a full hold.
        {
            PacketSeed flood(0x00);
            std::vector<std::vector<Bytes>> dg;
            for (uint16_t id = 0; id < 12; ++id)
                dg.push_back(fragments(PacketBuilder().eth().ipv4(kHost, kRemote).ip_id(static_cast<uint16_t>(0x100 + id))
                                           .udp(static_cast<uint16_t>(7000 + id), 53).payload(700).build(), 240));
            for (const auto& d : dg) flood.add(0, d[2]).add(0, d[1]);
            for (const auto& d : dg) flood.add(0, d[0]);
            write_seed(h, "fragments_flood", flood.b);
        }
        const std::vector<Bytes> tf = fragments(tcp(kHost, kRemote, 1, 2, kTcpAck, 1, 1, 600), 304);
        Bytes odd = fr[0];
        store_be16(odd.data() + 14 + 2, static_cast<uint16_t>(load_be16(odd.data() + 14 + 2) - 3));
        odd.resize(odd.size() - 3);
        fix_checksums(odd.data(), odd.size(), false, false);
        const std::vector<Bytes> overlap = fragments(big, 256);
        write_seed(h, "fragments_odd", PacketSeed(0x00)
            .add(0, tf[0]).add(kFlush, tf[1]).add(kFlush, odd).add(0, overlap[0]).add(0, fr[0]).add(0, overlap[2])
            .add(0, fr[1]).add(kFlush, overlap[1]).b);
    }
}

// ---------------------------------------------------------------------------
// fuzz_icmp_error: header fields (see the harness), then mutations
// ---------------------------------------------------------------------------

void icmp_error_seeds() {
    const std::string h = "fuzz_icmp_error";
    // shape, flow, host, iport(2), remote, rport(2), payload, type_sel, type_raw, code, rest(4),
    // ttl, extra, router
    auto seed = [](uint8_t shape, uint8_t flow, uint8_t host, uint8_t type_sel, uint8_t code, uint8_t ttl,
                   uint8_t extra, uint8_t payload = 16) {
        return Bytes{shape, flow, host, 0x9c, 0x40, 7, 0, 80, payload, type_sel, 0, code, 0, 0, 5, 0x78,
                     ttl, extra, 2};
    };
    const char* protos[4] = {"tcp", "udp", "udp0", "echo"};
    for (uint8_t p = 0; p < 4; ++p) {
        for (uint8_t dir = 0; dir < 2; ++dir) {
            const std::string base = std::string(protos[p]) + (dir ? "_from_inside" : "_from_outside");
            const uint8_t flow = static_cast<uint8_t>(p | dir << 2);
            write_seed(h, base + "_whole", seed(0x00, flow | 0x10, 1, 0, 3, 64, 0));
            write_seed(h, base + "_ip8", seed(0x00, flow, 130, 1, 0, 64, 0));
            write_seed(h, base + "_vlan_partial", seed(0x11, flow | 0x08, 200, 2, 0, 64, 12));
        }
    }
    write_seed(h, "tcp_established_from_outside", seed(0x00, 0x80 | 0x10, 1, 0, 4, 64, 0));
    write_seed(h, "tcp_established_from_inside", seed(0x00, 0x80 | 0x04, 1, 1, 0, 64, 0));
    write_seed(h, "ttl_1", seed(0x00, 0x01, 1, 1, 0, 1, 0));
    write_seed(h, "too_short", seed(0x00, 0x01, 1, 0, 3, 64, 253));
    write_seed(h, "raw_type", seed(0x00, 0x01, 1, 3, 0, 64, 0));
    Bytes m = seed(0x00, 0x20 | 0x10 | 0x01, 1, 0, 3, 64, 0);
    for (uint8_t b : {3, 0, 50, 0x40, 0, 14 + 20 + 8 + 9, 0x07, 0, 14 + 20 + 8 + 20 + 2, 0x01}) m.push_back(b);
    write_seed(h, "mutated", m);
}

// ---------------------------------------------------------------------------
// fuzz_translate: ctl, address, port, frame
// ---------------------------------------------------------------------------

void translate_seeds() {
    const std::string h = "fuzz_translate";
    auto seed = [](uint8_t ctl, const Bytes& frame) {
        Bytes b{ctl, 198, 19, 0, 10, 0x04, 0x01};
        b.insert(b.end(), frame.begin(), frame.end());
        return b;
    };
    const Bytes t = tcp(kHost, kRemote, 40000, 80, kTcpSyn, 1000, 0);
    const Bytes u = udp(kHost, kRemote, 5353, 53);
    const Bytes u0 = udp(kHost, kRemote, 5353, 53, 16, true);
    const Bytes e = echo(kHost, kRemote, kIcmpEchoRequest, 0);
    const Bytes zero_echo = PacketBuilder().eth().ipv4(kHost, kRemote).icmp_echo(kIcmpEchoReply, 0, 0).build();
    const Bytes v = PacketBuilder().eth().vlan(3).ipv4(kHost, kRemote).ip_options(4).udp(1, 2).payload(3).build();
    write_seed(h, "tcp_src", seed(0x09, t));
    write_seed(h, "tcp_dst", seed(0x08, t));
    write_seed(h, "udp_src", seed(0x01, u));
    write_seed(h, "udp0_dst", seed(0x00, u0));
    write_seed(h, "echo_src", seed(0x09, e));
    write_seed(h, "echo_zero", seed(0x00, zero_echo));
    write_seed(h, "vlan_options", seed(0x01, v));
    write_seed(h, "error_tcp_whole", seed(0x09, icmp_error(kRouter, kHost, kIcmpTimeExceeded, 0, ip_of(t))));
    write_seed(h, "error_udp_ip8", seed(0x01, icmp_error(kRouter, kHost, kIcmpDestUnreachable, 4, ip_of(u), 28)));
    write_seed(h, "error_udp0", seed(0x00, icmp_error(kHost, kRemote, kIcmpDestUnreachable, 3, ip_of(u0))));
    write_seed(h, "error_echo", seed(0x08, icmp_error(kRouter, kHost, kIcmpParameterProblem, 0, ip_of(e), 0, true)));
    write_seed(h, "error_tcp_20", seed(0x05, icmp_error(kRouter, kHost, kIcmpTimeExceeded, 0, ip_of(t), 38)));
    write_seed(h, "arp", seed(0x00, arp()));
    const std::vector<Bytes> fr = fragments(udp(kHost, kRemote, 5000, 53, 100), 48);
    write_seed(h, "fragment_first", seed(0x11, fr[0]));
    write_seed(h, "fragment_later", seed(0x18, fr[1]));
    write_seed(h, "fragment_last", seed(0x10, fr[2]));
    write_seed(h, "fragment_echo_first", seed(0x19, fragments(echo(kHost, kRemote, kIcmpEchoRequest, 5), 16)[0]));
}

// ---------------------------------------------------------------------------
// fuzz_config: file text, optionally NUL + arguments one per line
// ---------------------------------------------------------------------------

const char* kMinimal =
    "[inside]\ndevice = net_null0\naddress = 10.0.0.1/24\n"
    "[outside]\ndevice = net_null1\naddress = 192.0.2.1/24\n"
    "[pool.p]\naddresses = 192.0.2.10\n"
    "[nat]\nrule = 10.0.0.0/24 p\n";

const char* kFull =
    "# everything set\n"
    "[dataplane]\nworkers = 3\nlcores = 0,2-4\nmbufs = 8191\nburst = 64\nsessions = 1000000\n"
    "hosts = 4096\nidle_polls = 0\nidle_sleep_us = 100000\nsteering = software\nhandoff_ring = 65536\n"
    "forward_unmatched = yes\n"
    "[inside]\ndevice = 0000:03:00.0\naddress = 172.16.0.1/12 ; comment\n"
    "[outside]\ndevice = 03:00.1\naddress = 198.51.100.2/30\ngateway = 198.51.100.1\n"
    "[routes]\nroute = 203.0.113.0/24 via 198.51.100.1\nroute = 192.0.2.128/25 via 198.51.100.1\n"
    "[pool.a-1]\naddresses = 192.0.2.1-192.0.2.3,192.0.2.8/30, 192.0.2.20\nports = 1024-2047\n"
    "policy = strict\ntcp_established = 604800\ntcp_transitory = 1\nudp = 30\nicmp = 10\n"
    "quarantine = 0\nlinger = 1\nmax_sessions_per_host = 100\n"
    "[pool.b_2]\naddresses = 192.0.2.64/28\npolicy = retrans-ok\n"
    "[nat]\nrule = 172.16.0.0/12 a-1\nrule = 172.16.5.0/24 b_2\nrule = 0.0.0.0/0 b_2\n"
    "[control]\nsocket = /tmp/x.sock\nmetrics =\nlog_level = trace\n";

const char* kBroken[] = {
    "[dataplane]\nworkers = 0\n",
    "[dataplane\n",
    "key = value\n",
    "[pool.x]\naddresses = 1.2.3.4\n[pool.x]\n",
    "[inside]\ndevice = a\ndevice = b\n",
    "[unknown]\n",
    "[nat]\nrule = 10.0.0.0/33 p\n",
    "[dataplane]\nlcores = 5-1\n",
};

std::string read_text(const std::string& path) {
    std::ifstream f(path);
    if (!f) {
        std::fprintf(stderr, "cannot read %s\n", path.c_str());
        std::exit(1);
    }
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void config_seeds(const std::string& root) {
    const std::string h = "fuzz_config";
    const std::string lab = read_text(root + "/conf/snatgw.conf");
    write_seed(h, "snatgw_conf", text_bytes(lab));
    write_seed(h, "minimal", text_bytes(kMinimal));
    write_seed(h, "full", text_bytes(kFull));
    // With command-line overrides (after the NUL, one argument per line).
    write_seed(h, "minimal_cli", text_bytes(std::string(kMinimal) + '\0' +
        "--dataplane.workers\n2\n--pool.p.ports=2000-3000\n--pool.q.addresses\n192.0.2.50\n"
        "--nat.rule\n10.0.0.0/25 q\n--check-config\n--\n-l\n0-2"));
    write_seed(h, "lab_cli", text_bytes(lab + '\0' + "--control.log_level=debug\n--outside.gateway\n198.19.0.254\n"
        "--routes.route\n10.9.0.0/16 via 198.19.0.254\n--pool.lab.policy\nstrict"));
    write_seed(h, "help", text_bytes(std::string(kMinimal) + '\0' + "--help"));
    write_seed(h, "stray", text_bytes(std::string(kMinimal) + '\0' + "stray\n--unknown.option\n1"));
    for (std::size_t i = 0; i < std::size(kBroken); ++i)
        write_seed(h, "broken_" + std::to_string(i), text_bytes(std::string(kMinimal) + kBroken[i]));
}

// ---------------------------------------------------------------------------
// fuzz_control: one request line
// ---------------------------------------------------------------------------

void control_seeds() {
    const std::string h = "fuzz_control";
    const std::pair<const char*, const char*> requests[] = {
        {"version", R"({"version":1,"command":"version","id":1})"},
        {"stats", R"({"command":"stats","id":"a"})"},
        {"pools", R"({"command":"pools","args":{},"id":null})"},
        {"sessions", R"({"command":"sessions","args":{"inside":"198.18.0.1:40000","remote":"198.19.0.100",)"
                     R"("proto":"tcp","state":"established","worker":0,"pool":"lab","offset":0,"limit":10000}})"},
        {"sessions_count", R"({"command":"sessions","args":{"outside":"198.19.0.10:1024","count_only":true},"id":[1,{"x":2}]})"},
        {"flush_all", R"({"command":"sessions.flush","args":{"all":true}})"},
        {"flush_filter", R"({"command":"sessions.flush","args":{"proto":"udp","state":"udp","worker":63}})"},
        {"pool_add", R"({"command":"pool.add","args":{"name":"new-1","addresses":"198.19.0.20-198.19.0.23,198.19.1.0/30",)"
                     R"("ports":"1024-65535","policy":"strict","timeouts":{"tcp_established":7440,"quarantine":0},)"
                     R"("max_sessions_per_host":100,"rules":["198.18.1.0/24","10.0.0.0/8"]},"id":{"n":1.5}})"},
        {"pool_add_conflict", R"({"command":"pool.add","args":{"name":"taken","addresses":"198.19.0.30"}})"},
        {"pool_del", R"({"command":"pool.del","args":{"name":"lab"}})"},
        {"pool_del_boom", R"({"command":"pool.del","args":{"name":"boom"}})"},
        {"pool_set", R"({"command":"pool.set","args":{"name":"lab","add_addresses":"198.19.0.12","del_addresses":"198.19.0.10",)"
                     R"("ports":"2000-3000","max_sessions_per_host":0,"rules":[]}})"},
        {"pool_set_missing", R"({"command":"pool.set","args":{"name":"missing","ports":"1-2"}})"},
        {"policy_set", R"({"command":"policy.set","args":{"pool":"lab","policy":"retrans-ok"}})"},
        {"timeouts_set", R"({"command":"timeouts.set","args":{"pool":"lab","timeouts":{"udp":30,"icmp":604800,"linger":1}}})"},
        {"log_level", R"({"command":"log.level","args":{"level":"critical"},"id":-7})"},
        {"save", R"({"command":"save","args":{"path":"/etc/snatgw/snatgw.conf"}})"},
        {"bad_json", R"({"command":"version",)"},
        {"not_object", R"([1,2,3])"},
        {"bad_version", R"({"version":2,"command":"version","id":true})"},
        {"unknown_command", R"({"command":"reboot"})"},
        {"unknown_field", R"({"command":"version","extra":1})"},
        {"unknown_arg", R"({"command":"pool.del","args":{"name":"x","force":true}})"},
        {"wrong_type", R"({"command":"sessions","args":{"limit":"10"}})"},
        {"deep", R"({"command":"version","id":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})"},
        {"unicode", R"({"command":"pool.del","args":{"name":"caf\u00e9"},"id":"\ud83d\ude00"})"},
        {"endpoint", "198.19.0.10:65535"},
        {"proto", "icmp"},
    };
    for (const auto& [name, line] : requests) write_seed(h, name, text_bytes(line));
}

// ---------------------------------------------------------------------------
// fuzz_router: ctl, received frame
// ---------------------------------------------------------------------------

Bytes with_vlan(Bytes f, uint16_t tci) {
    const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)};
    f.insert(f.begin() + 12, tag, tag + 4);
    return f;
}

void router_seeds() {
    const std::string h = "fuzz_router";
    auto seed = [](uint8_t ctl, const Bytes& frame) {
        Bytes b{ctl};
        b.insert(b.end(), frame.begin(), frame.end());
        return b;
    };
    const MacAddr peer{0x02, 0, 0, 0, 0, 0x02};
    auto arp_request = [&](uint32_t sender, uint32_t target) {
        Bytes f(kArpFrameLen);
        f.resize(build_arp_request(f.data(), kArpFrameLen, peer, sender, target));
        return f;
    };
    const Bytes who_has_gw = arp_request(ip("198.18.0.2"), kHost);
    write_seed(h, "arp_request_gateway", seed(0x00, who_has_gw));
    write_seed(h, "arp_request_pool_small_buffer", seed(0x01, arp_request(ip("198.19.0.2"), ip("198.19.0.10"))));
    write_seed(h, "arp_request_vlan", seed(0x00, with_vlan(who_has_gw, 0x2007)));
    write_seed(h, "arp_probe", seed(0x00, arp_request(0, kHost)));
    write_seed(h, "arp_request_other", seed(0x02, arp_request(ip("198.18.0.2"), ip("198.18.0.3"))));
    Bytes gratuitous(kArpFrameLen);
    gratuitous.resize(build_gratuitous_arp(gratuitous.data(), kArpFrameLen, peer, ip("198.18.0.9")));
    write_seed(h, "arp_gratuitous", seed(0x00, gratuitous));
    Bytes reply(kArpFrameLen);
    ArpPacket asked;
    asked.op = kArpOpRequest;
    asked.sender_mac = peer;
    asked.sender_ip = ip("198.18.0.2");
    asked.target_ip = ip("198.18.0.5");
    reply.resize(build_arp_reply(reply.data(), kArpFrameLen, asked, MacAddr{0x02, 0, 0, 0, 0, 0x05}));
    write_seed(h, "arp_reply", seed(0x00, reply));

    write_seed(h, "echo_request", seed(0x00, echo(ip("198.18.0.2"), kHost, kIcmpEchoRequest, 77)));
    write_seed(h, "echo_request_options_vlan", seed(0x04, PacketBuilder().eth().vlan(5).ipv4(ip("198.18.0.2"), kHost)
                                                            .ip_options(12).icmp_echo(kIcmpEchoRequest, 1, 2).payload(56).build()));
    write_seed(h, "ttl1_tcp", seed(0x00, tcp(ip("198.18.0.2"), kRemote, 40000, 80, kTcpSyn, 1, 0, 0, 1)));
    write_seed(h, "ttl1_udp_big", seed(0x04, udp(ip("198.18.0.2"), kRemote, 33434, 33435, 1200, false, 1)));
    write_seed(h, "unreachable_small_buffer", seed(0x07, udp(ip("198.18.0.2"), kRemote, 1, 2, 100)));
    write_seed(h, "frag_needed", seed(0x08, tcp(ip("198.18.0.2"), kRemote, 1, 2, kTcpAck, 1, 1, 1400)));
    write_seed(h, "parameter_problem_options", seed(0x0c, PacketBuilder().eth().ipv4(ip("198.18.0.2"), kRemote)
                                                              .ip_options(40).udp(1, 2).payload(8).build()));
    write_seed(h, "error_about_error", seed(0x00, icmp_error(kRouter, kHost, kIcmpTimeExceeded, 0,
                                                             ip_of(udp(kHost, kRemote, 1, 2)))));
    write_seed(h, "fragment", seed(0x00, PacketBuilder().eth().ipv4(ip("198.18.0.2"), kRemote).frag(10, false)
                                             .ip_proto(17).payload(40).build()));
}

}  // namespace
}  // namespace snatgw::fuzz

int main(int argc, char** argv) {
    using namespace snatgw::fuzz;
    if (argc != 3) {
        std::fprintf(stderr, "usage: make_corpus OUTPUT_DIR SOURCE_ROOT\n");
        return 2;
    }
    g_out = argv[1];
    init_eal();  // translated() runs the engine to learn public ports
    packet_seeds();
    icmp_error_seeds();
    translate_seeds();
    config_seeds(argv[2]);
    control_seeds();
    router_seeds();
    std::printf("%d seeds written to %s\n", g_written, g_out.c_str());
    rte_eal_cleanup();
    return 0;
}
