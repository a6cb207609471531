// Tests dataplane/checksum.h (RFC 1071 sums, RFC 1624 incremental updates) and the header rewrites of dataplane/translate.h against full recomputation.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "byte_order.h"
#include "checksum.h"
#include "packet_builder.h"
#include "packet_view.h"
#include "translate.h"

namespace snatgw::test {
namespace {

// Raw (in-memory, wire order) value of a host-order number: what translate.h and csum:: expect.
uint16_t wire16(uint16_t host) {
    uint8_t b[2];
    store_be16(b, host);
    return csum::load16(b);
}
uint32_t wire32(uint32_t host) {
    uint8_t b[4];
    store_be32(b, host);
    return csum::load32(b);
}

// True when the one's-complement sum over the bytes (checksum field included) is 0xffff.
bool sums_to_ffff(const uint8_t* p, std::size_t len) { return csum::fold(csum::partial(p, len)) == 0xffff; }

// Full recomputation of the checksum stored at csum_off (field treated as zero).
uint16_t recompute(std::vector<uint8_t> buf, std::size_t csum_off) {
    buf[csum_off] = 0;
    buf[csum_off + 1] = 0;
    return csum::compute(buf.data(), buf.size());
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, std::size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

// The incremental result (already stored at c) must equal recomputation and verify. The one
// exception is a buffer whose bytes outside the checksum field are all zero: recomputation gives
// 0xffff (~0) while RFC 1624 eqn. 3 gives 0x0000 (RFC 1624 sec. 3: +0 only when all octets are
// zero, which no IPv4/TCP/UDP header or pseudo-header can be).
::testing::AssertionResult agrees(uint16_t updated, const std::vector<uint8_t>& buf, std::size_t c) {
    const uint16_t full = recompute(buf, c);
    bool all_zero = true;
    for (std::size_t i = 0; i < buf.size(); ++i)
        if ((i < c || i >= c + 2) && buf[i] != 0) all_zero = false;
    if (all_zero && updated == 0x0000) return ::testing::AssertionSuccess();
    if (updated != full) return ::testing::AssertionFailure() << "incremental " << updated << " recomputed " << full;
    if (!sums_to_ffff(buf.data(), buf.size())) return ::testing::AssertionFailure() << "does not verify";
    return ::testing::AssertionSuccess();
}

// Random even offset o with o + width <= len and [o, o+width) not overlapping [c, c+2).
std::size_t pick_field(std::mt19937& rng, std::size_t len, std::size_t c, std::size_t width) {
    while (true) {
        const std::size_t o = (rng() % ((len - width) / 2 + 1)) * 2;
        if (o + width <= c || o >= c + 2) return o;
    }
}

// ---------------------------------------------------------------------------------------------
// csum:: primitives
// ---------------------------------------------------------------------------------------------

TEST(ChecksumCompute, Rfc1071Ipv4HeaderVector) {
    // 4500 0073 0000 4000 4011 [0000] c0a8 0001 c0a8 00c7 -> b861 (the classic example).
    std::vector<uint8_t> h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                              0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    const uint16_t c = csum::compute(h.data(), h.size());
    csum::store16(h.data() + 10, c);
    EXPECT_EQ(h[10], 0xb8);
    EXPECT_EQ(h[11], 0x61);
    EXPECT_EQ(load_be16(h.data() + 10), 0xb861);
    EXPECT_TRUE(sums_to_ffff(h.data(), h.size()));
    EXPECT_EQ(csum::compute(h.data(), h.size()), 0x0000);  // a verified header computes to zero
    // One flipped bit anywhere breaks it.
    for (std::size_t i = 0; i < h.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            std::vector<uint8_t> bad = h;
            bad[i] = static_cast<uint8_t>(bad[i] ^ (1u << bit));
            EXPECT_FALSE(sums_to_ffff(bad.data(), bad.size())) << "byte " << i << " bit " << bit;
        }
    }
}

TEST(ChecksumCompute, KnownSmallVectors) {
    auto be = [](std::vector<uint8_t> bytes) {
        uint8_t out[2];
        csum::store16(out, csum::compute(bytes.data(), bytes.size()));
        return static_cast<uint16_t>((out[0] << 8) | out[1]);
    };
    EXPECT_EQ(be({}), 0xffff);                        // empty sum 0 -> ~0
    EXPECT_EQ(be({0x00, 0x00}), 0xffff);
    EXPECT_EQ(be({0xff, 0xff}), 0x0000);
    EXPECT_EQ(be({0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}), 0x220d);  // RFC 1071 sec. 3: sum ddf2
    EXPECT_EQ(be({0x01}), 0xfeff);                     // odd: 0x0100
    EXPECT_EQ(be({0x01, 0x02, 0x03}), 0xfbfd);         // 0x0102 + 0x0300 = 0x0402
    EXPECT_EQ(be({0xff, 0xff, 0xff}), 0x00ff);         // 0xffff + 0xff00 = 0x1feff -> 0xff00
    EXPECT_EQ(be({0x80, 0x00, 0x80, 0x00}), 0xfffe);   // carry: 0x10000 -> 0x0001
}

TEST(ChecksumCompute, MatchesReferenceForRandomAndOddLengths) {
    std::mt19937 rng(0x5eed0001);
    for (int iter = 0; iter < 3000; ++iter) {
        const std::size_t len = rng() % 1600;
        const std::vector<uint8_t> buf = random_bytes(rng, len);
        uint8_t got[2];
        csum::store16(got, csum::compute(buf.data(), buf.size()));
        const uint16_t want = inet_checksum(buf.data(), buf.size());  // independent big-endian version
        ASSERT_EQ(static_cast<uint16_t>((got[0] << 8) | got[1]), want) << "len " << len;
    }
}

TEST(ChecksumCompute, LongAllOnesBuffersExerciseCarryFolding) {
    // Enough 0xffff words to cross the 0x80000000 intermediate fold in csum::partial.
    for (std::size_t len : {std::size_t{65536}, std::size_t{131071}, std::size_t{200001}, std::size_t{262144}}) {
        std::vector<uint8_t> buf(len, 0xff);
        uint8_t got[2];
        csum::store16(got, csum::compute(buf.data(), buf.size()));
        EXPECT_EQ(static_cast<uint16_t>((got[0] << 8) | got[1]), inet_checksum(buf.data(), buf.size())) << len;
    }
    std::mt19937 rng(77);
    std::vector<uint8_t> buf(300000);
    for (auto& b : buf) b = static_cast<uint8_t>(0xf0 | (rng() & 0x0f));
    uint8_t got[2];
    csum::store16(got, csum::compute(buf.data(), buf.size()));
    EXPECT_EQ(static_cast<uint16_t>((got[0] << 8) | got[1]), inet_checksum(buf.data(), buf.size()));
}

TEST(ChecksumCompute, PartialChainsOverEvenPieces) {
    std::mt19937 rng(4242);
    for (int iter = 0; iter < 500; ++iter) {
        const std::size_t len = 2 + rng() % 600;
        const std::vector<uint8_t> buf = random_bytes(rng, len);
        const std::size_t cut = (rng() % (len / 2 + 1)) * 2;
        const uint32_t chained = csum::partial(buf.data() + cut, len - cut, csum::partial(buf.data(), cut));
        EXPECT_EQ(csum::finish(chained), csum::compute(buf.data(), len));
    }
}

TEST(ChecksumIncremental, Update16AgreesWithRecomputation) {
    std::mt19937 rng(0xc0ffee);
    for (int iter = 0; iter < 3000; ++iter) {
        const std::size_t len = 4 + rng() % 300;  // odd lengths included
        std::vector<uint8_t> buf = random_bytes(rng, len);
        const std::size_t c = (rng() % ((len - 2) / 2 + 1)) * 2;
        csum::store16(buf.data() + c, recompute(buf, c));
        ASSERT_TRUE(sums_to_ffff(buf.data(), len));
        for (int change = 0; change < 8; ++change) {
            const std::size_t o = pick_field(rng, len, c, 2);
            const uint16_t old_val = csum::load16(buf.data() + o);
            // Sometimes a no-op or an extreme value.
            uint16_t new_val = static_cast<uint16_t>(rng());
            switch (rng() % 8) {
                case 0: new_val = old_val; break;
                case 1: new_val = 0x0000; break;
                case 2: new_val = 0xffff; break;
                default: break;
            }
            const uint16_t check = csum::load16(buf.data() + c);
            csum::store16(buf.data() + o, new_val);
            const uint16_t updated = csum::update16(check, old_val, new_val);
            csum::store16(buf.data() + c, updated);
            ASSERT_TRUE(agrees(updated, buf, c)) << "iter " << iter << " len " << len << " csum@" << c << " field@" << o;
        }
    }
}

TEST(ChecksumIncremental, Update32AgreesWithRecomputation) {
    std::mt19937 rng(0xbadf00d);
    for (int iter = 0; iter < 3000; ++iter) {
        const std::size_t len = 8 + rng() % 300;  // >= 8: a 4-byte field always fits beside the checksum
        std::vector<uint8_t> buf = random_bytes(rng, len);
        const std::size_t c = (rng() % ((len - 2) / 2 + 1)) * 2;
        csum::store16(buf.data() + c, recompute(buf, c));
        for (int change = 0; change < 8; ++change) {
            const std::size_t o = pick_field(rng, len, c, 4);
            const uint32_t old_val = csum::load32(buf.data() + o);
            uint32_t new_val = static_cast<uint32_t>(rng());
            if (rng() % 8 == 0) new_val = old_val;
            if (rng() % 8 == 0) new_val = 0xffffffffu;
            if (rng() % 8 == 0) new_val = 0;
            const uint16_t check = csum::load16(buf.data() + c);
            csum::store32(buf.data() + o, new_val);
            const uint16_t updated = csum::update32(check, old_val, new_val);
            csum::store16(buf.data() + c, updated);
            ASSERT_TRUE(agrees(updated, buf, c)) << "iter " << iter << " len " << len << " csum@" << c << " field@" << o;
        }
    }
}

TEST(ChecksumIncremental, Rfc1624Section3Example) {
    // RFC 1624 sec. 3: checksum 0xDD2F, a field 0x5555 -> 0x3285, the rest of the header sums to
    // 0xCD7A. Eqn. 3 must give 0x0000 (what recomputation gives), where RFC 1141's eqn. gave 0xFFFF.
    std::vector<uint8_t> h = {0x55, 0x55, 0xdd, 0x2f, 0xcd, 0x7a};
    ASSERT_TRUE(sums_to_ffff(h.data(), h.size()));
    ASSERT_EQ(recompute(h, 2), csum::load16(h.data() + 2));
    const uint8_t new_field[2] = {0x32, 0x85};
    const uint16_t updated = csum::update16(csum::load16(h.data() + 2), csum::load16(h.data()), csum::load16(new_field));
    h[0] = 0x32;
    h[1] = 0x85;
    csum::store16(h.data() + 2, updated);
    EXPECT_EQ(h[2], 0x00);
    EXPECT_EQ(h[3], 0x00);
    EXPECT_EQ(updated, recompute(h, 2));
    // Both representations of zero verify by summing to 0xffff.
    EXPECT_TRUE(sums_to_ffff(h.data(), h.size()));
    h[2] = h[3] = 0xff;
    EXPECT_TRUE(sums_to_ffff(h.data(), h.size()));
    // Updating from the 0xffff representation lands on the same value for the next change.
    const uint8_t back[2] = {0x55, 0x55};
    const uint16_t from_ffff = csum::update16(0xffff, csum::load16(h.data()), csum::load16(back));
    const uint16_t from_0000 = csum::update16(0x0000, csum::load16(h.data()), csum::load16(back));
    EXPECT_EQ(load_be16(reinterpret_cast<const uint8_t*>(&from_0000)), 0xdd2f);
    EXPECT_EQ(from_ffff, from_0000);
}

TEST(ChecksumIncremental, Ipv4HeaderWhoseChecksumBecomesZero) {
    // Find an IPv4 header (by IP id) whose checksum after a TTL decrement is 0x0000 by full
    // recomputation; the incremental update must give 0x0000 too, and the header must verify
    // with 0x0000 and with 0xffff (parse_frame accepts both).
    bool found = false;
    for (uint32_t id = 0; id <= 0xffff && !found; ++id) {
        std::vector<uint8_t> f = PacketBuilder().eth().ipv4(ip("198.18.0.7"), ip("198.19.0.100"))
                                     .ttl(64).ip_id(static_cast<uint16_t>(id)).udp(1000, 2000).payload(4).build();
        uint8_t* iph = f.data() + 14;
        std::vector<uint8_t> after(iph, iph + 20);
        after[8] = 63;
        after[10] = after[11] = 0;
        if (inet_checksum(after.data(), 20) != 0x0000) continue;
        found = true;
        PacketView v;
        ASSERT_EQ(parse_frame(f.data(), static_cast<uint32_t>(f.size()), v).cls, FrameClass::Ipv4);
        decrement_ttl(v);
        EXPECT_EQ(iph[8], 63);
        EXPECT_EQ(iph[10], 0x00) << "id " << id;
        EXPECT_EQ(iph[11], 0x00) << "id " << id;
        EXPECT_TRUE(sums_to_ffff(iph, 20));
        EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
        PacketView v2;
        EXPECT_EQ(parse_frame(f.data(), static_cast<uint32_t>(f.size()), v2).cls, FrameClass::Ipv4);
        iph[10] = iph[11] = 0xff;
        EXPECT_TRUE(sums_to_ffff(iph, 20));
        EXPECT_EQ(parse_frame(f.data(), static_cast<uint32_t>(f.size()), v2).cls, FrameClass::Ipv4);
        EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
    }
    EXPECT_TRUE(found);
}

// ---------------------------------------------------------------------------------------------
// translate.h on parsed packets
// ---------------------------------------------------------------------------------------------

struct Shape {
    bool vlan;
    std::size_t ip_opts;
};
const Shape kShapes[] = {{false, 0}, {true, 0}, {false, 8}, {true, 40}};

std::string shape_name(const Shape& s) {
    std::string n = s.vlan ? "vlan" : "untagged";
    n += " ipopts=";
    n += std::to_string(s.ip_opts);
    return n;
}

PacketBuilder base(const Shape& s, uint32_t src, uint32_t dst) {
    PacketBuilder b;
    b.eth().ipv4(src, dst).ttl(64).ip_id(0x4d2).df();
    if (s.vlan) b.vlan(42, 5);
    if (s.ip_opts) b.ip_options(s.ip_opts);
    return b;
}

PacketView parse_ok(std::vector<uint8_t>& f) {
    PacketView v;
    const ParseResult r = parse_frame(f.data(), static_cast<uint32_t>(f.size()), v);
    EXPECT_EQ(r.cls, FrameClass::Ipv4) << drop_reason_name(r.reason);
    return v;
}

enum class L4Kind { Tcp, Udp, UdpNoCsum, IcmpEcho };

// A frame of the given kind; addresses/ports as given (ICMP: sport is the identifier).
std::vector<uint8_t> make(L4Kind k, const Shape& s, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
    PacketBuilder b = base(s, src, dst);
    switch (k) {
        case L4Kind::Tcp:
            b.tcp(sport, dport, 0x01020304, 0xa0b0c0d0, TCP_ACK | TCP_PSH, 29200).tcp_option_mss(1460).tcp_option_wscale(7).payload(37);
            break;
        case L4Kind::Udp:
            b.udp(sport, dport).payload(25);
            break;
        case L4Kind::UdpNoCsum:
            b.udp(sport, dport).udp_zero_checksum().payload(25);
            break;
        case L4Kind::IcmpEcho:
            b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, sport, 9).payload(33);
            break;
    }
    return b.build();
}

const char* kind_name(L4Kind k) {
    switch (k) {
        case L4Kind::Tcp: return "tcp";
        case L4Kind::Udp: return "udp";
        case L4Kind::UdpNoCsum: return "udp-nocsum";
        case L4Kind::IcmpEcho: return "icmp-echo";
    }
    return "?";
}

TEST(ChecksumTranslate, RewriteSourceMatchesFreshBuild) {
    const uint32_t in_addr = ip("198.18.0.5"), pub = ip("198.19.0.10"), srv = ip("198.19.0.100");
    for (L4Kind k : {L4Kind::Tcp, L4Kind::Udp, L4Kind::UdpNoCsum, L4Kind::IcmpEcho}) {
        for (const Shape& s : kShapes) {
            SCOPED_TRACE(std::string(kind_name(k)) + " " + shape_name(s));
            const uint16_t dport = k == L4Kind::IcmpEcho ? 40000 : 443;
            std::vector<uint8_t> f = make(k, s, in_addr, 40000, srv, dport);
            const PacketView v = parse_ok(f);
            rewrite_source(v, wire32(pub), wire16(1234));
            ASSERT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
            const auto d = decode(f);
            ASSERT_TRUE(d);
            EXPECT_EQ(d->src, pub);
            EXPECT_EQ(d->dst, srv);
            if (k == L4Kind::IcmpEcho) {
                EXPECT_EQ(d->icmp_id, 1234);
                EXPECT_EQ(d->icmp_seq, 9);
            } else {
                EXPECT_EQ(d->sport, 1234);
                EXPECT_EQ(d->dport, 443);
            }
            if (k == L4Kind::UdpNoCsum) {
                EXPECT_EQ(d->udp_checksum, 0);
            }
            EXPECT_EQ(d->ttl, 64);  // rewrite does not touch TTL
            // Byte-identical to a frame built from scratch with the new values.
            const std::vector<uint8_t> want = make(k, s, pub, 1234, srv, dport);
            EXPECT_EQ(f, want);
        }
    }
}

TEST(ChecksumTranslate, RewriteDestinationMatchesFreshBuild) {
    const uint32_t in_addr = ip("198.18.0.77"), pub = ip("198.19.0.11"), srv = ip("198.19.0.123");
    for (L4Kind k : {L4Kind::Tcp, L4Kind::Udp, L4Kind::UdpNoCsum, L4Kind::IcmpEcho}) {
        for (const Shape& s : kShapes) {
            SCOPED_TRACE(std::string(kind_name(k)) + " " + shape_name(s));
            const uint16_t sport = k == L4Kind::IcmpEcho ? 61000 : 53;
            std::vector<uint8_t> f = make(k, s, srv, sport, pub, 61000);
            const PacketView v = parse_ok(f);
            rewrite_destination(v, wire32(in_addr), wire16(5353));
            ASSERT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
            const auto d = decode(f);
            ASSERT_TRUE(d);
            EXPECT_EQ(d->src, srv);
            EXPECT_EQ(d->dst, in_addr);
            if (k == L4Kind::IcmpEcho) {
                EXPECT_EQ(d->icmp_id, 5353);
            } else {
                EXPECT_EQ(d->sport, 53);
                EXPECT_EQ(d->dport, 5353);
            }
            if (k == L4Kind::UdpNoCsum) {
                EXPECT_EQ(d->udp_checksum, 0);
            }
            const std::vector<uint8_t> want = make(k, s, srv, k == L4Kind::IcmpEcho ? 5353 : sport, in_addr, 5353);
            EXPECT_EQ(f, want);
        }
    }
}

TEST(ChecksumTranslate, RandomRewritesAlwaysVerify) {
    std::mt19937 rng(0x7a7a7a);
    for (int iter = 0; iter < 4000; ++iter) {
        const L4Kind k = static_cast<L4Kind>(rng() % 4);
        const Shape s{(rng() & 1) != 0, (rng() % 11) * 4};
        const uint32_t a = ip("198.18.0.0") + (rng() & 0x1ffff);
        const uint32_t b = ip("198.18.0.0") + (rng() & 0x1ffff);
        const uint16_t p1 = static_cast<uint16_t>(rng()), p2 = static_cast<uint16_t>(rng());
        const uint32_t na = ip("198.18.0.0") + (rng() & 0x1ffff);
        const uint16_t np = static_cast<uint16_t>(rng());
        const bool src_side = (rng() & 1) != 0;
        std::vector<uint8_t> f = make(k, s, a, p1, b, k == L4Kind::IcmpEcho ? p1 : p2);
        const PacketView v = parse_ok(f);
        std::vector<uint8_t> want;
        if (src_side) {
            rewrite_source(v, wire32(na), wire16(np));
            want = make(k, s, na, np, b, k == L4Kind::IcmpEcho ? np : p2);
        } else {
            rewrite_destination(v, wire32(na), wire16(np));
            want = make(k, s, a, k == L4Kind::IcmpEcho ? np : p1, na, np);
        }
        if (rng() % 2 == 0) {
            decrement_ttl(v);
            want[v.l3_off + 8] = 63;
            want[v.l3_off + 10] = want[v.l3_off + 11] = 0;
            const uint16_t c = inet_checksum(want.data() + v.l3_off, v.l4_off - v.l3_off);
            want[v.l3_off + 10] = static_cast<uint8_t>(c >> 8);
            want[v.l3_off + 11] = static_cast<uint8_t>(c);
        }
        ASSERT_TRUE(verify_checksums(f).ok) << kind_name(k) << " iter " << iter << ": " << verify_checksums(f).detail;
        ASSERT_EQ(f, want) << kind_name(k) << " iter " << iter;
    }
}

TEST(ChecksumTranslate, UdpZeroChecksumStaysZero) {
    // Across many rewrites (including values that would make a real checksum 0x0000 / 0xffff),
    // a UDP datagram without checksum is never given one.
    for (uint32_t port = 0; port <= 0xffff; port += 97) {
        std::vector<uint8_t> f = PacketBuilder().eth().ipv4(ip("198.18.0.9"), ip("198.19.0.100"))
                                     .udp(7000, 9000).udp_zero_checksum().payload(11).build();
        PacketView v = parse_ok(f);
        rewrite_source(v, wire32(ip("198.19.0.10")), wire16(static_cast<uint16_t>(port)));
        rewrite_destination(v, wire32(ip("198.19.0.200")), wire16(static_cast<uint16_t>(port ^ 0xffff)));
        decrement_ttl(v);
        const auto d = decode(f);
        ASSERT_TRUE(d);
        ASSERT_EQ(d->udp_checksum, 0) << "port " << port;
        ASSERT_EQ(d->sport, port);
        ASSERT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
    }
}

// Full-recomputation UDP/TCP checksum (field zeroed, no 0 -> 0xffff mapping) of a frame.
uint16_t raw_l4_sum(const std::vector<uint8_t>& f, const PacketView& v, uint32_t csum_off) {
    std::vector<uint8_t> seg(f.begin() + v.l4_off, f.begin() + v.l4_off + v.l4_len);
    seg[csum_off] = seg[csum_off + 1] = 0;
    return l4_checksum(load_be32(f.data() + v.l3_off + 12), load_be32(f.data() + v.l3_off + 16), v.proto, seg.data(), seg.size());
}

TEST(ChecksumTranslate, UdpResultZeroIsSentAsFfff) {
    // Brute force the source port for which the recomputed UDP checksum is 0x0000: the rewrite
    // must store 0xffff (0 would mean "no checksum", RFC 768).
    const uint32_t pub = ip("198.19.0.10");
    int hits = 0;
    for (const Shape& s : kShapes) {
        std::vector<uint8_t> orig = PacketBuilder(base(s, ip("198.18.0.33"), ip("198.19.0.150"))).udp(40001, 4500).payload(21).build();
        PacketView ov = parse_ok(orig);
        int found_port = -1;
        for (uint32_t p = 1; p <= 0xffff; ++p) {
            std::vector<uint8_t> t = orig;
            store_be32(t.data() + ov.l3_off + 12, pub);
            store_be16(t.data() + ov.l4_off, static_cast<uint16_t>(p));
            if (raw_l4_sum(t, ov, l4_off::kUdpCsum) == 0) {
                found_port = static_cast<int>(p);
                break;
            }
        }
        ASSERT_GT(found_port, 0) << shape_name(s);
        ++hits;
        std::vector<uint8_t> f = orig;
        PacketView v = parse_ok(f);
        rewrite_source(v, wire32(pub), wire16(static_cast<uint16_t>(found_port)));
        const auto d = decode(f);
        ASSERT_TRUE(d);
        EXPECT_EQ(d->sport, found_port);
        EXPECT_EQ(d->udp_checksum, 0xffff) << shape_name(s) << " port " << found_port;
        EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
        // And translating back (destination side, the reply direction) from 0xffff works.
        std::vector<uint8_t> reply = PacketBuilder(base(s, ip("198.19.0.150"), pub)).udp(4500, static_cast<uint16_t>(found_port)).payload(21).build();
        PacketView rv = parse_ok(reply);
        rewrite_destination(rv, wire32(ip("198.18.0.33")), wire16(40001));
        EXPECT_TRUE(verify_checksums(reply).ok) << verify_checksums(reply).detail;
        EXPECT_EQ(reply, PacketBuilder(base(s, ip("198.19.0.150"), ip("198.18.0.33"))).udp(4500, 40001).payload(21).build());
    }
    EXPECT_EQ(hits, 4);
}

TEST(ChecksumTranslate, UdpChecksumFfffInputUpdatesCorrectly) {
    // A datagram that carries 0xffff (computed 0) is rewritten to an ordinary checksum.
    const uint32_t pub = ip("198.19.0.10");
    std::vector<uint8_t> orig = PacketBuilder().eth().ipv4(ip("198.18.0.33"), ip("198.19.0.150")).udp(40001, 4500).payload(21).build();
    PacketView ov = parse_ok(orig);
    int zero_port = -1;
    for (uint32_t p = 1; p <= 0xffff && zero_port < 0; ++p) {
        std::vector<uint8_t> t = orig;
        store_be16(t.data() + ov.l4_off, static_cast<uint16_t>(p));
        if (raw_l4_sum(t, ov, l4_off::kUdpCsum) == 0) zero_port = static_cast<int>(p);
    }
    ASSERT_GT(zero_port, 0);
    std::vector<uint8_t> f = PacketBuilder().eth().ipv4(ip("198.18.0.33"), ip("198.19.0.150")).udp(static_cast<uint16_t>(zero_port), 4500).payload(21).build();
    ASSERT_EQ(decode(f)->udp_checksum, 0xffff);
    PacketView v = parse_ok(f);
    rewrite_source(v, wire32(pub), wire16(2000));
    EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
    EXPECT_EQ(f, PacketBuilder().eth().ipv4(pub, ip("198.19.0.150")).udp(2000, 4500).payload(21).build());
}

TEST(ChecksumTranslate, TcpResultZeroStaysZero) {
    // TCP has no "no checksum" value: a recomputed 0x0000 is stored as 0x0000.
    const uint32_t pub = ip("198.19.0.11");
    std::vector<uint8_t> orig = PacketBuilder().eth().vlan(7).ipv4(ip("198.18.0.44"), ip("198.19.0.160"))
                                    .tcp(50000, 80, 1000, 2000, TCP_ACK).payload(10).build();
    PacketView ov = parse_ok(orig);
    int found_port = -1;
    for (uint32_t p = 1; p <= 0xffff && found_port < 0; ++p) {
        std::vector<uint8_t> t = orig;
        store_be32(t.data() + ov.l3_off + 12, pub);
        store_be16(t.data() + ov.l4_off, static_cast<uint16_t>(p));
        if (raw_l4_sum(t, ov, l4_off::kTcpCsum) == 0) found_port = static_cast<int>(p);
    }
    ASSERT_GT(found_port, 0);
    std::vector<uint8_t> f = orig;
    PacketView v = parse_ok(f);
    rewrite_source(v, wire32(pub), wire16(static_cast<uint16_t>(found_port)));
    const auto d = decode(f);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->l4_checksum, 0x0000);
    EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
}

