// IPv4 fragments through the NAT engine (docs/architecture.md, Fragments): crafted fragmented
// UDP and ICMP echo datagrams, both directions, in order and out of order, duplicates and
// overlaps, limits and timeouts, several workers. Every output is checked the way a receiver
// would: the fragments are reassembled and the whole datagram's checksums, addresses, ports and
// payload verified.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "config_builder.h"
#include "nat_fixture.h"
#include "nat_worker.h"
#include "packet_builder.h"
#include "packet_view.h"

namespace snatgw::test {
namespace {

// (198.18.0.11 would be a poor choice: its 16-bit words sum like 198.19.0.10's, so rewriting
// one into the other leaves the header checksum as it was.)
const uint32_t kHost = ip("198.18.0.77");
const uint32_t kHost2 = ip("198.18.0.78");
const uint32_t kServer = ip("198.19.0.100");
constexpr uint16_t kHostPort = 40000;
constexpr uint16_t kServerPort = 53;

// A NAT worker with chosen fragment limits (the fixture's defaults otherwise).
class FragWorker {
public:
    struct Limits {
        uint32_t datagrams = 1024;
        uint32_t held = 256;
        uint32_t timeout_ms = 2000;
    };
    explicit FragWorker(Limits l, uint16_t workers = 1, uint16_t worker_id = 0)
        : config_(std::make_unique<NatConfig>(
              build_nat_config(workers, {lab_pool()}, {{"198.18.0.0/24", "lab"}}))) {
        WorkerParams wp;
        wp.worker_id = worker_id;
        wp.session_capacity = 4096;
        wp.host_capacity = 1024;
        wp.seed = 4242;
        wp.fragment_datagrams = l.datagrams;
        wp.fragments_held = l.held;
        wp.fragment_timeout_ms = l.timeout_ms;
        static int instance = 0;
        wp.table_prefix = "fr";
        wp.table_prefix += std::to_string(instance++);
        worker_ = std::make_unique<NatWorker>(config_.get(), wp);
    }
    explicit FragWorker(uint16_t workers = 1, uint16_t worker_id = 0)
        : FragWorker(Limits{}, workers, worker_id) {}
    NatWorker& operator*() { return *worker_; }
    NatWorker* operator->() { return worker_.get(); }

private:
    std::unique_ptr<NatConfig> config_;
    std::unique_ptr<NatWorker> worker_;
};

// What left the engine for one frame, in the order the worker loop sends it: a burst's own
// verdicts first, then the held fragments it released.
struct Emitted {
    std::vector<uint8_t> frame;  // after the engine (translated in place when forwarded)
    FrameResult result;
    Side side;                   // the side it arrived on
    bool released = false;       // came back from take_released()
};

// Feeds frames to a NatWorker as the worker loop does, with cookies, so fragments may wait in
// the engine. Buffers live here, at stable addresses, as long as the rig.
class Rig {
public:
    explicit Rig(NatWorker& w) : w_(w) {}

    std::vector<Emitted> send(Side side, const std::vector<std::vector<uint8_t>>& frames,
                              uint32_t now_ms = 1000, uint16_t from = kFromPort) {
        std::vector<Frame> fv;
        std::vector<void*> cookies;
        std::vector<std::vector<uint8_t>*> bufs;
        for (const auto& f : frames) {
            store_.push_back(f);
            std::vector<uint8_t>* b = &store_.back();
            bufs.push_back(b);
            fv.push_back(Frame{b->data(), static_cast<uint32_t>(b->size())});
            cookies.push_back(b);
        }
        std::vector<FrameResult> rs(frames.size());
        BurstOrigin origin;
        origin.cookies = cookies.data();
        origin.from_worker = from;
        w_.process(side, fv.data(), rs.data(), static_cast<uint32_t>(fv.size()), now_ms, origin);
        std::vector<Emitted> out;
        for (size_t i = 0; i < rs.size(); ++i) {
            if (rs[i].held) {
                ++held_;
                continue;
            }
            out.push_back({*bufs[i], rs[i], side, false});
        }
        take(out);
        return out;
    }
    std::vector<Emitted> send(Side side, const std::vector<uint8_t>& frame, uint32_t now_ms = 1000) {
        return send(side, std::vector<std::vector<uint8_t>>{frame}, now_ms);
    }
    std::vector<Emitted> expire(uint32_t now_ms) {
        w_.expire(now_ms, 1000);
        std::vector<Emitted> out;
        take(out);
        return out;
    }
    uint32_t held_now() const { return held_; }

private:
    void take(std::vector<Emitted>& out) {
        ReleasedFrame rel[16];
        uint32_t n = 0;
        while ((n = w_.take_released(rel, 16)) != 0) {
            for (uint32_t i = 0; i < n; ++i) {
                auto* b = static_cast<std::vector<uint8_t>*>(rel[i].cookie);
                out.push_back({*b, rel[i].result, rel[i].side, true});
                --held_;
            }
        }
    }

    NatWorker& w_;
    std::deque<std::vector<uint8_t>> store_;
    uint32_t held_ = 0;
};

std::vector<std::vector<uint8_t>> forwarded(const std::vector<Emitted>& es) {
    std::vector<std::vector<uint8_t>> f;
    for (const Emitted& e : es)
        if (e.result.verdict == Verdict::Forward) f.push_back(e.frame);
    return f;
}

std::string reason_of(const Emitted& e) {
    return e.result.reason < DropReason::Count ? std::string(drop_reason_name(e.result.reason)) : "none";
}

uint64_t drops(NatWorker& w, DropReason r) { return w.counters().drops[static_cast<size_t>(r)]; }

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> p(n);
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
    return p;
}

// A whole UDP datagram as a frame.
std::vector<uint8_t> udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, const std::vector<uint8_t>& data,
                         uint16_t id, uint8_t ttl = 64) {
    return PacketBuilder().eth().ipv4(src, dst).ip_id(id).ttl(ttl).udp(sport, dport).payload(data).build();
}

