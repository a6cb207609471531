// packet_builder.h - header-only test utility for snatgw unit tests.
//
// Builds complete Ethernet/802.1Q/IPv4/TCP/UDP/ICMP frames with correct
// checksums (PacketBuilder), recomputes and verifies every checksum of a frame
// from scratch, including the packet embedded in ICMP errors
// (verify_checksums), and decodes frames into plain host-order fields for
// assertions (decode). Standard library only: no DPDK, no system network
// headers. All parsing checks lengths before reading.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace snatgw::test {

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

inline constexpr uint8_t TCP_FIN = 0x01;
inline constexpr uint8_t TCP_SYN = 0x02;
inline constexpr uint8_t TCP_RST = 0x04;
inline constexpr uint8_t TCP_PSH = 0x08;
inline constexpr uint8_t TCP_ACK = 0x10;
inline constexpr uint8_t TCP_URG = 0x20;
inline constexpr uint8_t TCP_ECE = 0x40;
inline constexpr uint8_t TCP_CWR = 0x80;

inline constexpr uint8_t PROTO_ICMP = 1;
inline constexpr uint8_t PROTO_TCP = 6;
inline constexpr uint8_t PROTO_UDP = 17;

inline constexpr uint8_t ICMP_TYPE_ECHO_REPLY = 0;
inline constexpr uint8_t ICMP_TYPE_DEST_UNREACH = 3;
inline constexpr uint8_t ICMP_TYPE_ECHO_REQUEST = 8;
inline constexpr uint8_t ICMP_TYPE_TIME_EXCEEDED = 11;
inline constexpr uint8_t ICMP_CODE_FRAG_NEEDED = 4;  // with type 3

inline constexpr uint16_t ETHERTYPE_IPV4 = 0x0800;
inline constexpr uint16_t ETHERTYPE_VLAN = 0x8100;

using Mac = std::array<uint8_t, 6>;
inline constexpr Mac DEFAULT_SRC_MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
inline constexpr Mac DEFAULT_DST_MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

// ---------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------

// "a.b.c.d" -> IPv4 address in host byte order. Strict: exactly four decimal
// parts 0..255, no leading zeros, no surrounding text.
inline uint32_t ip(const char* dotted) {
    if (dotted == nullptr) throw std::invalid_argument("ip(): null address");
    uint32_t result = 0;
    const char* p = dotted;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (*p != '.') throw std::invalid_argument(std::string("ip(): bad address '") + dotted + "'");
            ++p;
        }
        if (*p < '0' || *p > '9') throw std::invalid_argument(std::string("ip(): bad address '") + dotted + "'");
        unsigned value = 0;
        int digits = 0;
        const char* start = p;
        while (*p >= '0' && *p <= '9') {
            value = value * 10 + static_cast<unsigned>(*p - '0');
            ++p;
            if (++digits > 3) throw std::invalid_argument(std::string("ip(): bad address '") + dotted + "'");
        }
        if (value > 255 || (digits > 1 && *start == '0'))
            throw std::invalid_argument(std::string("ip(): bad address '") + dotted + "'");
        result = (result << 8) | value;
    }
    if (*p != '\0') throw std::invalid_argument(std::string("ip(): bad address '") + dotted + "'");
    return result;
}

inline std::string ip_str(uint32_t host_order) {
    std::string s;
    for (int shift = 24; shift >= 0; shift -= 8) {
        if (!s.empty()) s += '.';
        s += std::to_string((host_order >> shift) & 0xffu);
    }
    return s;
}

// ---------------------------------------------------------------------------
// Checksums (plain RFC 1071 one's-complement sum)
// ---------------------------------------------------------------------------

// Adds `len` bytes as big-endian 16-bit words to `sum`; an odd trailing byte
// is the high byte of a word padded with zero. Chain only even-length pieces.
inline uint64_t csum_add(uint64_t sum, const uint8_t* data, size_t len) {
    size_t i = 0;
    for (; i + 1 < len; i += 2) sum += (static_cast<uint32_t>(data[i]) << 8) | data[i + 1];
    if (i < len) sum += static_cast<uint32_t>(data[i]) << 8;
    return sum;
}

// Folds carries into 16 bits and returns the one's complement (the checksum
// value to store big-endian in the header).
inline uint16_t csum_fold(uint64_t sum) {
    while (sum >> 16) sum = (sum & 0xffffu) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffffu);
}

// Internet checksum of a buffer (e.g. an IPv4 header with its checksum field
// zeroed, or a whole ICMP message with its checksum field zeroed).
inline uint16_t inet_checksum(const uint8_t* data, size_t len) { return csum_fold(csum_add(0, data, len)); }

inline uint64_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t proto, size_t l4_len) {
    uint64_t sum = 0;
    sum += src >> 16;
    sum += src & 0xffffu;
    sum += dst >> 16;
    sum += dst & 0xffffu;
    sum += proto;
    sum += static_cast<uint64_t>(l4_len & 0xffffu);
    return sum;
}

// TCP/UDP checksum over pseudo-header + segment (segment's checksum field
// must be zero). Does NOT apply the UDP 0 -> 0xffff rule.
inline uint16_t l4_checksum(uint32_t src, uint32_t dst, uint8_t proto, const uint8_t* seg, size_t len) {
    return csum_fold(csum_add(pseudo_header_sum(src, dst, proto, len), seg, len));
}

