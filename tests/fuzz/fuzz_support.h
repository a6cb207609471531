// Shared by the libFuzzer harnesses of tests/fuzz: failing an invariant, DPDK EAL start-up, a
// byte reader over the fuzzer's input, checksum repair (so mutated frames get past the IPv4
// header check) and the NAT configuration the packet harnesses run. The invariants themselves
// are in fuzz_checks.h.
//
// A failed invariant prints what is wrong and aborts: libFuzzer reports it as a crash and
// keeps the input. Harness code may allocate and use exceptions freely; the engine under test
// may not, and nothing here changes how it runs.
#pragma once

#include <arpa/inet.h>
#include <rte_eal.h>
#include <sched.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "byte_order.h"
#include "config_builder.h"
#include "nat_worker.h"
#include "packet_builder.h"
#include "packet_view.h"

namespace snatgw::fuzz {

// ---------------------------------------------------------------------------
// Failing
// ---------------------------------------------------------------------------

[[noreturn]] inline void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void fail(const char* fmt, ...) {
    std::fputs("\n=== fuzz invariant violated: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputs("\n", stderr);
    std::abort();
}

#define FUZZ_CHECK(cond, ...)                                    \
    do {                                                         \
        if (!(cond)) ::snatgw::fuzz::fail(__VA_ARGS__);          \
    } while (0)

inline std::string hex(const uint8_t* p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        if (i != 0 && i % 16 == 0) s += '\n';
        else if (i != 0) s += ' ';
        s += digits[p[i] >> 4];
        s += digits[p[i] & 0xf];
    }
    return s;
}

// ---------------------------------------------------------------------------
// DPDK
// ---------------------------------------------------------------------------

// The session and host tables are rte_hash tables: initialise a small EAL once per process
// (no hugepages, no PCI, no shared config, so several fuzzers may run side by side). EAL pins
// the main thread to lcore 0's CPU; the fuzzer gets its original CPU set back.
inline void init_eal() {
    static bool done = false;
    if (done) return;
    cpu_set_t cpus;
    const bool have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
    std::vector<std::string> args = {"snatgw-fuzz", "--no-huge", "-m", "512", "--no-pci",
                                     "--no-telemetry", "--no-shconf", "-l", "0",
                                     "--log-level", "lib.eal:error"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
        std::fprintf(stderr, "fuzz: cannot initialise the DPDK EAL\n");
        std::exit(1);
    }
    if (have_cpus) sched_setaffinity(0, sizeof(cpus), &cpus);
    done = true;
}

// ---------------------------------------------------------------------------
// Reading the input
// ---------------------------------------------------------------------------

// Reads bytes front to back; past the end everything reads as zero (so every input, even an
// empty one, decodes to something).
class Reader {
public:
    Reader(const uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}

    bool empty() const { return p_ == end_; }
    std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }
    uint8_t u8() { return p_ == end_ ? 0 : *p_++; }
    uint16_t u16() {
        const uint16_t hi = u8();
        return static_cast<uint16_t>(hi << 8 | u8());
    }
    uint32_t u32() {
        const uint32_t hi = u16();
        return hi << 16 | u16();
    }
    // Up to n bytes (fewer at the end).
    std::vector<uint8_t> bytes(std::size_t n) {
        if (n > left()) n = left();
        std::vector<uint8_t> v(p_, p_ + n);
        p_ += n;
        return v;
    }

private:
    const uint8_t* p_;
    const uint8_t* end_;
};

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

// Where the IPv4 header of an Ethernet frame starts (after one optional 802.1Q tag), or 0 when
// the frame is not IPv4.
inline uint32_t ipv4_offset(const uint8_t* f, std::size_t len) {
    if (len < 14) return 0;
    uint16_t type = load_be16(f + 12);
    uint32_t off = 14;
    if (type == kEtherTypeVlan) {
        if (len < 18) return 0;
        type = load_be16(f + 16);
        off = 18;
    }
    return type == kEtherTypeIpv4 ? off : 0;
}