std::vector<uint8_t> echo(uint32_t src, uint32_t dst, uint8_t type, uint16_t ident, const std::vector<uint8_t>& data,
                          uint16_t id) {
    return PacketBuilder().eth().ipv4(src, dst).ip_id(id).icmp_echo(type, ident, 1).payload(data).build();
}

// Reassembles, verifies every checksum of the whole datagram and decodes it.
Decoded whole(const std::vector<std::vector<uint8_t>>& pieces) {
    std::string why;
    const auto d = reassemble(pieces, &why);
    EXPECT_TRUE(d.has_value()) << why;
    if (!d) return Decoded{};
    const ChecksumReport rep = verify_checksums(*d);
    EXPECT_TRUE(rep.ok) << rep.detail;
    const auto dec = decode(*d);
    EXPECT_TRUE(dec.has_value());
    return dec ? *dec : Decoded{};
}

std::vector<uint8_t> payload_of(const std::vector<std::vector<uint8_t>>& pieces) {
    const auto d = reassemble(pieces);
    if (!d) return {};
    const auto dec = decode(*d);
    if (!dec) return {};
    return std::vector<uint8_t>(d->begin() + static_cast<std::ptrdiff_t>(dec->payload_offset),
                                d->begin() + static_cast<std::ptrdiff_t>(dec->payload_offset + dec->payload_len));
}

// Every output fragment on its own: valid header checksum, TTL decremented, the fragment
// fields as they came in.
void expect_fragments_sane(const std::vector<std::vector<uint8_t>>& out, uint8_t ttl_in) {
    for (const auto& f : out) {
        const ChecksumReport rep = verify_checksums(f);
        EXPECT_TRUE(rep.ok) << rep.detail;
        const auto d = decode(f);
        ASSERT_TRUE(d.has_value());
        EXPECT_EQ(d->ttl, ttl_in - 1);
    }
}

// The public endpoint the inside flow got, learnt from a small whole packet.
struct Mapping {
    uint32_t pub = 0;
    uint16_t pport = 0;
};

Mapping open_udp(Rig& rig, uint32_t host = kHost, uint16_t port = kHostPort) {
    const auto out = rig.send(Side::Inside, udp(host, port, kServer, kServerPort, pattern(20, 1), 1));
    EXPECT_EQ(out.size(), 1u);
    if (out.size() != 1 || out[0].result.verdict != Verdict::Forward) return {};
    const auto d = decode(out[0].frame);
    return {d->src, d->sport};
}

// An ICMP port unreachable from the server about a datagram of the mapping, quoting `quoted`
// bytes of it (far more than RFC 1812 allows, so that it must be fragmented).
std::vector<uint8_t> icmp_error_about(const Mapping& m, size_t quoted) {
    const auto inner = PacketBuilder().ipv4(m.pub, kServer).udp(m.pport, kServerPort).payload(quoted).build_ip();
    return PacketBuilder().eth().ipv4(kServer, m.pub).ip_id(5).icmp_error(3, 3, inner).build();
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

TEST(FragmentParse, FirstAndLaterFragmentsOnlyWhenAsked) {
    const auto pieces = fragment_frame(udp(kHost, kHostPort, kServer, kServerPort, pattern(3000, 3), 7), 1480);
    ASSERT_EQ(pieces.size(), 3u);
    for (size_t i = 0; i < pieces.size(); ++i) {
        std::vector<uint8_t> f = pieces[i];
        PacketView v;
        EXPECT_EQ(parse_frame(f.data(), static_cast<uint32_t>(f.size()), v).reason, DropReason::Ipv4Fragment)
            << "parse_frame without accept_fragments keeps dropping fragments";
        const ParseResult pr = parse_frame(f.data(), static_cast<uint32_t>(f.size()), v, true, true);
        ASSERT_EQ(pr.cls, FrameClass::Ipv4) << drop_reason_name(pr.reason);
        EXPECT_TRUE(v.fragment);
        EXPECT_EQ(v.frag_offset, i * 1480);
        EXPECT_EQ(v.more_fragments, i + 1 < pieces.size());
        EXPECT_EQ(v.later_fragment(), i != 0);
        EXPECT_EQ(v.proto, kProtoUdp);
        EXPECT_EQ(v.l4_len, i + 1 < pieces.size() ? 1480u : 3008u - 2 * 1480u);
    }
    // A first fragment whose UDP length is below what it carries is malformed; a later fragment
    // of a protocol the NAT does not know is not parsed further.
    std::vector<uint8_t> bad = pieces[0];
    bad[14 + 20 + 4] = 0;
    bad[14 + 20 + 5] = 100;
    PacketView v;
    EXPECT_EQ(parse_frame(bad.data(), static_cast<uint32_t>(bad.size()), v, true, true).reason, DropReason::UdpBadLength);
    auto gre = fragment_piece(PacketBuilder().eth().ipv4(kHost, kServer).ip_proto(47).payload(64).build(), 3, true,
                              pattern(16, 0));
    EXPECT_EQ(parse_frame(gre.data(), static_cast<uint32_t>(gre.size()), v, true, true).reason,
              DropReason::UnsupportedProtocol);
}

// ---------------------------------------------------------------------------------------------
// In order, both directions
// ---------------------------------------------------------------------------------------------

TEST(FragmentInside, LargeDatagramInOrderIsTranslatedAndReassemblesIntact) {
    for (bool one_burst : {false, true}) {
        SCOPED_TRACE(one_burst ? "all in one burst" : "one fragment per burst");
        FragWorker w;
        Rig rig(*w);
        const std::vector<uint8_t> data = pattern(4000, 9);
        const auto pieces = fragment_frame(udp(kHost, kHostPort, kServer, kServerPort, data, 0x4242), 1480);
        ASSERT_EQ(pieces.size(), 3u);
        std::vector<Emitted> out;
        if (one_burst) {
            out = rig.send(Side::Inside, pieces);
        } else {
            for (const auto& p : pieces) {
                auto o = rig.send(Side::Inside, p);
                out.insert(out.end(), o.begin(), o.end());
            }
        }
        ASSERT_EQ(out.size(), 3u);
        const auto fw = forwarded(out);
        ASSERT_EQ(fw.size(), 3u) << reason_of(out[0]);
        expect_fragments_sane(fw, 64);
        const Decoded d = whole(fw);
        EXPECT_NE(d.src, kHost);
        EXPECT_TRUE(d.src == ip("198.19.0.10") || d.src == ip("198.19.0.11")) << ip_str(d.src);
        EXPECT_EQ(d.dst, kServer);
        EXPECT_EQ(d.dport, kServerPort);
        EXPECT_EQ(d.ip_id, 0x4242);
        EXPECT_EQ(payload_of(fw), data);
        EXPECT_EQ(w->counters().fragments, 3u);
        EXPECT_EQ(w->counters().sessions_created, 1u);
        EXPECT_EQ(w->counters().forwarded[0], 3u);
        EXPECT_EQ(w->counters().fragment_datagrams, 0u) << "a complete datagram leaves no state";
        // The same flow unfragmented: the same public endpoint (one session).
        const Mapping m = open_udp(rig);
        EXPECT_EQ(m.pub, d.src);
        EXPECT_EQ(m.pport, d.sport);
        EXPECT_EQ(w->counters().sessions_created, 1u);
    }
}

TEST(FragmentOutside, LargeReplyIsTranslatedToTheInsideHost) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    ASSERT_NE(m.pport, 0);
    const std::vector<uint8_t> data = pattern(4000, 77);  // a large DNS-style answer
    const auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, data, 0x0101, 60), 1480);
    const auto out = rig.send(Side::Outside, pieces);
    const auto fw = forwarded(out);
    ASSERT_EQ(fw.size(), 3u) << (out.empty() ? "" : reason_of(out[0]));
    expect_fragments_sane(fw, 60);
    const Decoded d = whole(fw);
    EXPECT_EQ(d.src, kServer);
    EXPECT_EQ(d.sport, kServerPort);
    EXPECT_EQ(d.dst, kHost);
    EXPECT_EQ(d.dport, kHostPort);
    EXPECT_EQ(payload_of(fw), data);
    EXPECT_EQ(w->counters().forwarded[1], 3u);
}