namespace detail {

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t rd32(const uint8_t* p) {
    return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
           (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
inline void wr16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}
inline void wr32(uint8_t* p, uint32_t v) {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}
inline std::string hex16(uint16_t v) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 12; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xf];
    return s;
}
inline bool is_icmp_error(uint8_t type) {
    return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}
inline bool is_icmp_echo(uint8_t type) { return type == 0 || type == 8; }

}  // namespace detail

// ---------------------------------------------------------------------------
// PacketBuilder
// ---------------------------------------------------------------------------
//
// Fluent builder. State is cumulative; use a fresh builder (or reset()) per
// packet. Per-L4 options must be called after the L4 selector they belong to
// (tcp() clears TCP options, udp() clears udp_zero_checksum, icmp_error()
// clears mtu). build()/build_ip() are const and may be called repeatedly.
// ipv4() must be called before build()/build_ip() (std::logic_error otherwise).
class PacketBuilder {
public:
    PacketBuilder& reset() {
        *this = PacketBuilder{};
        return *this;
    }

    // --- L2 ---
    PacketBuilder& eth(const Mac& src = DEFAULT_SRC_MAC, const Mac& dst = DEFAULT_DST_MAC) {
        src_mac_ = src;
        dst_mac_ = dst;
        return *this;
    }
    // Single 802.1Q tag, TPID 0x8100. vlan_id is 12 bits.
    PacketBuilder& vlan(uint16_t vlan_id, uint8_t pcp = 0) {
        if (vlan_id > 0x0fff) throw std::invalid_argument("vlan(): id > 4095");
        has_vlan_ = true;
        vlan_id_ = vlan_id;
        vlan_pcp_ = static_cast<uint8_t>(pcp & 0x7);
        return *this;
    }
    PacketBuilder& no_vlan() {
        has_vlan_ = false;
        return *this;
    }
    // Ethernet padding: build() zero-pads the frame to at least this length
    // (60 = minimum frame without FCS). 0 = no padding (default).
    PacketBuilder& pad_to(size_t min_frame_len = 60) {
        pad_to_ = min_frame_len;
        return *this;
    }

    // --- L3 ---
    PacketBuilder& ipv4(uint32_t src, uint32_t dst) {
        has_ip_ = true;
        src_ = src;
        dst_ = dst;
        return *this;
    }
    PacketBuilder& ttl(uint8_t v) {
        ttl_ = v;
        return *this;
    }
    PacketBuilder& ip_id(uint16_t v) {
        ip_id_ = v;
        return *this;
    }
    PacketBuilder& tos(uint8_t v) {
        tos_ = v;
        return *this;
    }
    PacketBuilder& df(bool on = true) {
        df_ = on;
        return *this;
    }
    // Raw fragment fields: offset in 8-byte units, MF flag. The L4 header is
    // still emitted as configured; for a non-first fragment use
    // ip_proto(p) + payload(bytes) to control the exact content.
    PacketBuilder& frag(uint16_t offset_8byte_units, bool more_fragments) {
        if (offset_8byte_units > 0x1fff) throw std::invalid_argument("frag(): offset > 8191");
        frag_offset_ = offset_8byte_units;
        mf_ = more_fragments;
        return *this;
    }
    // n bytes of IP options (multiple of 4, <= 40): NOP (0x01) ... , EOL (0x00).
    PacketBuilder& ip_options(size_t n) {
        if (n % 4 != 0 || n > 40) throw std::invalid_argument("ip_options(): n must be a multiple of 4 and <= 40");
        ip_opts_len_ = n;
        return *this;
    }
    // No L4 header: the IP payload is exactly payload(), protocol field = p.
    PacketBuilder& ip_proto(uint8_t p) {
        l4_ = L4::Raw;
        raw_proto_ = p;
        return *this;
    }

