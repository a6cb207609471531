// libFuzzer harness: natperf's test-frame parser (tools/natperf/frame_builder.h), which reads
// whatever the device under test sends back, and its builder.
//
// Input: ctl (1 byte), then
//   ctl bit 0 clear: the rest is a frame as received; parse_frame must classify it without
//                    reading past its end (ASan), and a frame it calls Ours must really carry
//                    natperf's headers: IPv4, UDP with the magic or TCP SYN / SYN-ACK, within
//                    the length given.
//   ctl bit 0 set:   the rest describes a frame (protocol, kind, flags, length, addresses,
//                    ports, index, TSC); build_frame writes it, parse_frame must give every
//                    field back, its IPv4 checksum must verify, and every truncation of it
//                    must not be Ours.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "byte_order.h"
#include "checksum.h"
#include "frame_builder.h"
#include "fuzz_support.h"

namespace snatgw::fuzz {
namespace {

using natperf::Kind;
using natperf::ParsedFrame;
using natperf::ParseStatus;
using natperf::Proto;

void check_received(const uint8_t* f, uint32_t len) {
    ParsedFrame p;
    const ParseStatus st = natperf::parse_frame(f, len, p);
    if (st != ParseStatus::Ours) return;
    FUZZ_CHECK(len >= 14 + 20, "Ours with %u bytes", len);
    FUZZ_CHECK(load_be16(f + 12) == 0x0800, "Ours but not IPv4");
    const uint32_t ihl = (f[14] & 0x0f) * 4u;
    FUZZ_CHECK((f[14] >> 4) == 4 && ihl >= 20, "Ours with IP version/IHL 0x%02x", f[14]);
    const uint8_t proto = f[14 + 9];
    FUZZ_CHECK(proto == static_cast<uint8_t>(p.proto), "protocol %u, parsed %u", proto,
               static_cast<unsigned>(p.proto));
    const uint32_t l4 = 14 + ihl;
    if (p.proto == Proto::Udp) {
        FUZZ_CHECK(l4 + 8 + natperf::kPayloadLen <= len, "UDP payload past the frame (%u)", len);
        FUZZ_CHECK(load_be16(f + l4 + 8) == natperf::kMagic, "Ours without the magic");
        FUZZ_CHECK(load_be32(f + l4 + 8 + 4) == p.index, "index");
    } else {
        FUZZ_CHECK(p.proto == Proto::Tcp && l4 + 20 <= len, "TCP header past the frame (%u)", len);
        const uint8_t flags = f[l4 + 13];
        FUZZ_CHECK((flags & 0x02) != 0, "a TCP frame without SYN is Ours (flags 0x%02x)", flags);
    }
    FUZZ_CHECK(load_be32(f + 14 + 12) == p.src_ip && load_be32(f + 14 + 16) == p.dst_ip,
               "addresses");
    FUZZ_CHECK(load_be16(f + l4) == p.src_port && load_be16(f + l4 + 2) == p.dst_port, "ports");
}

void check_round_trip(Reader& in) {
    natperf::FrameSpec s;
    const uint8_t shape = in.u8();
    s.proto = (shape & 1) ? Proto::Tcp : Proto::Udp;
    // TCP frames are SYNs (Phase1) and SYN/ACKs (Validation) only.
    static constexpr Kind kUdpKinds[] = {Kind::Phase1, Kind::Forward, Kind::Reverse, Kind::Validation};
    s.kind = s.proto == Proto::Tcp ? ((shape & 2) ? Kind::Validation : Kind::Phase1)
                                   : kUdpKinds[(shape >> 1) & 3];
    s.flags = in.u8();
    s.frame_len = natperf::kMinFrameLen + in.u16() % (natperf::kMaxFrameLen - natperf::kMinFrameLen + 1);
    for (auto& b : s.src_mac) b = in.u8();
    for (auto& b : s.dst_mac) b = in.u8();
    s.src_ip = in.u32();
    s.dst_ip = in.u32();
    s.src_port = in.u16();
    s.dst_port = in.u16();
    s.index = in.u32();
    s.tsc = uint64_t{in.u32()} << 32 | in.u32();
    s.ip_id = in.u16();

    std::vector<uint8_t> buf(natperf::kMaxFrameLen + 64);
    const uint32_t len = natperf::build_frame(buf.data(), static_cast<uint32_t>(buf.size()), s);
    FUZZ_CHECK(len == natperf::frame_length(s) && len >= natperf::kMinFrameLen &&
                   len <= natperf::kMaxFrameLen,
               "built %u bytes, frame_length %u", len, natperf::frame_length(s));
    FUZZ_CHECK(natperf::build_frame(buf.data(), len - 1, s) == 0, "built into too small a buffer");
    FUZZ_CHECK(csum::compute(buf.data() + 14, 20) == 0, "IPv4 checksum of a built frame");

    ParsedFrame p;
    FUZZ_CHECK(natperf::parse_frame(buf.data(), len, p) == ParseStatus::Ours, "own frame not Ours");
    FUZZ_CHECK(p.proto == s.proto && p.kind == s.kind && p.index == s.index &&
                   p.src_ip == s.src_ip && p.dst_ip == s.dst_ip && p.src_port == s.src_port &&
                   p.dst_port == s.dst_port && p.src_mac == s.src_mac && p.dst_mac == s.dst_mac,
               "round trip changed a field");
    if (s.proto == Proto::Udp)
        FUZZ_CHECK(p.flags == s.flags && p.tsc == s.tsc, "round trip changed flags or TSC");
    // Cut short, it is never taken for one of ours (a truncated frame is not counted received).
    const uint32_t needed = s.proto == Proto::Udp ? 14 + 20 + 8 + natperf::kPayloadLen : 14 + 20 + 20;
    for (uint32_t cut = 0; cut < needed; ++cut) {
        std::vector<uint8_t> part(buf.begin(), buf.begin() + cut);  // exact size: ASan sees overreads
        FUZZ_CHECK(natperf::parse_frame(part.data(), cut, p) != ParseStatus::Ours,
                   "a frame cut to %u of %u bytes is Ours", cut, len);
    }
}

}  // namespace
}  // namespace snatgw::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
    using namespace snatgw::fuzz;
    Reader in(data, size);
    const uint8_t ctl = in.u8();
    if (ctl & 1) {
        check_round_trip(in);
    } else {
        std::vector<uint8_t> frame = in.bytes(in.left());  // exact size: ASan sees overreads
        check_received(frame.data(), static_cast<uint32_t>(frame.size()));
    }
    return 0;
}