TEST(FragmentOutside, ZeroUdpChecksumStaysZero) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const auto frame = PacketBuilder().eth().ipv4(kServer, m.pub).ip_id(9).udp(kServerPort, m.pport).udp_zero_checksum()
                           .payload(pattern(2000, 5)).build();
    const auto fw = forwarded(rig.send(Side::Outside, fragment_frame(frame, 1000)));
    ASSERT_EQ(fw.size(), 3u);
    const Decoded d = whole(fw);
    EXPECT_EQ(d.udp_checksum, 0);
    EXPECT_EQ(d.dst, kHost);
}

// ---------------------------------------------------------------------------------------------
// Out of order
// ---------------------------------------------------------------------------------------------

TEST(FragmentOrder, FirstFragmentLastReleasesTheOthersInArrivalOrder) {
    for (Side side : {Side::Inside, Side::Outside}) {
        SCOPED_TRACE(side == Side::Inside ? "from inside" : "from outside");
        FragWorker w;
        Rig rig(*w);
        const Mapping m = open_udp(rig);
        const std::vector<uint8_t> data = pattern(5000, 21);
        const auto frame = side == Side::Inside ? udp(kHost, kHostPort, kServer, kServerPort, data, 0x5151)
                                                : udp(kServer, kServerPort, m.pub, m.pport, data, 0x5151);
        auto pieces = fragment_frame(frame, 1200);
        ASSERT_EQ(pieces.size(), 5u);
        std::reverse(pieces.begin(), pieces.end());
        for (size_t i = 0; i + 1 < pieces.size(); ++i) {
            const auto o = rig.send(side, pieces[i]);
            EXPECT_TRUE(o.empty()) << "a later fragment waits for its first";
        }
        EXPECT_EQ(rig.held_now(), 4u);
        EXPECT_EQ(w->counters().fragments_waiting, 4u);
        EXPECT_EQ(w->counters().fragments_held, 4u);
        const auto out = rig.send(side, pieces.back());
        ASSERT_EQ(out.size(), 5u);
        EXPECT_FALSE(out[0].released) << "the first fragment leaves first";
        for (size_t i = 1; i < out.size(); ++i) {
            EXPECT_TRUE(out[i].released);
            EXPECT_EQ(out[i].result.verdict, Verdict::Forward) << reason_of(out[i]);
            // In arrival order: the reversed pieces, last piece first.
            EXPECT_EQ(decode(out[i].frame)->frag_offset, decode(pieces[i - 1])->frag_offset);
        }
        const auto fw = forwarded(out);
        expect_fragments_sane(fw, 64);
        const Decoded d = whole(fw);
        EXPECT_EQ(payload_of(fw), data);
        if (side == Side::Inside) {
            EXPECT_EQ(d.src, m.pub);
            EXPECT_EQ(d.sport, m.pport);
        } else {
            EXPECT_EQ(d.dst, kHost);
            EXPECT_EQ(d.dport, kHostPort);
        }
        EXPECT_EQ(rig.held_now(), 0u);
        EXPECT_EQ(w->counters().fragments_waiting, 0u);
        EXPECT_EQ(w->counters().fragment_datagrams, 0u);
    }
}