    // --- L4 ---
    PacketBuilder& tcp(uint16_t sport, uint16_t dport, uint32_t seq = 0, uint32_t ack = 0,
                       uint8_t flags = TCP_ACK, uint16_t window = 65535) {
        l4_ = L4::Tcp;
        sport_ = sport;
        dport_ = dport;
        seq_ = seq;
        ack_ = ack;
        tcp_flags_ = flags;
        window_ = window;
        tcp_opts_.clear();
        return *this;
    }
    // MSS option (kind 2, len 4).
    PacketBuilder& tcp_option_mss(uint16_t mss) {
        add_tcp_option({0x02, 0x04, static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)});
        return *this;
    }
    // Window-scale option (kind 3, len 3), preceded by one NOP -> 4 bytes.
    PacketBuilder& tcp_option_wscale(uint8_t shift) {
        add_tcp_option({0x01, 0x03, 0x03, shift});
        return *this;
    }
    // Arbitrary option bytes, padded with NOP (0x01) to a multiple of 4.
    PacketBuilder& tcp_options_raw(std::vector<uint8_t> bytes) {
        while (bytes.size() % 4 != 0) bytes.push_back(0x01);
        add_tcp_option(bytes);
        return *this;
    }

    PacketBuilder& udp(uint16_t sport, uint16_t dport) {
        l4_ = L4::Udp;
        sport_ = sport;
        dport_ = dport;
        udp_zero_csum_ = false;
        return *this;
    }
    // Leave the UDP checksum 0 ("no checksum").
    PacketBuilder& udp_zero_checksum(bool on = true) {
        udp_zero_csum_ = on;
        return *this;
    }

    // ICMP echo: type 8 request / 0 reply, code 0. payload() follows id/seq.
    PacketBuilder& icmp_echo(uint8_t type, uint16_t id, uint16_t seq) {
        l4_ = L4::IcmpEcho;
        icmp_type_ = type;
        icmp_code_ = 0;
        icmp_id_ = id;
        icmp_seq_ = seq;
        return *this;
    }
    // ICMP error (type 3/11/...): 8-byte ICMP header then `embedded_ip_packet`
    // (an IP packet starting at its IPv4 header, possibly truncated; see
    // build_ip()). Bytes 4..7 of the ICMP header are zero except for
    // mtu(n), which sets the next-hop MTU field (bytes 6..7, type 3 code 4).
    // payload() must be empty with icmp_error (std::logic_error otherwise).
    PacketBuilder& icmp_error(uint8_t type, uint8_t code, const std::vector<uint8_t>& embedded_ip_packet) {
        l4_ = L4::IcmpError;
        icmp_type_ = type;
        icmp_code_ = code;
        embedded_ = embedded_ip_packet;
        mtu_ = 0;
        return *this;
    }
    PacketBuilder& mtu(uint16_t next_hop_mtu) {
        mtu_ = next_hop_mtu;
        return *this;
    }

    // n bytes of pattern (i & 0xff), or explicit bytes. Replaces any previous payload.
    PacketBuilder& payload(size_t n) {
        payload_.resize(n);
        for (size_t i = 0; i < n; ++i) payload_[i] = static_cast<uint8_t>(i & 0xff);
        return *this;
    }
    PacketBuilder& payload(const std::vector<uint8_t>& bytes) {
        payload_ = bytes;
        return *this;
    }

    // Deliberately wrong checksums (stored verbatim instead of the computed value).
    PacketBuilder& ip_checksum_override(uint16_t v) {
        ip_csum_override_ = v;
        return *this;
    }
    PacketBuilder& l4_checksum_override(uint16_t v) {
        l4_csum_override_ = v;
        return *this;
    }

    // The packet starting at the IPv4 header (no Ethernet), all lengths and
    // checksums computed.
    std::vector<uint8_t> build_ip() const {
        using detail::wr16;
        using detail::wr32;
        if (!has_ip_) throw std::logic_error("PacketBuilder: ipv4() not called");
        const std::vector<uint8_t> l4 = build_l4();
        const size_t ihl = 20 + ip_opts_len_;
        const size_t total = ihl + l4.size();
        if (total > 0xffff) throw std::length_error("PacketBuilder: IPv4 total length > 65535");

        std::vector<uint8_t> pkt(total, 0);
        uint8_t* h = pkt.data();
        h[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
        h[1] = tos_;
        wr16(h + 2, static_cast<uint16_t>(total));
        wr16(h + 4, ip_id_);
        wr16(h + 6, static_cast<uint16_t>((df_ ? 0x4000 : 0) | (mf_ ? 0x2000 : 0) | frag_offset_));
        h[8] = ttl_;
        h[9] = proto();
        wr32(h + 12, src_);
        wr32(h + 16, dst_);
        if (ip_opts_len_ > 0) {
            for (size_t i = 20; i < ihl; ++i) h[i] = 0x01;
            h[ihl - 1] = 0x00;
        }
        wr16(h + 10, ip_csum_override_ ? *ip_csum_override_ : inet_checksum(h, ihl));

        uint8_t* seg = h + ihl;
        for (size_t i = 0; i < l4.size(); ++i) seg[i] = l4[i];
        const size_t len = l4.size();
        switch (l4_) {
            case L4::Tcp:
                wr16(seg + 16, l4_csum_override_ ? *l4_csum_override_ : l4_checksum(src_, dst_, PROTO_TCP, seg, len));
                break;
            case L4::Udp: {
                uint16_t c = 0;
                if (l4_csum_override_) {
                    c = *l4_csum_override_;
                } else if (!udp_zero_csum_) {
                    c = l4_checksum(src_, dst_, PROTO_UDP, seg, len);
                    if (c == 0) c = 0xffff;
                }
                wr16(seg + 6, c);
                break;
            }
            case L4::IcmpEcho:
            case L4::IcmpError:
                wr16(seg + 2, l4_csum_override_ ? *l4_csum_override_ : inet_checksum(seg, len));
                break;
            case L4::Raw:
                break;
        }
        return pkt;
    }

    // Complete Ethernet frame (dst MAC, src MAC, [802.1Q], ethertype 0x0800, IPv4 ...).
    std::vector<uint8_t> build() const {
        const std::vector<uint8_t> ippkt = build_ip();
        std::vector<uint8_t> f;
        f.reserve(18 + ippkt.size());
        f.insert(f.end(), dst_mac_.begin(), dst_mac_.end());
        f.insert(f.end(), src_mac_.begin(), src_mac_.end());
        if (has_vlan_) {
            const uint16_t tci = static_cast<uint16_t>((vlan_pcp_ << 13) | vlan_id_);
            f.push_back(static_cast<uint8_t>(ETHERTYPE_VLAN >> 8));
            f.push_back(static_cast<uint8_t>(ETHERTYPE_VLAN & 0xff));
            f.push_back(static_cast<uint8_t>(tci >> 8));
            f.push_back(static_cast<uint8_t>(tci & 0xff));
        }
        f.push_back(static_cast<uint8_t>(ETHERTYPE_IPV4 >> 8));
        f.push_back(static_cast<uint8_t>(ETHERTYPE_IPV4 & 0xff));
        f.insert(f.end(), ippkt.begin(), ippkt.end());
        if (f.size() < pad_to_) f.resize(pad_to_, 0);
        return f;
    }

private:
    enum class L4 { Raw, Tcp, Udp, IcmpEcho, IcmpError };

    uint8_t proto() const {
        switch (l4_) {
            case L4::Tcp: return PROTO_TCP;
            case L4::Udp: return PROTO_UDP;
            case L4::IcmpEcho:
            case L4::IcmpError: return PROTO_ICMP;
            case L4::Raw: break;
        }
        return raw_proto_;
    }

    void add_tcp_option(const std::vector<uint8_t>& bytes) {
        if (l4_ != L4::Tcp) throw std::logic_error("PacketBuilder: TCP option before tcp()");
        if (tcp_opts_.size() + bytes.size() > 40) throw std::length_error("PacketBuilder: TCP options > 40 bytes");
        tcp_opts_.insert(tcp_opts_.end(), bytes.begin(), bytes.end());
    }

    // L4 header + data, checksum field zero.
    std::vector<uint8_t> build_l4() const {
        using detail::wr16;
        using detail::wr32;
        std::vector<uint8_t> s;
        switch (l4_) {
            case L4::Raw:
                s = payload_;
                break;
            case L4::Tcp: {
                const size_t hl = 20 + tcp_opts_.size();
                s.assign(hl, 0);
                wr16(&s[0], sport_);
                wr16(&s[2], dport_);
                wr32(&s[4], seq_);
                wr32(&s[8], ack_);
                s[12] = static_cast<uint8_t>((hl / 4) << 4);
                s[13] = tcp_flags_;
                wr16(&s[14], window_);
                for (size_t i = 0; i < tcp_opts_.size(); ++i) s[20 + i] = tcp_opts_[i];
                s.insert(s.end(), payload_.begin(), payload_.end());
                break;
            }
            case L4::Udp: {
                const size_t len = 8 + payload_.size();
                if (len > 0xffff) throw std::length_error("PacketBuilder: UDP length > 65535");
                s.assign(8, 0);
                wr16(&s[0], sport_);
                wr16(&s[2], dport_);
                wr16(&s[4], static_cast<uint16_t>(len));
                s.insert(s.end(), payload_.begin(), payload_.end());
                break;
            }
            case L4::IcmpEcho:
                s.assign(8, 0);
                s[0] = icmp_type_;
                s[1] = icmp_code_;
                wr16(&s[4], icmp_id_);
                wr16(&s[6], icmp_seq_);
                s.insert(s.end(), payload_.begin(), payload_.end());
                break;
            case L4::IcmpError:
                if (!payload_.empty()) throw std::logic_error("PacketBuilder: payload() not allowed with icmp_error()");
                s.assign(8, 0);
                s[0] = icmp_type_;
                s[1] = icmp_code_;
                wr16(&s[6], mtu_);
                s.insert(s.end(), embedded_.begin(), embedded_.end());
                break;
        }
        return s;
    }

    Mac src_mac_ = DEFAULT_SRC_MAC;
    Mac dst_mac_ = DEFAULT_DST_MAC;
    bool has_vlan_ = false;
    uint16_t vlan_id_ = 0;
    uint8_t vlan_pcp_ = 0;
    size_t pad_to_ = 0;

    bool has_ip_ = false;
    uint32_t src_ = 0, dst_ = 0;
    uint8_t ttl_ = 64;
    uint16_t ip_id_ = 0x1234;
    uint8_t tos_ = 0;
    bool df_ = false;
    bool mf_ = false;
    uint16_t frag_offset_ = 0;
    size_t ip_opts_len_ = 0;
    uint8_t raw_proto_ = 253;  // RFC 3692 experimental, used when no L4 is selected

    L4 l4_ = L4::Raw;
    uint16_t sport_ = 0, dport_ = 0;
    uint32_t seq_ = 0, ack_ = 0;
    uint8_t tcp_flags_ = 0;
    uint16_t window_ = 0;
    std::vector<uint8_t> tcp_opts_;
    bool udp_zero_csum_ = false;
    uint8_t icmp_type_ = 0, icmp_code_ = 0;
    uint16_t icmp_id_ = 0, icmp_seq_ = 0;
    uint16_t mtu_ = 0;
    std::vector<uint8_t> embedded_;
    std::vector<uint8_t> payload_;

    std::optional<uint16_t> ip_csum_override_;
    std::optional<uint16_t> l4_csum_override_;
};