TEST(ChecksumTranslate, DecrementTtl) {
    for (const Shape& s : kShapes) {
        for (uint8_t ttl : {uint8_t{255}, uint8_t{128}, uint8_t{64}, uint8_t{2}, uint8_t{1}}) {
            SCOPED_TRACE(shape_name(s) + " ttl " + std::to_string(ttl));
            std::vector<uint8_t> f = PacketBuilder(base(s, ip("198.18.0.5"), ip("198.19.0.100"))).ttl(ttl).tcp(1, 2).payload(3).build();
            const PacketView v = parse_ok(f);
            EXPECT_EQ(packet_ttl(v), ttl);
            decrement_ttl(v);
            EXPECT_EQ(packet_ttl(v), static_cast<uint8_t>(ttl - 1));
            EXPECT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
            EXPECT_EQ(f, PacketBuilder(base(s, ip("198.18.0.5"), ip("198.19.0.100"))).ttl(static_cast<uint8_t>(ttl - 1)).tcp(1, 2).payload(3).build());
        }
    }
    // Many TTL/ID combinations against recomputation (hits the 0x0000 result too).
    for (uint32_t id = 0; id <= 0xffff; id += 13) {
        std::vector<uint8_t> f = PacketBuilder().eth().ipv4(ip("198.18.0.5"), ip("198.19.0.100")).ip_id(static_cast<uint16_t>(id))
                                     .ttl(static_cast<uint8_t>(2 + id % 250)).udp(1, 2).build();
        const PacketView v = parse_ok(f);
        decrement_ttl(v);
        std::vector<uint8_t> hdr(f.begin() + 14, f.begin() + 34);
        const uint16_t stored = load_be16(hdr.data() + 10);
        hdr[10] = hdr[11] = 0;
        ASSERT_EQ(stored, inet_checksum(hdr.data(), 20)) << "id " << id;
    }
}

