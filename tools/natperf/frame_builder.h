// natperf's test frames: Ethernet / IPv4 / UDP with a 16-byte payload, or Ethernet / IPv4 /
// TCP without payload, built into a buffer and parsed back from what arrives.
//
// UDP payload (network byte order), placed right after the UDP header:
//   u16 magic 0x4e50 ("NP") | u8 kind | u8 flags | u32 tuple index | u64 TSC at send time
// The rest of the frame (up to --frame-size minus the 4-byte FCS) is zero. A 64-byte frame
// (60 bytes + FCS) leaves 18 bytes of UDP payload, so the payload always fits.
// TCP frames (RFC 9693 stateful tests) carry no payload and are 60 bytes (64 with FCS): the
// Initiator's SYN has seq = tuple index; the Responder's SYN/ACK has ack = tuple index + 1.
// The flags byte: bit 0 = the TSC is a latency timestamp; bits 1..7 = the trial generation
// (frames of an earlier trial arriving late are told apart from the current one's).
//
// Pure C++ on byte buffers (no DPDK), bounds-checked; unit-tested in
// tests/unit/natperf_frame_builder_test.cpp. Addresses and ports in host byte order.
#pragma once

#include <array>
#include <cstdint>

namespace natperf {

using Mac = std::array<uint8_t, 6>;

enum class Proto : uint8_t { Udp = 17, Tcp = 6 };

// What a frame is for (the payload's kind byte; for TCP derived from the flags).
enum class Kind : uint8_t {
    Phase1 = 1,      // Initiator -> Responder, creates the DUT's state (UDP, or a TCP SYN)
    Forward = 2,     // Initiator -> Responder over an existing tuple (phase 2)
    Reverse = 3,     // Responder -> Initiator over a learned tuple (phase 2)
    Validation = 4,  // Responder -> Initiator, one per learned tuple (UDP, or a TCP SYN/ACK)
};

inline constexpr uint16_t kMagic = 0x4e50;
inline constexpr uint32_t kPayloadLen = 16;
inline constexpr uint32_t kEthLen = 14, kIpLen = 20, kUdpLen = 8, kTcpLen = 20;
inline constexpr uint32_t kMinFrameLen = 60;     // 64 with FCS
inline constexpr uint32_t kMaxFrameLen = 1514;   // 1518 with FCS
inline constexpr uint32_t kTcpServerIsn = 0x4e500000;
inline constexpr uint8_t kFlagTimestamp = 0x01;

struct FrameSpec {
    Proto proto = Proto::Udp;
    uint32_t frame_len = kMinFrameLen;  // without FCS (UDP only; TCP frames are 60 bytes)
    Mac src_mac{}, dst_mac{};
    uint32_t src_ip = 0, dst_ip = 0;
    uint16_t src_port = 0, dst_port = 0;
    Kind kind = Kind::Phase1;
    uint8_t flags = 0;
    uint32_t index = 0;
    uint64_t tsc = 0;
    uint16_t ip_id = 0;
};

// The length of the frame spec describes (what build_frame writes).
uint32_t frame_length(const FrameSpec& spec);

// Writes the frame into out; returns its length, or 0 when cap is too small or frame_len is
// out of [kMinFrameLen, kMaxFrameLen]. IPv4 and UDP/TCP checksums are correct.
uint32_t build_frame(uint8_t* out, uint32_t cap, const FrameSpec& spec);

enum class ParseStatus : uint8_t {
    Ours,       // one of natperf's test frames: `parsed` is filled
    Arp,        // an ARP frame (the caller hands it to the ARP responder)
    Foreign,    // well formed but not ours (other protocol, no magic, other addresses...)
    Malformed,  // truncated or inconsistent headers
};

struct ParsedFrame {
    Mac src_mac{}, dst_mac{};
    uint32_t src_ip = 0, dst_ip = 0;
    uint16_t src_port = 0, dst_port = 0;
    Proto proto = Proto::Udp;
    Kind kind = Kind::Phase1;
    uint8_t flags = 0;
    uint32_t index = 0;
    uint64_t tsc = 0;
};

// Never reads beyond len. Checksums are not verified (the DUT rewrote them; see the tests).
ParseStatus parse_frame(const uint8_t* frame, uint32_t len, ParsedFrame& out);

}  // namespace natperf