// ---------------------------------------------------------------------------
// Checksum verifier
// ---------------------------------------------------------------------------

struct ChecksumReport {
    bool ok;
    std::string detail;  // empty when ok; otherwise names what is wrong
};

namespace detail {

// Checksum is valid when the one's-complement sum over everything including
// the stored checksum is 0xffff (so a stored 0xffff for a computed 0x0000 is
// accepted, as receivers do). "expected" in messages is the value computed
// with the checksum field zeroed.
inline std::string check_l4_sum(const char* where, const char* what, uint64_t base_sum, const uint8_t* seg,
                                size_t len, size_t csum_off, bool udp) {
    const uint16_t stored = rd16(seg + csum_off);
    if (csum_fold(csum_add(base_sum, seg, len)) == 0) return {};
    std::vector<uint8_t> copy(seg, seg + len);
    copy[csum_off] = 0;
    copy[csum_off + 1] = 0;
    uint16_t expected = csum_fold(csum_add(base_sum, copy.data(), copy.size()));
    if (udp && expected == 0) expected = 0xffff;
    return std::string(where) + " " + what + " checksum " + hex16(stored) + " expected " + hex16(expected);
}

// Verifies the IPv4 packet at p (avail bytes present). outer=false: packet
// embedded in an ICMP error, may be truncated (then L4 is not verified) and
// its ICMP errors are not descended into.
inline std::string verify_ipv4(const char* where, const uint8_t* p, size_t avail, bool outer) {
    const std::string w(where);
    if (avail < 20) return w + " ipv4 header truncated: " + std::to_string(avail) + " bytes";
    if ((p[0] >> 4) != 4) return w + " ip version " + std::to_string(p[0] >> 4) + " is not 4";
    const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    if (ihl < 20) return w + " ipv4 ihl " + std::to_string(ihl) + " bytes < 20";
    if (ihl > avail) return w + " ipv4 header truncated: ihl " + std::to_string(ihl) + " > " + std::to_string(avail) + " bytes present";
    if (inet_checksum(p, ihl) != 0) {
        std::vector<uint8_t> copy(p, p + ihl);
        copy[10] = copy[11] = 0;
        return w + " ipv4 header checksum " + hex16(rd16(p + 10)) + " expected " + hex16(inet_checksum(copy.data(), ihl));
    }
    const size_t total = rd16(p + 2);
    if (total < ihl) return w + " ipv4 total length " + std::to_string(total) + " < ihl " + std::to_string(ihl);
    if (total > avail) {
        if (outer) return w + " ipv4 total length " + std::to_string(total) + " > " + std::to_string(avail) + " bytes present";
        return {};  // truncated embedded packet: L4 cannot be verified
    }
    if ((rd16(p + 6) & 0x3fff) != 0) return {};  // fragment: L4 checksum spans fragments
    const uint32_t src = rd32(p + 12), dst = rd32(p + 16);
    const uint8_t proto = p[9];
    const uint8_t* l4 = p + ihl;
    const size_t len = total - ihl;
    switch (proto) {
        case PROTO_TCP: {
            if (len < 20) return w + " tcp header truncated: " + std::to_string(len) + " bytes";
            const size_t doff = static_cast<size_t>(l4[12] >> 4) * 4;
            if (doff < 20) return w + " tcp data offset " + std::to_string(doff) + " bytes < 20";
            if (doff > len) return w + " tcp data offset " + std::to_string(doff) + " > segment length " + std::to_string(len);
            return check_l4_sum(where, "tcp", pseudo_header_sum(src, dst, PROTO_TCP, len), l4, len, 16, false);
        }
        case PROTO_UDP: {
            if (len < 8) return w + " udp header truncated: " + std::to_string(len) + " bytes";
            const size_t ulen = rd16(l4 + 4);
            if (ulen != len) return w + " udp length " + std::to_string(ulen) + " != ip payload length " + std::to_string(len);
            if (rd16(l4 + 6) == 0) return {};  // no checksum
            return check_l4_sum(where, "udp", pseudo_header_sum(src, dst, PROTO_UDP, len), l4, len, 6, true);
        }
        case PROTO_ICMP: {
            if (len < 8) return w + " icmp header truncated: " + std::to_string(len) + " bytes";
            std::string err = check_l4_sum(where, "icmp", 0, l4, len, 2, false);
            if (!err.empty()) return err;
            if (outer && is_icmp_error(l4[0])) return verify_ipv4("inner", l4 + 8, len - 8, false);
            return {};
        }
        default:
            return {};
    }
}

}  // namespace detail