TEST(FragmentOrder, ShuffledFragmentsInOneBurst) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const std::vector<uint8_t> data = pattern(6000, 33);
    const auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, data, 0x7777), 1480);
    ASSERT_EQ(pieces.size(), 5u);
    const std::vector<std::vector<uint8_t>> shuffled = {pieces[3], pieces[0], pieces[4], pieces[1], pieces[2]};
    const auto out = rig.send(Side::Outside, shuffled);
    const auto fw = forwarded(out);
    ASSERT_EQ(fw.size(), 5u);
    EXPECT_EQ(whole(fw).dst, kHost);
    EXPECT_EQ(payload_of(fw), data);
    EXPECT_EQ(w->counters().fragments_held, 1u) << "only the piece ahead of the first waited";
}

TEST(FragmentOrder, InterleavedDatagramsOfTwoHosts) {
    FragWorker w;
    Rig rig(*w);
    const std::vector<uint8_t> a = pattern(3000, 1), b = pattern(3000, 2);
    const auto pa = fragment_frame(udp(kHost, 5000, kServer, kServerPort, a, 0x10), 1480);
    const auto pb = fragment_frame(udp(kHost2, 5000, kServer, kServerPort, b, 0x10), 1480);  // same IP id
    const auto out = rig.send(Side::Inside, {pb[2], pa[1], pa[0], pb[0], pa[2], pb[1]});
    // Tell the datagrams apart by their bytes after the (translated) headers.
    auto is_piece_of = [](const std::vector<uint8_t>& f, const std::vector<std::vector<uint8_t>>& pieces) {
        const size_t from = decode(f)->frag_offset == 0 ? 14 + 20 + 8 : 14 + 20;
        for (const auto& p : pieces)
            if (p.size() == f.size() && std::equal(p.begin() + static_cast<std::ptrdiff_t>(from), p.end(),
                                                   f.begin() + static_cast<std::ptrdiff_t>(from)))
                return true;
        return false;
    };
    std::vector<std::vector<uint8_t>> fa, fb;
    for (const Emitted& e : out) {
        ASSERT_EQ(e.result.verdict, Verdict::Forward) << reason_of(e);
        if (is_piece_of(e.frame, pa)) fa.push_back(e.frame);
        else if (is_piece_of(e.frame, pb)) fb.push_back(e.frame);
        else ADD_FAILURE() << "a frame of neither datagram";
    }
    ASSERT_EQ(fa.size(), 3u);
    ASSERT_EQ(fb.size(), 3u);
    const Decoded da = whole(fa), db = whole(fb);
    EXPECT_EQ(payload_of(fa), a);
    EXPECT_EQ(payload_of(fb), b);
    EXPECT_TRUE(da.src != db.src || da.sport != db.sport) << "two hosts, two public endpoints";
}

// ---------------------------------------------------------------------------------------------
// ICMP echo (ping -s 3000)
// ---------------------------------------------------------------------------------------------

TEST(FragmentIcmp, LargeEchoRequestAndReplyCrossBothWays) {
    FragWorker w;
    Rig rig(*w);
    const std::vector<uint8_t> data = pattern(3000, 55);
    const auto req = fragment_frame(echo(kHost, kServer, ICMP_TYPE_ECHO_REQUEST, 0x0777, data, 0x2222), 1480);
    ASSERT_EQ(req.size(), 3u);
    const auto out = forwarded(rig.send(Side::Inside, req));
    ASSERT_EQ(out.size(), 3u);
    const Decoded d = whole(out);
    EXPECT_EQ(d.icmp_type, ICMP_TYPE_ECHO_REQUEST);
    EXPECT_TRUE(d.src == ip("198.19.0.10") || d.src == ip("198.19.0.11"));
    EXPECT_EQ(payload_of(out), data);
    const uint16_t public_id = d.icmp_id;

    // The reply, last fragment first.
    auto rep = fragment_frame(echo(kServer, d.src, ICMP_TYPE_ECHO_REPLY, public_id, data, 0x3333), 1480);
    std::reverse(rep.begin(), rep.end());
    std::vector<Emitted> back;
    for (const auto& p : rep) {
        auto o = rig.send(Side::Outside, p);
        back.insert(back.end(), o.begin(), o.end());
    }
    const auto fw = forwarded(back);
    ASSERT_EQ(fw.size(), 3u);
    const Decoded r = whole(fw);
    EXPECT_EQ(r.icmp_type, ICMP_TYPE_ECHO_REPLY);
    EXPECT_EQ(r.dst, kHost);
    EXPECT_EQ(r.icmp_id, 0x0777);
    EXPECT_EQ(payload_of(fw), data);
}

TEST(FragmentIcmp, UnsolicitedEchoRequestFragmentsFromOutsideAreDropped) {
    FragWorker w;
    Rig rig(*w);
    auto pieces = fragment_frame(echo(kServer, ip("198.19.0.10"), ICMP_TYPE_ECHO_REQUEST, 9, pattern(3000, 1), 4), 1480);
    std::swap(pieces[0], pieces[1]);  // one waits, then is dropped with the datagram
    const auto out = rig.send(Side::Outside, pieces);
    ASSERT_EQ(out.size(), 3u);
    for (const Emitted& e : out) EXPECT_EQ(reason_of(e), "no_session");
    EXPECT_EQ(drops(*w, DropReason::NoSession), 3u);
    EXPECT_EQ(rig.held_now(), 0u);
    EXPECT_EQ(w->counters().fragment_datagrams, 0u);
}