// ICMP error rewrites: compare with the frame built from scratch.
std::vector<uint8_t> icmp_err_frame(const Shape& s, uint32_t osrc, uint32_t odst, const std::vector<uint8_t>& inner) {
    return PacketBuilder(base(s, osrc, odst)).icmp_error(ICMP_TYPE_DEST_UNREACH, 3, inner).build();
}

TEST(ChecksumTranslate, IcmpErrorFromOutsideMatchesFreshBuild) {
    const uint32_t in_addr = ip("198.18.0.5"), pub = ip("198.19.0.10"), srv = ip("198.19.0.100"), rtr = ip("198.19.0.254");
    for (const Shape& s : kShapes) {
        for (int variant = 0; variant < 5; ++variant) {
            SCOPED_TRACE(shape_name(s) + " variant " + std::to_string(variant));
            auto inner_of = [&](uint32_t src, uint16_t sport) {
                PacketBuilder b;
                b.ipv4(src, srv).ttl(1);
                if (variant == 0) b.tcp(sport, 443, 77, 0, TCP_SYN).tcp_option_mss(1400);
                if (variant == 1) b.udp(sport, 53).payload(30);
                if (variant == 2) b.udp(sport, 53).udp_zero_checksum().payload(30);
                if (variant == 3) b.icmp_echo(ICMP_TYPE_ECHO_REQUEST, sport, 3).payload(12);
                if (variant == 4) b.ip_options(12).tcp(sport, 443, 77, 0, TCP_ACK).payload(100);
                std::vector<uint8_t> p = b.build_ip();
                if (variant == 4) p.resize(p.size() - 90);  // truncated: TCP checksum of the inner kept
                return p;
            };
            std::vector<uint8_t> f = icmp_err_frame(s, rtr, pub, inner_of(pub, 1234));
            PacketView v = parse_ok(f);
            ASSERT_EQ(v.icmp, IcmpKind::Error);
            rewrite_icmp_error_from_outside(v, wire32(in_addr), wire16(40000));
            ASSERT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
            const auto d = decode(f);
            ASSERT_TRUE(d);
            EXPECT_EQ(d->dst, in_addr);
            EXPECT_EQ(d->src, rtr);
            EXPECT_EQ(d->inner_src, in_addr);
            EXPECT_EQ(d->inner_sport, 40000);
            // Variant 4 (truncated inner): the inner TCP checksum is among the 30 bytes present
            // and covers the whole original segment, so it is updated like a full one.
            EXPECT_EQ(f, icmp_err_frame(s, rtr, in_addr, inner_of(in_addr, 40000)));
        }
    }
}