// Recomputes the checksum of the IPv4 header at ip (avail bytes present) if its header length
// fits; with l4, also the TCP/UDP/ICMP checksum when the whole packet is present (an ICMP
// error's embedded IPv4 header first, when inner is set). Anything that does not fit is left
// alone: the point is to get mutated frames past the checksum checks, not to validate them.
inline void fix_ipv4(uint8_t* ip, std::size_t avail, bool l4, bool inner) {
    using test::inet_checksum;
    using test::l4_checksum;
    if (avail < 20) return;
    const std::size_t ihl = static_cast<std::size_t>(ip[0] & 0x0f) * 4;
    if (ihl < 20 || ihl > avail) return;
    const std::size_t total = load_be16(ip + ipv4_off::kTotalLen);
    if (l4 && total >= ihl && total <= avail && (load_be16(ip + ipv4_off::kFrag) & 0x3fff) == 0) {
        uint8_t* seg = ip + ihl;
        const std::size_t len = total - ihl;
        const uint32_t src = load_be32(ip + ipv4_off::kSrc), dst = load_be32(ip + ipv4_off::kDst);
        switch (ip[ipv4_off::kProto]) {
            case kProtoTcp:
                if (len >= 20) {
                    store_be16(seg + 16, 0);
                    store_be16(seg + 16, l4_checksum(src, dst, kProtoTcp, seg, len));
                }
                break;
            case kProtoUdp:
                if (len >= 8) {
                    std::size_t ulen = load_be16(seg + 4);
                    if (ulen < 8 || ulen > len) ulen = len;
                    store_be16(seg + 6, 0);
                    uint16_t c = l4_checksum(src, dst, kProtoUdp, seg, ulen);
                    store_be16(seg + 6, c == 0 ? 0xffff : c);
                }
                break;
            case kProtoIcmp:
                if (len >= 8) {
                    if (inner && len > 8) fix_ipv4(seg + 8, len - 8, false, false);
                    store_be16(seg + 2, 0);
                    store_be16(seg + 2, inet_checksum(seg, len));
                }
                break;
            default:
                break;
        }
    }
    store_be16(ip + ipv4_off::kCsum, 0);
    store_be16(ip + ipv4_off::kCsum, inet_checksum(ip, ihl));
}

inline void fix_checksums(uint8_t* f, std::size_t len, bool l4, bool inner) {
    const uint32_t off = ipv4_offset(f, len);
    if (off != 0) fix_ipv4(f + off, len - off, l4, inner);
}

inline bool checksums_ok(const uint8_t* f, std::size_t len) {
    return test::verify_checksums(f, len).ok;
}

// ---------------------------------------------------------------------------
// The NAT configuration of the packet harnesses
// ---------------------------------------------------------------------------
//
//   198.18.0.0/25, 10.0.0.0/8   -> "wide":    198.19.0.10-198.19.0.11, ports 64512-65535, liberal
//   198.18.0.128/26             -> "strict":  198.19.0.20, ports 1-64, strict, short timeouts,
//                                             at most 4 sessions per host
//   198.18.0.192/26             -> "retrans": 198.19.0.30-198.19.0.31, ports 3000-3007,
//                                             retrans-ok (the ports run out quickly)
// Remotes are anything else (the seeds use 198.19.0.100 and 203.0.113.0/24). The port ranges
// touch both ends of the port space; they are kept small because the port allocator's set-up
// is proportional to them and a fresh engine is built for every input.

inline NatConfig fuzz_nat_config(uint16_t workers) {
    PoolSpec wide;
    wide.name = "wide";
    wide.addresses = "198.19.0.10-198.19.0.11";
    wide.ports = "64512-65535";
    PoolSpec strict;
    strict.name = "strict";
    strict.addresses = "198.19.0.20";
    strict.ports = "1-64";
    strict.policy = "strict";
    strict.timeouts = Timeouts{30, 5, 5, 5, 10, 1};
    strict.max_sessions_per_host = 4;
    PoolSpec retrans;
    retrans.name = "retrans";
    retrans.addresses = "198.19.0.30-198.19.0.31";
    retrans.ports = "3000-3007";
    retrans.policy = "retrans-ok";
    return build_nat_config(workers, {wide, strict, retrans},
                            {{"198.18.0.0/25", "wide"},
                             {"10.0.0.0/8", "wide"},
                             {"198.18.0.128/26", "strict"},
                             {"198.18.0.192/26", "retrans"}});
}

// Engine parameters picked by the first input byte: workers (1..4), this worker's id, table
// sizes (small tables reach eviction, exhaustion and host limits quickly). The fragment tables
// are always small (worker_params).
struct EngineShape {
    uint16_t workers = 1;
    uint16_t worker_id = 0;
    uint32_t sessions = 64;
    uint32_t hosts = 16;
};

inline EngineShape engine_shape(uint8_t b) {
    static constexpr uint32_t kSessions[4] = {16, 64, 256, 16};
    static constexpr uint32_t kHosts[4] = {64, 16, 256, 2};
    EngineShape s;
    s.workers = static_cast<uint16_t>(1 + (b & 3));
    s.worker_id = static_cast<uint16_t>(((b >> 2) & 3) % s.workers);
    s.sessions = kSessions[(b >> 4) & 3];
    s.hosts = kHosts[(b >> 6) & 3];
    return s;
}

inline WorkerParams worker_params(const EngineShape& s) {
    WorkerParams wp;
    wp.worker_id = s.worker_id;
    wp.session_capacity = s.sessions;
    wp.host_capacity = s.hosts;
    wp.seed = 0x5eed;  // deterministic ports: an input replays the same way
    // Small fragment tables: eviction and a full hold are a few frames away.
    wp.fragment_datagrams = 8;
    wp.fragments_held = 16;
    // One worker at a time exists per process, so the rte_hash names can be reused.
    wp.table_prefix = "fz";
    return wp;
}

}  // namespace snatgw::fuzz
