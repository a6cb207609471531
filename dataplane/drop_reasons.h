// The one list of reasons a packet is dropped. Every drop in the dataplane names one of these;
// each has its own counter (per worker) and a stable snake_case name used in stats and metrics.
// Add a reason here and it appears everywhere.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace snatgw {

// X(enum_name, "metric_name", "what it means")
#define SNATGW_DROP_REASONS(X)                                                                  \
    X(FrameTooShort, "frame_too_short", "shorter than an Ethernet header")                     \
    X(VlanTooShort, "vlan_too_short", "802.1Q tag cut off")                                    \
    X(UnknownEthertype, "unknown_ethertype", "neither IPv4 nor ARP (or a stacked VLAN tag)")   \
    X(Ipv4TooShort, "ipv4_too_short", "shorter than a minimal IPv4 header")                    \
    X(Ipv4BadVersion, "ipv4_bad_version", "IP version field is not 4")                         \
    X(Ipv4BadIhl, "ipv4_bad_ihl", "header length below 20 bytes or beyond the frame")          \
    X(Ipv4BadTotalLength, "ipv4_bad_total_length", "total length below header or beyond frame") \
    X(Ipv4BadChecksum, "ipv4_bad_checksum", "IPv4 header checksum does not verify")            \
    X(Ipv4Fragment, "ipv4_fragment", "fragment of a TCP datagram or an ICMP error (not translated)") \
    X(FragmentMalformed, "fragment_malformed", "fragment with a bad offset or length")         \
    X(FragmentUnmatched, "fragment_unmatched", "later fragment without its first, and it cannot wait") \
    X(FragmentHoldFull, "fragment_hold_full", "fragment ahead of its first: no room to hold it") \
    X(FragmentExpired, "fragment_expired", "held fragment whose first fragment did not come in time") \
    X(TcpTooShort, "tcp_too_short", "TCP header cut off")                                      \
    X(TcpBadDataOffset, "tcp_bad_data_offset", "TCP data offset below 20 or beyond the packet") \
    X(UdpTooShort, "udp_too_short", "UDP header cut off")                                      \
    X(UdpBadLength, "udp_bad_length", "UDP length field inconsistent with the IP length")      \
    X(IcmpTooShort, "icmp_too_short", "ICMP header cut off")                                   \
    X(IcmpUnsupportedType, "icmp_unsupported_type", "ICMP type the NAT does not translate")    \
    X(IcmpErrorBadInner, "icmp_error_bad_inner", "ICMP error with a malformed embedded packet") \
    X(IcmpErrorNoSession, "icmp_error_no_session", "ICMP error about no known session")        \
    X(UnsupportedProtocol, "unsupported_protocol", "IP protocol other than TCP, UDP, ICMP")    \
    X(TtlExpired, "ttl_expired", "TTL would reach zero (the caller may answer)")               \
    X(NoRule, "no_rule", "inside source matches no NAT rule")                                  \
    X(NoSession, "no_session", "outside packet matches no session (RFC 5382: no reply)")       \
    X(TcpNotSyn, "tcp_not_syn", "inside TCP packet without a session is not a SYN")            \
    X(TcpOutOfWindow, "tcp_out_of_window", "TCP segment outside the window (policy drops)")    \
    X(TcpRstOutOfWindow, "tcp_rst_out_of_window", "RST outside the window (strict policy)")    \
    X(TcpInvalidFlags, "tcp_invalid_flags", "impossible TCP flag combination")                 \
    X(PortsExhausted, "ports_exhausted", "no free public port for this remote")                \
    X(SessionTableFull, "session_table_full", "session table full, nothing evictable")         \
    X(HostSessionLimit, "host_session_limit", "inside host reached its session cap")           \
    X(HostEmbryonicLimit, "host_embryonic_limit", "inside host at its handshake cap, none of its own to recycle") \
    X(HostTableFull, "host_table_full", "too many distinct inside hosts")                      \
    X(WrongWorker, "wrong_worker", "outside packet for a port this worker does not own")

enum class DropReason : uint8_t {
#define SNATGW_X(name, metric, help) name,
    SNATGW_DROP_REASONS(SNATGW_X)
#undef SNATGW_X
        Count
};

inline constexpr std::size_t kDropReasonCount = static_cast<std::size_t>(DropReason::Count);

inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonNames = {
#define SNATGW_X(name, metric, help) metric,
    SNATGW_DROP_REASONS(SNATGW_X)
#undef SNATGW_X
};

inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonHelp = {
#define SNATGW_X(name, metric, help) help,
    SNATGW_DROP_REASONS(SNATGW_X)
#undef SNATGW_X
};

constexpr std::string_view drop_reason_name(DropReason r) {
    return kDropReasonNames[static_cast<std::size_t>(r)];
}

}  // namespace snatgw