// ---------------------------------------------------------------------------------------------
// Duplicates, overlaps, malformed
// ---------------------------------------------------------------------------------------------

TEST(FragmentOverlap, DuplicatesAreTranslatedAlikeAndOverlapsPassUntouched) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const std::vector<uint8_t> data = pattern(4000, 3);
    const auto frame = udp(kServer, kServerPort, m.pub, m.pport, data, 0x0a0a);
    const auto pieces = fragment_frame(frame, 1480);
    ASSERT_EQ(pieces.size(), 3u);

    // The middle piece ahead of its first, the first twice, the middle again, and a piece
    // overlapping the middle one with bytes of its own.
    const auto overlap = fragment_piece(frame, 200, true, pattern(64, 200));
    const auto out = rig.send(Side::Outside, {pieces[1], pieces[0], pieces[0], pieces[1], overlap});
    ASSERT_EQ(out.size(), 5u);
    EXPECT_FALSE(out[0].released);
    EXPECT_EQ(out[0].frame, out[1].frame) << "a duplicate first fragment is translated the same way";
    EXPECT_TRUE(out[4].released) << "the middle piece that waited";
    EXPECT_EQ(out[2].frame, out[4].frame) << "the duplicate middle piece is translated the same way";
    // The overlapping piece passes, translated, its bytes its own: the receiver decides (Linux
    // drops a datagram with overlaps). A piece cannot reach the translated L4 header: the
    // smallest later offset, 8 bytes, is past the UDP and ICMP echo headers.
    EXPECT_EQ(out[3].result.verdict, Verdict::Forward);
    EXPECT_EQ(decode(out[3].frame)->dst, kHost);
    EXPECT_TRUE(verify_checksums(out[3].frame).ok);
    EXPECT_TRUE(std::equal(overlap.begin() + 34, overlap.end(), out[3].frame.begin() + 34));
    for (const Emitted& e : out) EXPECT_EQ(e.result.verdict, Verdict::Forward) << reason_of(e);

    const auto last = rig.send(Side::Outside, pieces[2]);
    ASSERT_EQ(forwarded(last).size(), 1u);
    // What a receiver that drops the overlapping piece keeps: first, middle, last.
    const std::vector<std::vector<uint8_t>> kept = {out[0].frame, out[4].frame, last[0].frame};
    const Decoded d = whole(kept);
    EXPECT_EQ(d.dst, kHost);
    EXPECT_EQ(d.dport, kHostPort);
    EXPECT_EQ(payload_of(kept), data);
}

// Two flows of one host to one server: the server's IP id comes round while a datagram of the
// first flow is still incomplete (its last piece lost). The second flow's datagram with the same
// id is not refused for it: its first fragment, with other ports, starts the datagram afresh
// (RFC 4963; pieces that come before it cannot be told from the old datagram's).
TEST(FragmentOverlap, ReusedIdWithOtherPortsStartsAfresh) {
    for (bool last_first : {false, true}) {
        SCOPED_TRACE(last_first ? "last piece first" : "in order");
        FragWorker w;
        Rig rig(*w);
        const Mapping a = open_udp(rig, kHost, 40000);
        const Mapping b = open_udp(rig, kHost, 40001);
        ASSERT_EQ(a.pub, b.pub) << "paired pooling: one public address for the host";
        const auto lost = fragment_frame(udp(kServer, kServerPort, a.pub, a.pport, pattern(4000, 1), 0x0707), 1480);
        EXPECT_EQ(forwarded(rig.send(Side::Outside, {lost[0], lost[1]})).size(), 2u);
        EXPECT_EQ(w->counters().fragment_datagrams, 1u);
        const std::vector<uint8_t> data = pattern(4000, 2);
        auto pieces = fragment_frame(udp(kServer, kServerPort, b.pub, b.pport, data, 0x0707), 1480);
        if (last_first) std::swap(pieces[0], pieces[2]);
        const auto out = rig.send(Side::Outside, pieces);
        const auto fw = forwarded(out);
        ASSERT_EQ(fw.size(), 3u) << (out.empty() ? "" : reason_of(out[0]));
        const Decoded d = whole(fw);
        EXPECT_EQ(d.dst, kHost);
        EXPECT_EQ(d.dport, 40001);
        EXPECT_EQ(payload_of(fw), data);
    }
}

TEST(FragmentMalformed, BadOffsetsAndLengthsAreDropped) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const auto frame = udp(kServer, kServerPort, m.pub, m.pport, pattern(2000, 1), 0x0b0b);
    struct Case {
        const char* what;
        std::vector<uint8_t> frame;
        const char* reason;
    };
    const std::vector<Case> cases = {
        {"MF with a payload not a multiple of 8", fragment_piece(frame, 10, true, pattern(13, 0)), "fragment_malformed"},
        {"beyond 65535 bytes (ping of death)", fragment_piece(frame, 8189, false, pattern(64, 0)), "fragment_malformed"},
        {"empty fragment", fragment_piece(frame, 20, true, {}), "fragment_malformed"},
        {"first fragment shorter than a UDP header", fragment_piece(frame, 0, true, pattern(4, 0)), "udp_too_short"},
        {"TCP fragment", fragment_frame(PacketBuilder().eth().ipv4(kServer, m.pub).tcp(80, m.pport).payload(3000).build(),
                                        1480)[1],
         "ipv4_fragment"},
        {"fragmented ICMP error", fragment_frame(icmp_error_about(m, 1400), 1000)[0], "ipv4_fragment"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const auto out = rig.send(Side::Outside, c.frame);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].result.verdict, Verdict::Drop);
        EXPECT_EQ(reason_of(out[0]), c.reason);
        EXPECT_EQ(out[0].frame, c.frame);
    }
    EXPECT_EQ(rig.held_now(), 0u);
}