inline ChecksumReport verify_checksums(const uint8_t* frame, size_t len) {
    using detail::rd16;
    if (frame == nullptr || len < 14) return {false, "ethernet header truncated: " + std::to_string(len) + " bytes"};
    size_t off = 12;
    uint16_t type = rd16(frame + off);
    off += 2;
    if (type == ETHERTYPE_VLAN) {
        if (len < 18) return {false, "vlan tag truncated: " + std::to_string(len) + " bytes"};
        type = rd16(frame + 16);
        off = 18;
    }
    if (type != ETHERTYPE_IPV4) return {false, "ethertype " + detail::hex16(type) + " is not ipv4"};
    std::string err = detail::verify_ipv4("outer", frame + off, len - off, true);
    if (!err.empty()) return {false, err};
    return {true, {}};
}

inline ChecksumReport verify_checksums(const std::vector<uint8_t>& frame) {
    return verify_checksums(frame.data(), frame.size());
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

struct Decoded {
    bool vlan = false;
    uint16_t vlan_id = 0;
    uint8_t vlan_pcp = 0;

    uint32_t src = 0, dst = 0;
    uint8_t ttl = 0, proto = 0;
    uint16_t ip_id = 0;
    uint16_t ip_total_len = 0;
    uint8_t ihl_bytes = 0;
    uint8_t tos = 0;
    bool df = false, mf = false;
    uint16_t frag_offset = 0;  // 8-byte units
    uint16_t ip_checksum = 0;

    uint16_t sport = 0, dport = 0;  // TCP/UDP ports; ICMP echo: both = identifier
    uint32_t seq = 0, ack = 0;
    uint8_t tcp_flags = 0;
    uint16_t window = 0;
    uint8_t tcp_hdr_len = 0;

    uint8_t icmp_type = 0, icmp_code = 0;
    uint16_t icmp_id = 0, icmp_seq = 0;  // echo only
    uint16_t icmp_mtu = 0;               // ICMP type 3: next-hop MTU field

    bool has_inner = false;  // ICMP error with a complete embedded IPv4 header
    uint32_t inner_src = 0, inner_dst = 0;
    uint8_t inner_proto = 0, inner_ttl = 0;
    uint16_t inner_ip_total_len = 0;
    uint16_t inner_sport = 0, inner_dport = 0;  // inner ICMP echo: both = identifier
    uint16_t inner_icmp_id = 0;
    uint8_t inner_icmp_type = 0;
    uint32_t inner_seq = 0;  // inner TCP, when at least 8 bytes present

    uint16_t udp_checksum = 0;  // raw value, to test that zero stays zero
    uint16_t l4_checksum = 0;   // raw TCP/UDP/ICMP checksum field

    size_t l3_offset = 0, l4_offset = 0;
    size_t inner_l3_offset = 0;               // from frame start
    size_t payload_offset = 0, payload_len = 0;  // data after the L4 header (ICMP error: after the 8-byte header)
};

// Decodes Ethernet [+802.1Q] + IPv4 + TCP/UDP/ICMP. Returns nullopt if not
// IPv4 or if the frame is shorter than the IPv4 total length or the L4 header.
// Non-first fragments: L4 fields are left zero. Does not check checksums.
inline std::optional<Decoded> decode(const uint8_t* frame, size_t len) {
    using detail::rd16;
    using detail::rd32;
    Decoded d{};
    if (frame == nullptr || len < 14) return std::nullopt;
    uint16_t type = rd16(frame + 12);
    size_t off = 14;
    if (type == ETHERTYPE_VLAN) {
        if (len < 18) return std::nullopt;
        const uint16_t tci = rd16(frame + 14);
        d.vlan = true;
        d.vlan_id = tci & 0x0fff;
        d.vlan_pcp = static_cast<uint8_t>(tci >> 13);
        type = rd16(frame + 16);
        off = 18;
    }
    if (type != ETHERTYPE_IPV4) return std::nullopt;
    const uint8_t* p = frame + off;
    const size_t avail = len - off;
    if (avail < 20 || (p[0] >> 4) != 4) return std::nullopt;
    const size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
    const size_t total = rd16(p + 2);
    if (ihl < 20 || ihl > avail || total < ihl || total > avail) return std::nullopt;

    d.l3_offset = off;
    d.ihl_bytes = static_cast<uint8_t>(ihl);
    d.tos = p[1];
    d.ip_total_len = static_cast<uint16_t>(total);
    d.ip_id = rd16(p + 4);
    const uint16_t frag = rd16(p + 6);
    d.df = (frag & 0x4000) != 0;
    d.mf = (frag & 0x2000) != 0;
    d.frag_offset = frag & 0x1fff;
    d.ttl = p[8];
    d.proto = p[9];
    d.ip_checksum = rd16(p + 10);
    d.src = rd32(p + 12);
    d.dst = rd32(p + 16);
    d.l4_offset = off + ihl;

    const uint8_t* l4 = p + ihl;
    const size_t l4len = total - ihl;
    d.payload_offset = d.l4_offset;
    d.payload_len = l4len;
    if (d.frag_offset != 0) return d;

    switch (d.proto) {
        case PROTO_TCP: {
            if (l4len < 20) return std::nullopt;
            const size_t doff = static_cast<size_t>(l4[12] >> 4) * 4;
            if (doff < 20 || doff > l4len) return std::nullopt;
            d.sport = rd16(l4);
            d.dport = rd16(l4 + 2);
            d.seq = rd32(l4 + 4);
            d.ack = rd32(l4 + 8);
            d.tcp_hdr_len = static_cast<uint8_t>(doff);
            d.tcp_flags = l4[13];
            d.window = rd16(l4 + 14);
            d.l4_checksum = rd16(l4 + 16);
            d.payload_offset = d.l4_offset + doff;
            d.payload_len = l4len - doff;
            break;
        }
        case PROTO_UDP: {
            if (l4len < 8) return std::nullopt;
            d.sport = rd16(l4);
            d.dport = rd16(l4 + 2);
            d.udp_checksum = rd16(l4 + 6);
            d.l4_checksum = d.udp_checksum;
            d.payload_offset = d.l4_offset + 8;
            d.payload_len = l4len - 8;
            break;
        }
        case PROTO_ICMP: {
            if (l4len < 8) return std::nullopt;
            d.icmp_type = l4[0];
            d.icmp_code = l4[1];
            d.l4_checksum = rd16(l4 + 2);
            d.payload_offset = d.l4_offset + 8;
            d.payload_len = l4len - 8;
            if (detail::is_icmp_echo(d.icmp_type)) {
                d.icmp_id = rd16(l4 + 4);
                d.icmp_seq = rd16(l4 + 6);
                d.sport = d.dport = d.icmp_id;
            } else if (detail::is_icmp_error(d.icmp_type)) {
                if (d.icmp_type == ICMP_TYPE_DEST_UNREACH) d.icmp_mtu = rd16(l4 + 6);
                const uint8_t* in = l4 + 8;
                const size_t in_avail = l4len - 8;
                if (in_avail < 20 || (in[0] >> 4) != 4) break;
                const size_t in_ihl = static_cast<size_t>(in[0] & 0x0f) * 4;
                if (in_ihl < 20 || in_ihl > in_avail) break;
                d.has_inner = true;
                d.inner_l3_offset = d.l4_offset + 8;
                d.inner_ip_total_len = rd16(in + 2);
                d.inner_ttl = in[8];
                d.inner_proto = in[9];
                d.inner_src = rd32(in + 12);
                d.inner_dst = rd32(in + 16);
                if ((rd16(in + 6) & 0x1fff) != 0) break;  // non-first fragment
                const uint8_t* il4 = in + in_ihl;
                size_t il4len = in_avail - in_ihl;
                if (d.inner_ip_total_len >= in_ihl && d.inner_ip_total_len - in_ihl < il4len)
                    il4len = d.inner_ip_total_len - in_ihl;
                if (d.inner_proto == PROTO_TCP || d.inner_proto == PROTO_UDP) {
                    if (il4len >= 4) {
                        d.inner_sport = rd16(il4);
                        d.inner_dport = rd16(il4 + 2);
                    }
                    if (d.inner_proto == PROTO_TCP && il4len >= 8) d.inner_seq = rd32(il4 + 4);
                } else if (d.inner_proto == PROTO_ICMP && il4len >= 8) {
                    d.inner_icmp_type = il4[0];
                    d.inner_icmp_id = rd16(il4 + 4);
                    if (detail::is_icmp_echo(d.inner_icmp_type)) d.inner_sport = d.inner_dport = d.inner_icmp_id;
                }
            }
            break;
        }
        default:
            break;
    }
    return d;
}

inline std::optional<Decoded> decode(const std::vector<uint8_t>& frame) { return decode(frame.data(), frame.size()); }

// ---------------------------------------------------------------------------
// Fragments
// ---------------------------------------------------------------------------

namespace detail {

// Offset of the IPv4 header of an Ethernet [+802.1Q] frame, or 0.
inline size_t ipv4_offset(const std::vector<uint8_t>& f) {
    if (f.size() < 14) return 0;
    if (rd16(f.data() + 12) == ETHERTYPE_IPV4) return 14;
    if (rd16(f.data() + 12) == ETHERTYPE_VLAN && f.size() >= 18 && rd16(f.data() + 16) == ETHERTYPE_IPV4) return 18;
    return 0;
}

inline void fix_ipv4_checksum(uint8_t* h, size_t ihl) {
    h[10] = h[11] = 0;
    wr16(h + 10, inet_checksum(h, ihl));
}

}  // namespace detail

// Splits a complete frame (Ethernet [+802.1Q] + an unfragmented IPv4 packet) the way a sender
// does (RFC 791): pieces of at most `max_payload` IP payload bytes (rounded down to a multiple
// of 8), each with a copy of the header (options included), its offset and MF flag, total
// length and header checksum. The L4 checksum stays the whole datagram's (in the first piece).
inline std::vector<std::vector<uint8_t>> fragment_frame(const std::vector<uint8_t>& frame, size_t max_payload) {
    using detail::rd16;
    const size_t l3 = detail::ipv4_offset(frame);
    if (l3 == 0 || frame.size() < l3 + 20) throw std::invalid_argument("fragment_frame(): not an IPv4 frame");
    const uint8_t* ip = frame.data() + l3;
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    const size_t total = rd16(ip + 2);
    if ((rd16(ip + 6) & 0x3fff) != 0) throw std::invalid_argument("fragment_frame(): already a fragment");
    if (total > frame.size() - l3 || total < ihl) throw std::invalid_argument("fragment_frame(): bad total length");
    const size_t step = max_payload / 8 * 8;
    if (step == 0) throw std::invalid_argument("fragment_frame(): max_payload < 8");
    const size_t payload = total - ihl;
    std::vector<std::vector<uint8_t>> out;
    for (size_t off = 0; off < payload; off += step) {
        const size_t n = payload - off < step ? payload - off : step;
        const bool more = off + n < payload;
        std::vector<uint8_t> f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(l3 + ihl));
        f.insert(f.end(), ip + ihl + off, ip + ihl + off + n);
        uint8_t* h = f.data() + l3;
        detail::wr16(h + 2, static_cast<uint16_t>(ihl + n));
        detail::wr16(h + 6, static_cast<uint16_t>((rd16(ip + 6) & 0x4000) | (more ? 0x2000 : 0) | (off / 8)));
        detail::fix_ipv4_checksum(h, ihl);
        out.push_back(std::move(f));
    }
    return out;
}