TEST(ChecksumTranslate, IcmpErrorFromInsideMatchesFreshBuild) {
    const uint32_t in_addr = ip("198.18.0.5"), pub = ip("198.19.0.11"), srv = ip("198.19.0.100");
    for (const Shape& s : kShapes) {
        for (std::size_t keep : {std::size_t{28}, std::size_t{36}, std::size_t{0}}) {
            SCOPED_TRACE(shape_name(s) + " keep " + std::to_string(keep));
            auto inner_of = [&](uint32_t dst, uint16_t dport) {
                std::vector<uint8_t> p = PacketBuilder().ipv4(srv, dst).udp(53, dport).payload(40).build_ip();
                if (keep) p.resize(keep);
                return p;
            };
            // Inside host reports port unreachable about the server's datagram to it.
            std::vector<uint8_t> f = icmp_err_frame(s, in_addr, srv, inner_of(in_addr, 40000));
            PacketView v = parse_ok(f);
            rewrite_icmp_error_from_inside(v, wire32(pub), wire16(1234));
            ASSERT_TRUE(verify_checksums(f).ok) << verify_checksums(f).detail;
            EXPECT_EQ(f, icmp_err_frame(s, pub, srv, inner_of(pub, 1234)));
        }
    }
}

}  // namespace
}  // namespace snatgw::test