TEST(FragmentMalformed, LaterFragmentsOfAnIcmpErrorShareItsFate) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    auto pieces = fragment_frame(icmp_error_about(m, 1300), 600);
    ASSERT_EQ(pieces.size(), 3u);
    std::swap(pieces[0], pieces[1]);
    const auto out = rig.send(Side::Outside, pieces);
    ASSERT_EQ(out.size(), 3u);
    for (const Emitted& e : out) EXPECT_EQ(reason_of(e), "ipv4_fragment");
    EXPECT_EQ(rig.held_now(), 0u);
}

TEST(FragmentTtl, ExpiringFirstFragmentDecidesForTheRest) {
    FragWorker w;
    Rig rig(*w);
    const auto pieces = fragment_frame(udp(kHost, kHostPort, kServer, kServerPort, pattern(3000, 1), 0x0c0c, 1), 1480);
    const auto out = rig.send(Side::Inside, {pieces[1], pieces[0], pieces[2]});
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].result.verdict, Verdict::TtlExceeded) << "the first may get a time exceeded";
    EXPECT_EQ(reason_of(out[1]), "ttl_expired");
    EXPECT_EQ(reason_of(out[2]), "ttl_expired");
    EXPECT_EQ(w->counters().sessions_created, 0u);
}

// ---------------------------------------------------------------------------------------------
// Limits and timeouts: a fragment flood cannot exhaust memory
// ---------------------------------------------------------------------------------------------

TEST(FragmentLimits, HeldFragmentsAreBoundedAndTheRestDropped) {
    FragWorker w(FragWorker::Limits{64, 8, 2000});
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    // Later fragments of 12 datagrams, none with its first: 8 wait, 4 are dropped.
    std::vector<std::vector<uint8_t>> firsts;
    for (uint16_t id = 1; id <= 12; ++id) {
        const auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, pattern(2000, 1), id), 1480);
        firsts.push_back(pieces[0]);
        const auto out = rig.send(Side::Outside, pieces[1]);
        if (id <= 8) {
            EXPECT_TRUE(out.empty());
        } else {
            ASSERT_EQ(out.size(), 1u);
            EXPECT_EQ(reason_of(out[0]), "fragment_hold_full");
        }
    }
    EXPECT_EQ(rig.held_now(), 8u);
    EXPECT_EQ(w->counters().fragments_waiting, 8u);
    EXPECT_EQ(drops(*w, DropReason::FragmentHoldFull), 4u);
    // Their firsts come: the 8 waiting ones are released, translated.
    size_t released = 0;
    for (const auto& f : firsts)
        for (const Emitted& e : rig.send(Side::Outside, f)) released += e.released && e.result.verdict == Verdict::Forward;
    EXPECT_EQ(released, 8u);
    EXPECT_EQ(rig.held_now(), 0u);
}

TEST(FragmentLimits, OneDatagramCannotTakeEverySlot) {
    FragWorker w(FragWorker::Limits{64, 256, 2000});
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const auto frame = udp(kServer, kServerPort, m.pub, m.pport, pattern(64, 1), 0x0d0d);
    size_t dropped = 0;
    for (uint16_t off = 1; off <= 100; ++off)
        for (const Emitted& e : rig.send(Side::Outside, fragment_piece(frame, off, true, pattern(8, 0))))
            dropped += reason_of(e) == "fragment_hold_full";
    EXPECT_EQ(rig.held_now(), 64u);
    EXPECT_EQ(dropped, 36u);
}

TEST(FragmentLimits, WaitingFragmentsExpireAndAreCounted) {
    FragWorker w(FragWorker::Limits{64, 32, 500});
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    const std::vector<uint8_t> data = pattern(4000, 8);
    const auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, data, 0x0e0e), 1480);
    EXPECT_TRUE(rig.send(Side::Outside, {pieces[2], pieces[1]}, 1000).empty());
    EXPECT_TRUE(rig.expire(1499).empty()) << "not yet";
    EXPECT_EQ(rig.held_now(), 2u);
    const auto gone = rig.expire(1500);
    ASSERT_EQ(gone.size(), 2u);
    for (const Emitted& e : gone) {
        EXPECT_EQ(reason_of(e), "fragment_expired");
        EXPECT_TRUE(e.released);
    }
    EXPECT_EQ(drops(*w, DropReason::FragmentExpired), 2u);
    EXPECT_EQ(rig.held_now(), 0u);
    EXPECT_EQ(w->counters().fragments_waiting, 0u);
    EXPECT_EQ(w->counters().fragment_datagrams, 0u);
    // The first fragment, late: the datagram starts afresh (its state went with the timeout).
    const auto late = rig.send(Side::Outside, pieces[0], 1600);
    ASSERT_EQ(late.size(), 1u);
    EXPECT_EQ(late[0].result.verdict, Verdict::Forward);
    EXPECT_EQ(w->counters().fragment_datagrams, 1u);
    EXPECT_EQ(rig.expire(2100).size(), 0u);
    EXPECT_EQ(w->counters().fragment_datagrams, 0u) << "state without waiting fragments expires too";
}