// One fragment frame with raw fields, for malformed cases: the header of `frame` (a complete
// frame), offset in 8-byte units, MF, and `data` as its IP payload.
inline std::vector<uint8_t> fragment_piece(const std::vector<uint8_t>& frame, uint16_t offset_units, bool more,
                                           const std::vector<uint8_t>& data) {
    const size_t l3 = detail::ipv4_offset(frame);
    if (l3 == 0) throw std::invalid_argument("fragment_piece(): not an IPv4 frame");
    const size_t ihl = static_cast<size_t>(frame[l3] & 0x0f) * 4;
    std::vector<uint8_t> f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(l3 + ihl));
    f.insert(f.end(), data.begin(), data.end());
    uint8_t* h = f.data() + l3;
    detail::wr16(h + 2, static_cast<uint16_t>(ihl + data.size()));
    detail::wr16(h + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | (offset_units & 0x1fff)));
    detail::fix_ipv4_checksum(h, ihl);
    return f;
}

// Reassembles fragment frames (any order, duplicates allowed if identical) as a receiver would:
// one frame with the first fragment's L2 and IPv4 header, MF and offset cleared, total length
// and header checksum recomputed. nullopt (with `why`) if they are not all of one datagram
// (source, destination, id, protocol), leave a gap, miss the last piece, or overlap with
// different bytes. Checks every piece's header checksum.
inline std::optional<std::vector<uint8_t>> reassemble(const std::vector<std::vector<uint8_t>>& frames,
                                                      std::string* why = nullptr) {
    using detail::rd16;
    using detail::rd32;
    auto fail = [&](std::string w) -> std::optional<std::vector<uint8_t>> {
        if (why) *why = std::move(w);
        return std::nullopt;
    };
    if (frames.empty()) return fail("no fragments");
    std::vector<uint8_t> data;
    std::vector<bool> have;
    size_t end = 0;  // payload length, from the piece without MF
    const std::vector<uint8_t>* first = nullptr;
    uint32_t src = 0, dst = 0;
    uint16_t id = 0;
    uint8_t proto = 0;
    for (size_t i = 0; i < frames.size(); ++i) {
        const std::vector<uint8_t>& f = frames[i];
        const size_t l3 = detail::ipv4_offset(f);
        if (l3 == 0 || f.size() < l3 + 20) return fail("piece " + std::to_string(i) + " is not IPv4");
        const uint8_t* h = f.data() + l3;
        const size_t ihl = static_cast<size_t>(h[0] & 0x0f) * 4;
        const size_t total = rd16(h + 2);
        if (ihl < 20 || total < ihl || total > f.size() - l3) return fail("piece " + std::to_string(i) + " has bad lengths");
        if (inet_checksum(h, ihl) != 0) return fail("piece " + std::to_string(i) + " has a bad header checksum");
        if (i == 0) {
            src = rd32(h + 12);
            dst = rd32(h + 16);
            id = rd16(h + 4);
            proto = h[9];
        } else if (rd32(h + 12) != src || rd32(h + 16) != dst || rd16(h + 4) != id || h[9] != proto) {
            return fail("piece " + std::to_string(i) + " is of another datagram (" + ip_str(rd32(h + 12)) + " -> " +
                        ip_str(rd32(h + 16)) + " id " + std::to_string(rd16(h + 4)) + ")");
        }
        const uint16_t fl = rd16(h + 6);
        const size_t off = static_cast<size_t>(fl & 0x1fff) * 8;
        const size_t n = total - ihl;
        if (off == 0) first = &f;
        if ((fl & 0x2000) == 0) end = off + n;
        if (data.size() < off + n) {
            data.resize(off + n, 0);
            have.resize(off + n, false);
        }
        for (size_t k = 0; k < n; ++k) {
            const uint8_t b = h[ihl + k];
            if (have[off + k] && data[off + k] != b) return fail("overlapping pieces differ at byte " + std::to_string(off + k));
            data[off + k] = b;
            have[off + k] = true;
        }
    }
    if (first == nullptr) return fail("no first fragment");
    if (end == 0) return fail("no last fragment");
    if (data.size() != end) return fail("bytes beyond the last fragment");
    for (size_t k = 0; k < end; ++k)
        if (!have[k]) return fail("gap at byte " + std::to_string(k));
    const size_t l3 = detail::ipv4_offset(*first);
    const size_t ihl = static_cast<size_t>((*first)[l3] & 0x0f) * 4;
    std::vector<uint8_t> out(first->begin(), first->begin() + static_cast<std::ptrdiff_t>(l3 + ihl));
    out.insert(out.end(), data.begin(), data.end());
    uint8_t* h = out.data() + l3;
    if (ihl + end > 0xffff) return fail("datagram longer than 65535 bytes");
    detail::wr16(h + 2, static_cast<uint16_t>(ihl + end));
    detail::wr16(h + 6, static_cast<uint16_t>(rd16(h + 6) & 0x4000));
    detail::fix_ipv4_checksum(h, ihl);
    return out;
}

}  // namespace snatgw::test