TEST(FragmentLimits, NewDatagramsEvictTheOldest) {
    FragWorker w(FragWorker::Limits{8, 64, 2000});
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    std::vector<std::vector<std::vector<uint8_t>>> dgrams;
    for (uint16_t id = 1; id <= 9; ++id) {
        dgrams.push_back(fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, pattern(2000, 1), id), 1480));
        const auto out = rig.send(Side::Outside, dgrams.back()[1], 1000 + id);
        if (id <= 8) {
            EXPECT_TRUE(out.empty());
        } else {
            // The oldest datagram (id 1) made room: its waiting fragment is dropped.
            ASSERT_EQ(out.size(), 1u);
            EXPECT_EQ(reason_of(out[0]), "fragment_expired");
            EXPECT_EQ(out[0].frame, dgrams[0][1]);
        }
    }
    EXPECT_EQ(w->counters().fragment_datagrams_evicted, 1u);
    EXPECT_EQ(w->counters().fragment_datagrams, 8u);
    EXPECT_EQ(rig.held_now(), 8u);
}

TEST(FragmentLimits, WithoutCookiesNothingWaits) {
    NatHarness h;  // process() without cookies: the engine cannot keep a frame
    const auto out0 = h.out(udp(kHost, kHostPort, kServer, kServerPort, pattern(10, 0), 1));
    const auto d0 = decode(out0.frame);
    const auto pieces = fragment_frame(udp(kServer, kServerPort, d0->src, d0->sport, pattern(3000, 1), 0x0f0f), 1480);
    EXPECT_EQ(h.in(pieces[1]).result.reason, DropReason::FragmentUnmatched);
    EXPECT_EQ(h.in(pieces[0]).result.verdict, Verdict::Forward);
    const NatOutcome last = h.in(pieces[2]);
    EXPECT_EQ(last.result.verdict, Verdict::Forward);
    EXPECT_EQ(decode(last.frame)->dst, kHost);
    EXPECT_EQ(h.worker().released_pending(), 0u);
}

TEST(FragmentLimits, ShutdownReturnsEveryWaitingFragment) {
    FragWorker w;
    Rig rig(*w);
    const Mapping m = open_udp(rig);
    for (uint16_t id = 1; id <= 5; ++id)
        rig.send(Side::Outside, fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, pattern(3000, 1), id), 1480)[2]);
    EXPECT_EQ(rig.held_now(), 5u);
    w->drop_held();
    EXPECT_EQ(rig.expire(1000).size(), 5u);
    EXPECT_EQ(rig.held_now(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Several workers: every fragment reaches the session's owner, in order
// ---------------------------------------------------------------------------------------------

// Two engines of one gateway (workers = 2) and the rings between them, as the worker loop has
// them: a handed-off frame arrives at its target with from_worker set.
class TwoWorkers {
public:
    TwoWorkers() {
        for (uint16_t i = 0; i < 2; ++i) {
            w_[i] = std::make_unique<FragWorker>(2, i);
            rig_[i] = std::make_unique<Rig>(**w_[i]);
        }
    }
    NatWorker& worker(uint16_t i) { return **w_[i]; }
    Rig& rig(uint16_t i) { return *rig_[i]; }

    // Frames arriving from the port, frame i at worker at[i] (the last entry repeats), one per
    // burst; runs every handoff to the end. Returns what was forwarded, in sending order, and
    // records the route of each hop.
    std::vector<std::vector<uint8_t>> deliver(Side side, const std::vector<std::vector<uint8_t>>& frames,
                                              const std::vector<uint16_t>& at) {
        std::vector<std::vector<uint8_t>> out;
        for (size_t i = 0; i < frames.size(); ++i) {
            const auto& f = frames[i];
            std::deque<std::tuple<uint16_t, uint16_t, std::vector<uint8_t>>> q;  // to, from, frame
            q.emplace_back(i < at.size() ? at[i] : at.back(), kFromPort, f);
            while (!q.empty()) {
                auto [to, from, frame] = q.front();
                q.pop_front();
                for (const Emitted& e : rig_[to]->send(side, {frame}, 1000, from)) {
                    hops_.push_back({to, e.result.verdict, e.result.worker});
                    if (e.result.verdict == Verdict::Forward) out.push_back(e.frame);
                    else if (e.result.verdict == Verdict::Handoff) q.emplace_back(e.result.worker, to, e.frame);
                    else ADD_FAILURE() << "worker " << to << " dropped a frame: " << reason_of(e);
                }
            }
        }
        return out;
    }
    struct Hop {
        uint16_t at;
        Verdict verdict;
        uint16_t to;
    };
    std::vector<Hop> hops_;

private:
    std::unique_ptr<FragWorker> w_[2];
    std::unique_ptr<Rig> rig_[2];
};

TEST(FragmentWorkers, OutsideFragmentsReachTheSessionOwnerWhereverTheyArrive) {
    TwoWorkers gw;
    // The inside host's session lives on worker 0 (its inside owner): an even public port.
    const Mapping m = open_udp(gw.rig(0));
    ASSERT_EQ(port_owner(m.pport, 2), 0);
    const std::vector<uint8_t> data = pattern(5000, 99);
    // Datagram ids whose fragment owner is the other worker (1) and the session's (0).
    auto key_for = [&](uint16_t id) {
        FragmentKey k;
        k.src = htonl(kServer);
        k.dst = htonl(m.pub);
        k.id = htons(id);
        k.proto = kProtoUdp;
        k.side = 1;
        return k;
    };
    uint16_t id_f1 = 0, id_f0 = 0;
    for (uint16_t id = 1; id < 1000 && (id_f1 == 0 || id_f0 == 0); ++id) {
        uint16_t& slot = fragment_owner(key_for(id), 2) == 1 ? id_f1 : id_f0;
        if (slot == 0) slot = id;
    }
    ASSERT_EQ(fragment_owner(key_for(id_f1), 2), 1);
    ASSERT_EQ(fragment_owner(key_for(id_f0), 2), 0);

    // Where each fragment arrives (in sending order): all at one worker, or spread as a NIC's
    // hash may spread them (a first fragment hashes with its ports, the others without).
    const std::vector<std::vector<uint16_t>> arrivals = {{0}, {1}, {0, 1}, {1, 0}, {0, 1, 1, 1}, {1, 0, 0, 0}};
    for (uint16_t id : {id_f1, id_f0}) {
        for (const auto& at : arrivals) {
            for (bool reversed : {false, true}) {
                std::string where;
                for (uint16_t a : at) where += std::to_string(a);
                SCOPED_TRACE("fragment owner " + std::to_string(fragment_owner(key_for(id), 2)) + ", arriving at workers " +
                             where + (reversed ? ", last fragment first" : ", in order"));
                // The same IP id each time: a complete datagram leaves no state behind.
                auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, data, id), 1480);
                if (reversed) std::reverse(pieces.begin(), pieces.end());
                gw.hops_.clear();
                const auto out = gw.deliver(Side::Outside, pieces, at);
                ASSERT_EQ(out.size(), 4u);
                const Decoded d = whole(out);
                EXPECT_EQ(d.dst, kHost);
                EXPECT_EQ(d.dport, kHostPort);
                EXPECT_EQ(payload_of(out), data);
                // Every frame was forwarded by the session's owner, worker 0.
                for (const auto& h : gw.hops_)
                    if (h.verdict == Verdict::Forward) {
                        EXPECT_EQ(h.at, 0);
                    }
                // The first fragment went out before any later one (the receiver needs no order,
                // but the handoff keeps it: the fragment owner sends them over one ring).
                EXPECT_EQ(decode(out[0])->frag_offset, 0);
                EXPECT_EQ(gw.worker(0).counters().fragments_waiting + gw.worker(1).counters().fragments_waiting, 0u);
                EXPECT_EQ(gw.worker(0).counters().fragment_datagrams + gw.worker(1).counters().fragment_datagrams, 0u);
            }
        }
    }
    EXPECT_EQ(gw.worker(1).counters().forwarded[1], 0u) << "worker 1 owns no session here";
}

TEST(FragmentWorkers, SessionOwnerTakesAFirstFragmentOnlyFromTheFragmentOwner) {
    TwoWorkers gw;
    const Mapping m = open_udp(gw.rig(0));
    ASSERT_EQ(port_owner(m.pport, 2), 0);
    FragmentKey k;
    k.src = htonl(kServer);
    k.dst = htonl(m.pub);
    k.proto = kProtoUdp;
    k.side = 1;
    uint16_t id = 1;
    for (;; ++id) {
        k.id = htons(id);
        if (fragment_owner(k, 2) == 1) break;
    }
    const auto pieces = fragment_frame(udp(kServer, kServerPort, m.pub, m.pport, pattern(3000, 4), id), 1480);
    // Straight from the port at the session's owner: to the fragment owner first.
    auto out = gw.rig(0).send(Side::Outside, {pieces[0]});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Handoff);
    EXPECT_EQ(out[0].result.worker, 1);
    EXPECT_EQ(out[0].frame, pieces[0]) << "handed off untouched";
    // The fragment owner sends it back, and remembers where the rest goes.
    out = gw.rig(1).send(Side::Outside, {pieces[0]}, 1000, 0);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Handoff);
    EXPECT_EQ(out[0].result.worker, 0);
    out = gw.rig(0).send(Side::Outside, {pieces[0]}, 1000, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Forward);
    // A later fragment at the session's owner from the port goes via the fragment owner too
    // (the one worker that sees every fragment of the datagram)...
    out = gw.rig(0).send(Side::Outside, {pieces[1]});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Handoff);
    EXPECT_EQ(out[0].result.worker, 1);
    // ...and from there it is translated by the session's owner.
    out = gw.rig(0).send(Side::Outside, {pieces[1]}, 1000, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Forward);
    // At the fragment owner, a later fragment is handed to the session's owner.
    out = gw.rig(1).send(Side::Outside, {pieces[2]});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].result.verdict, Verdict::Handoff);
    EXPECT_EQ(out[0].result.worker, 0);
}

TEST(FragmentWorkers, InsideFragmentsStayWithTheInsideOwner) {
    TwoWorkers gw;
    const std::vector<uint8_t> data = pattern(4000, 5);
    auto pieces = fragment_frame(udp(kHost, kHostPort, kServer, kServerPort, data, 0x1111), 1480);
    std::reverse(pieces.begin(), pieces.end());
    const auto out = gw.deliver(Side::Inside, pieces, {1});
    ASSERT_EQ(out.size(), 3u);
    for (const auto& h : gw.hops_) EXPECT_NE(h.verdict, Verdict::Handoff);
    const Decoded d = whole(out);
    EXPECT_EQ(port_owner(d.sport, 2), 1) << "worker 1's own port partition";
    EXPECT_EQ(payload_of(out), data);
    // And the reply, fragmented, arriving at worker 0: back to worker 1 through the fragment
    // owner, whichever it is.
    auto reply = fragment_frame(udp(kServer, kServerPort, d.src, d.sport, data, 0x2222), 1480);
    std::reverse(reply.begin(), reply.end());
    gw.hops_.clear();
    const auto back = gw.deliver(Side::Outside, reply, {0, 1});
    ASSERT_EQ(back.size(), 3u);
    for (const auto& h : gw.hops_)
        if (h.verdict == Verdict::Forward) {
            EXPECT_EQ(h.at, 1);
        }
    const Decoded r = whole(back);
    EXPECT_EQ(r.dst, kHost);
    EXPECT_EQ(r.dport, kHostPort);
    EXPECT_EQ(payload_of(back), data);
}

}  // namespace
}  // namespace snatgw::test
