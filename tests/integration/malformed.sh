#!/bin/bash
# Malformed traffic through the running gateway (issue 6, item 2). In the lab, scapy sends
# frames that are wrong at every layer, from the inside (h3's eth0) and from the outside (the
# server's eth0), toward the gateway's MACs. What the inside bridge would not pass (br_netfilter
# drops malformed IPv4 and IPv6 headers, the bridge drops cut-off and stacked VLAN tags) goes on
# the inside wire itself: from the switch namespace out of gw-in, the veth whose other end the
# gateway reads, as h3 (its MAC and address); those are marked [wire] below.
#   phase 1: one class at a time from each side (SNL_MALFORMED_COUNT frames, default 100), the
#            gateway's counters read before and after each: the class is counted, exactly, under
#            the reason below, and no other malformed-input reason moves;
#   phase 2: all drop classes shuffled, from both sides at once, for SNL_MALFORMED_SECONDS
#            (default 8) at up to SNL_MALFORMED_PPS frames/s per sender (default 2000): every
#            reason counts exactly what was sent.
# Meanwhile h1 holds a TCP connection to the echo service (198.19.0.2:7100) and checks an echo
# every 20 ms, h2 fetches http://198.19.0.2/hello.txt in a loop (new connections), and h3 holds
# a UDP session (198.18.0.13:40000 <-> 198.19.0.2:7007) that the forwarded classes use.
# Afterwards: the daemon is alive, no echo and no fetch failed, a 10 MB download is intact,
# the ports never ran out of mbufs (rx_nombuf 0), the gateway sent no ICMP other than time
# exceeded, and after `sessions flush --all` sessions and ports in use are back to zero (and
# the mbufs in use back to their idle level, when the stats carry an "mbufs" counter).
#
# The classes and where they must be counted (drops{} of `snatctl --json stats`, or control{}):
#   class (what it is; [wire]: from the inside, sent on gw-in)      counted under
#   eth_only (a bare Ethernet header) [wire]                          ipv4_too_short
#   ip_truncated (12 bytes of IPv4 header) [wire]                     ipv4_too_short
#   ip_bad_version (version 6 under ethertype IPv4) [wire]            ipv4_bad_version
#   ihl_short (IHL 3), ihl_beyond (IHL 15, 32-byte packet) [wire]     ipv4_bad_ihl
#   totlen_below_ihl (12), totlen_beyond (1400) [wire]                ipv4_bad_total_length
#   ip_csum_bad, ip_csum_zero (IPv4 header checksum) [wire]           ipv4_bad_checksum
#   tcp_truncated (10 bytes of TCP header)                            tcp_too_short
#   tcp_doff_short (data offset 2), tcp_doff_beyond (15)              tcp_bad_data_offset
#   udp_truncated (4 bytes of UDP header)                             udp_too_short
#   udp_len_long (200 in a 12-byte datagram), udp_len_short (4)       udp_bad_length
#   icmp_truncated (4 bytes)                                          icmp_too_short
#   icmp_unsupported (timestamp, redirect, type 200, address mask)    icmp_unsupported_type
#   icmp_err_garbage (10 random bytes quoted), icmp_err_truncated
#     (IP header + 4 bytes quoted), icmp_err_inner_bad (quoted IHL
#     15, version 6, GRE)                                             icmp_error_bad_inner
#   icmp_err_no_session (a well-formed quote of no session)           icmp_error_no_session
#   proto_unsupported (GRE, SCTP, 253)                                unsupported_protocol
#   ttl0, ttl1 (on the UDP session, either way)                       ttl_expired, and each one
#                                                                     answered (time exceeded)
#                                                                     or rate limited
#   tcp_synfin (inside, no session)                                   tcp_invalid_flags
#   tcp_ack_nosession (inside, no session)                            tcp_not_syn
#   unsolicited (outside only: TCP SYN, UDP to random pool ports)     no_session
#   ethertype_unknown (IPv6, 0x1234, LLDP, 0x0805) [wire]             unknown_ethertype
#   vlan_stacked (802.1Q/802.1Q, 802.1ad/802.1Q) [wire]               unknown_ethertype
#   vlan_unknown_inner (802.1Q carrying 0x1234)                       unknown_ethertype
#   vlan_truncated (802.1Q tag cut off) [wire]                        vlan_too_short
#   arp_garbage (hardware type 6, hlen 8, opcode 9, cut off,
#     protocol type IPv6)                                             control.arp_ignored
#   local_udp (UDP to the gateway's own address), local_echo_bad
#     (echo request with a bad ICMP checksum to it)                   control.local_dropped,
#                                                                     and no echo reply
# And those a router forwards (translated), checked end to end on the UDP session:
#   ip_options (Record Route), udp_csum_zero (no checksum),
#   vlan_single (one 802.1Q tag: forwarded untagged)                  delivered to the other end
#   udp_csum_bad (a wrong UDP checksum)                               translated with the
#                                                                     checksum still wrong: the
#                                                                     receiver counts it
#                                                                     (UdpInCsumErrors)
# And what is not the gateway's to forward at all (a router drops these; no drop reason names
# them yet, so the checks are end to end):
#   foreign_mac (IPv4 on the session to another MAC: what a switch
#     floods), bcast_mac (the same to ff:ff:ff:ff:ff:ff)              not forwarded
#   mcast_dst (inside, UDP to 224.0.0.251:5353, link-local
#     multicast), bcast_dst (inside, UDP to 255.255.255.255 and to
#     198.18.0.255)                                                   no session toward them
# Not sendable here: frame_too_short (the kernel refuses Ethernet frames under 14 bytes).
source "$(dirname "$0")/lib.sh"
lab_ensure
[ "$(lab_mode)" = snatgw ] || skip "the drop-reason counters are snatgw's"

ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
snatctl() { "$ctl" --socket "$sock" --timeout 10 "$@"; }
snatctl_quiet() { snatctl "$@" >/dev/null; }
count="${SNL_MALFORMED_COUNT:-100}"
mix_seconds="${SNL_MALFORMED_SECONDS:-8}"
mix_pps="${SNL_MALFORMED_PPS:-2000}"
gw_pid=$(cat "$SNL_DIR/snatgw.pid")

# --- the helpers (Python) ------------------------------------------------------------------
cat > "$TEST_TMP/sender.py" <<'PY'
# Malformed-frame sender (runs in one lab namespace, driven over stdin/stdout by the
# orchestrator): "send CLASS COUNT" sends COUNT frames of a class, "mix SECONDS CLASS..."
# sends the classes shuffled until the time is up; each answers one JSON line.
import json, random, sys, time
from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, Raw, conf
conf.verb = 0

a = json.loads(sys.argv[1])
iface, me_mac, gw_mac = a["iface"], a["mac"], a["gw_mac"]
me_ip, peer_ip, local_ip = a["ip"], a["peer_ip"], a["local_ip"]  # peer: the other end of the UDP session
sport, dport = a["sport"], a["dport"]      # the UDP session, as seen on this side
far_ip = a["far_ip"]                       # an address across the gateway with no session
rng = random.Random(a.get("seed", 1))
sock = conf.L2socket(iface=iface)

def eth(t=0x0800):
    return Ether(src=me_mac, dst=gw_mac, type=t)

def csum_fix(ip):
    """The IP header's bytes with a correct header checksum (scapy leaves it when fields lie)."""
    b = bytearray(bytes(ip))
    ihl = (b[0] & 0x0f) * 4
    b[10:12] = b"\0\0"
    s = 0
    for i in range(0, ihl, 2):
        s += (b[i] << 8) + b[i + 1]
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    c = ~s & 0xffff
    b[10], b[11] = c >> 8, c & 0xff
    return bytes(b)

def ipb(proto, payload, ihl=5, length=None, ttl=64, dst=None, src=None, csum=None, ver=4,
        opts=b""):
    """A raw IPv4 header + payload with chosen (possibly wrong) fields; options padded with NOPs."""
    hl = ihl * 4 if 5 <= ihl <= 15 else 20
    total = length if length is not None else hl + len(payload)
    h = bytearray(hl)
    h[0] = (ver << 4) | (ihl & 0x0f)
    h[2:4] = total.to_bytes(2, "big")
    h[4:6] = rng.randrange(1, 65535).to_bytes(2, "big")
    h[8], h[9] = ttl, proto
    h[12:16] = bytes(map(int, (src or me_ip).split(".")))
    h[16:20] = bytes(map(int, (dst or far_ip).split(".")))
    for i in range(20, hl):
        h[i] = opts[i - 20] if i - 20 < len(opts) else 1
    b = bytearray(csum_fix(bytes(h)))
    if csum is not None:
        good = (b[10] << 8) | b[11]
        v = csum(good)
        b[10], b[11] = v >> 8, v & 0xff
    return bytes(b) + payload

def udp_to_far():
    return bytes(UDP(sport=rng.randrange(20000, 60000), dport=9) / Raw(b"junk"))

def inner_udp_about_far():
    # A datagram this side's peer could have sent toward us, about no session.
    return bytes(IP(src=me_ip, dst=far_ip, ttl=1) / UDP(sport=rng.randrange(20000, 60000), dport=33434))

def icmp_err_fixed(payload, t=3, code=3):
    return bytes(ICMP(type=t, code=code) / Raw(payload))

# Each class: a function of the frame index giving one frame's bytes.
def c_eth_only(i): return bytes(eth())
def c_ip_truncated(i): return bytes(eth()) + ipb(17, udp_to_far())[:12]
def c_ip_bad_version(i): return bytes(eth()) + ipb(17, udp_to_far(), ver=6)
def c_ihl_short(i): return bytes(eth()) + ipb(17, udp_to_far(), ihl=3)
def c_ihl_beyond(i):
    b = bytearray(ipb(17, b"\0" * 12))
    b[0] = 0x4f  # 60-byte header in a 32-byte packet
    return bytes(eth()) + bytes(b)
def c_totlen_below_ihl(i): return bytes(eth()) + ipb(17, udp_to_far(), length=12)
def c_totlen_beyond(i): return bytes(eth()) + ipb(17, udp_to_far(), length=1400)
def c_ip_csum_bad(i): return bytes(eth()) + ipb(17, udp_to_far(), csum=lambda g: g ^ 0x00ff)
def c_ip_csum_zero(i): return bytes(eth()) + ipb(17, udp_to_far(), csum=lambda g: 0 if g not in (0, 0xffff) else 0x1234)
def c_tcp_truncated(i): return bytes(eth()) + ipb(6, bytes(TCP(sport=40001, dport=80))[:10])
def c_tcp_doff_short(i): return bytes(eth()) + ipb(6, bytes(TCP(sport=40001, dport=80, dataofs=2)))
def c_tcp_doff_beyond(i): return bytes(eth()) + ipb(6, bytes(TCP(sport=40001, dport=80, dataofs=15)))
def c_udp_truncated(i): return bytes(eth()) + ipb(17, udp_to_far()[:4])
def c_udp_len_long(i): return bytes(eth()) + ipb(17, bytes(UDP(sport=40002, dport=9, len=200) / Raw(b"junk")))
def c_udp_len_short(i): return bytes(eth()) + ipb(17, bytes(UDP(sport=40002, dport=9, len=4) / Raw(b"junk")))
def c_icmp_truncated(i): return bytes(eth()) + ipb(1, b"\x08\x00\x00\x00")
def c_icmp_unsupported(i):
    t = (13, 5, 200, 17)[i % 4]  # timestamp, redirect, unassigned, address mask
    return bytes(eth()) + ipb(1, bytes(ICMP(type=t, code=0) / Raw(b"\0" * 12)))
def c_icmp_err_garbage(i): return bytes(eth()) + ipb(1, icmp_err_fixed(bytes(rng.randrange(256) for _ in range(10))))
def c_icmp_err_truncated(i): return bytes(eth()) + ipb(1, icmp_err_fixed(inner_udp_about_far()[:24], t=11, code=0))
def c_icmp_err_inner_bad(i):
    inner = bytearray(inner_udp_about_far())
    k = i % 3
    if k == 0: inner[0] = 0x4f          # inner IHL beyond the quote
    elif k == 1: inner[0] = 0x65        # inner version 6
    else: inner[9] = 47                 # inner GRE: not translatable
    return bytes(eth()) + ipb(1, icmp_err_fixed(bytes(inner)))
def c_icmp_err_no_session(i): return bytes(eth()) + ipb(1, icmp_err_fixed(inner_udp_about_far()))
def c_proto_unsupported(i): return bytes(eth()) + ipb((47, 132, 253)[i % 3], b"\0" * 24)
def c_tcp_synfin(i): return bytes(eth()) + ipb(6, bytes(TCP(sport=rng.randrange(20000, 60000), dport=80, flags="SF")))
def c_tcp_ack_nosession(i): return bytes(eth()) + ipb(6, bytes(TCP(sport=rng.randrange(20000, 60000), dport=80, flags="A")))
def c_unsolicited(i):
    p = rng.randrange(1024, 65536)
    l4 = (bytes(TCP(sport=80, dport=p, flags="S")), bytes(UDP(sport=53, dport=p) / Raw(b"x")))[i % 2]
    return bytes(eth()) + ipb(6 if i % 2 == 0 else 17, l4, dst=a["pool_ip"], src=me_ip)
# Record Route with one free slot, behind a NOP: 8 bytes of real options (IHL 7).
RR_OPTION = bytes([1, 7, 7, 4, 0, 0, 0, 0])
def session_udp(payload, ttl=64, ihl=5, csum=None, opts=b""):
    # The UDP checksum covers the pseudo-header: build it through IP(), then take the L4.
    full = IP(src=me_ip, dst=peer_ip) / UDP(sport=sport, dport=dport) / Raw(payload)
    u = bytearray(bytes(full)[20:])
    if csum == "zero": u[6:8] = b"\0\0"
    elif csum == "bad": u[6] ^= 0x5a
    return ipb(17, bytes(u), ihl=ihl, ttl=ttl, dst=peer_ip, opts=opts)
def c_ttl0(i): return bytes(eth()) + session_udp(b"ttl0-%d" % i, ttl=0)
def c_ttl1(i): return bytes(eth()) + session_udp(b"ttl1-%d" % i, ttl=1)
def c_ethertype_unknown(i): return bytes(eth((0x86dd, 0x1234, 0x88cc, 0x0805)[i % 4])) + b"\0" * 46
def c_vlan_stacked(i):
    outer = (0x8100, 0x88a8)[i % 2]
    return bytes(Ether(src=me_mac, dst=gw_mac, type=outer)) + b"\x00\x2a\x81\x00\x00\x07\x08\x00" + session_udp(b"qinq")
def c_vlan_unknown_inner(i): return bytes(Ether(src=me_mac, dst=gw_mac, type=0x8100)) + b"\x00\x2a\x12\x34" + b"\0" * 42
def c_vlan_truncated(i): return bytes(Ether(src=me_mac, dst=gw_mac, type=0x8100)) + b"\x00\x2a"[: i % 3]
def c_arp_garbage(i):
    k = i % 5
    e = Ether(src=me_mac, dst=(gw_mac, "ff:ff:ff:ff:ff:ff")[i % 2], type=0x0806)
    good = ARP(op=1, hwsrc=me_mac, psrc=me_ip, pdst=local_ip)
    if k == 0: return bytes(e / ARP(op=1, hwtype=6, hwsrc=me_mac, psrc=me_ip, pdst=local_ip))
    if k == 1: return bytes(e) + bytes(good)[:6] + b"\x08" + bytes(good)[7:]   # hlen 8
    if k == 2: return bytes(e / ARP(op=9, hwsrc=me_mac, psrc=me_ip, pdst=local_ip))
    if k == 3: return bytes(e) + bytes(good)[:10]                              # cut off
    return bytes(e / ARP(op=1, ptype=0x86dd, hwsrc=me_mac, psrc=me_ip, pdst=local_ip))
def c_local_udp(i): return bytes(eth()) + ipb(17, bytes(UDP(sport=40003, dport=9) / Raw(b"x" * 20)), dst=local_ip)
def c_local_echo_bad(i):
    e = bytearray(bytes(ICMP(type=8, id=7, seq=i) / Raw(b"y" * 20)))
    e[2] ^= 0x33
    return bytes(eth()) + ipb(1, bytes(e), dst=local_ip)
# Forwarded (translated), checked end to end by the UDP socket of the session.
def c_ip_options(i): return bytes(eth()) + session_udp(b"opt-%s-%d\n" % (a["tag"].encode(), i), ihl=7, opts=RR_OPTION)
def c_udp_csum_zero(i): return bytes(eth()) + session_udp(b"zero-%s-%d\n" % (a["tag"].encode(), i), csum="zero")
def c_udp_csum_bad(i): return bytes(eth()) + session_udp(b"bad-%s-%d\n" % (a["tag"].encode(), i), csum="bad")
def c_vlan_single(i): return bytes(Ether(src=me_mac, dst=gw_mac, type=0x8100)) + b"\x00\x2a\x08\x00" + session_udp(b"vlan-%s-%d\n" % (a["tag"].encode(), i))

# Not for the gateway at all: a frame for another MAC (the bridge floods unknown unicast),
# an IPv4 frame to the broadcast MAC, link-local multicast and broadcast destinations.
def c_foreign_mac(i):
    e = Ether(src=me_mac, dst="02:00:5e:10:00:99", type=0x0800)
    return bytes(e) + session_udp(b"fmac-%s-%d\n" % (a["tag"].encode(), i))
def c_bcast_mac(i):
    e = Ether(src=me_mac, dst="ff:ff:ff:ff:ff:ff", type=0x0800)
    return bytes(e) + session_udp(b"bmac-%s-%d\n" % (a["tag"].encode(), i))
def c_mcast_dst(i):
    u = bytes(IP(src=me_ip, dst="224.0.0.251") / UDP(sport=5353, dport=5353) / Raw(b"mdns"))[20:]
    return bytes(Ether(src=me_mac, dst="01:00:5e:00:00:fb", type=0x0800)) + ipb(17, u, dst="224.0.0.251", ttl=255)
def c_bcast_dst(i):
    d = ("255.255.255.255", a["bcast_ip"])[i % 2]
    u = bytes(IP(src=me_ip, dst=d) / UDP(sport=40005, dport=9) / Raw(b"bcast"))[20:]
    return bytes(Ether(src=me_mac, dst="ff:ff:ff:ff:ff:ff", type=0x0800)) + ipb(17, u, dst=d)

CLASSES = {k[2:]: v for k, v in globals().items() if k.startswith("c_")}

def send(name, count, start=0):
    f = CLASSES[name]
    for i in range(start, start + count):
        sock.send(f(i))

print(json.dumps({"ready": sorted(CLASSES)}), flush=True)
for line in sys.stdin:
    w = line.split()
    if not w:
        continue
    if w[0] == "send":
        send(w[1], int(w[2]))
        print(json.dumps({"sent": int(w[2])}), flush=True)
    elif w[0] == "mix":
        # Shuffled classes until the time is up, at most `pps` frames a second.
        seconds, pps, names = float(w[1]), int(w[2]), w[3:]
        counts = {n: 0 for n in names}
        end = time.monotonic() + seconds
        t0 = time.monotonic()
        sent = 0
        while time.monotonic() < end:
            n = rng.choice(names)
            send(n, 1, counts[n])
            counts[n] += 1
            sent += 1
            ahead = sent / pps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        print(json.dumps({"mixed": counts}), flush=True)
    elif w[0] == "quit":
        break
PY
cat > "$TEST_TMP/orchestrate.py" <<'PY'
# Drives the two senders (inside: h3's eth0, outside: the server's eth0) class by class, reads
# the gateway's counters around each class, then runs the mixed storm from both sides at once.
# Prints "INFO text" and "CHECK 0|1 text" lines for the shell.
import json, subprocess, sys, time

cfg = json.load(open(sys.argv[1]))
SNATCTL = cfg["snatctl"]
N = cfg["count"]
tmp = cfg["tmp"]

# class -> (sides, kind, counter). kind: drop (drops{counter}), control (control{counter}),
# fwd (translated and delivered: the session's socket gets it), csum (translated, then the
# receiving host drops it: UdpInCsumErrors).
EXPECT = {
    "eth_only": ("both", "drop", "ipv4_too_short"),
    "ip_truncated": ("both", "drop", "ipv4_too_short"),
    "ip_bad_version": ("both", "drop", "ipv4_bad_version"),
    "ihl_short": ("both", "drop", "ipv4_bad_ihl"),
    "ihl_beyond": ("both", "drop", "ipv4_bad_ihl"),
    "totlen_below_ihl": ("both", "drop", "ipv4_bad_total_length"),
    "totlen_beyond": ("both", "drop", "ipv4_bad_total_length"),
    "ip_csum_bad": ("both", "drop", "ipv4_bad_checksum"),
    "ip_csum_zero": ("both", "drop", "ipv4_bad_checksum"),
    "tcp_truncated": ("both", "drop", "tcp_too_short"),
    "tcp_doff_short": ("both", "drop", "tcp_bad_data_offset"),
    "tcp_doff_beyond": ("both", "drop", "tcp_bad_data_offset"),
    "udp_truncated": ("both", "drop", "udp_too_short"),
    "udp_len_long": ("both", "drop", "udp_bad_length"),
    "udp_len_short": ("both", "drop", "udp_bad_length"),
    "icmp_truncated": ("both", "drop", "icmp_too_short"),
    "icmp_unsupported": ("both", "drop", "icmp_unsupported_type"),
    "icmp_err_garbage": ("both", "drop", "icmp_error_bad_inner"),
    "icmp_err_truncated": ("both", "drop", "icmp_error_bad_inner"),
    "icmp_err_inner_bad": ("both", "drop", "icmp_error_bad_inner"),
    "icmp_err_no_session": ("both", "drop", "icmp_error_no_session"),
    "proto_unsupported": ("both", "drop", "unsupported_protocol"),
    "ttl0": ("both", "drop", "ttl_expired"),
    "ttl1": ("both", "drop", "ttl_expired"),
    "tcp_synfin": ("in", "drop", "tcp_invalid_flags"),
    "tcp_ack_nosession": ("in", "drop", "tcp_not_syn"),
    "unsolicited": ("out", "drop", "no_session"),
    "ethertype_unknown": ("both", "drop", "unknown_ethertype"),
    "vlan_stacked": ("both", "drop", "unknown_ethertype"),
    "vlan_unknown_inner": ("both", "drop", "unknown_ethertype"),
    "vlan_truncated": ("both", "drop", "vlan_too_short"),
    "arp_garbage": ("both", "control", "arp_ignored"),
    "local_udp": ("both", "control", "local_dropped"),
    "local_echo_bad": ("both", "control", "local_dropped"),
    "ip_options": ("both", "fwd", None),
    "udp_csum_zero": ("both", "fwd", None),
    "vlan_single": ("both", "fwd", None),
    "udp_csum_bad": ("both", "csum", None),
    "foreign_mac": ("both", "nofwd", "fmac"),
    "bcast_mac": ("both", "nofwd", "bmac"),
    "mcast_dst": ("in", "nosession", "224.0.0.251"),
    "bcast_dst": ("in", "nosession", "255.255.255.255,198.18.0.255"),
}
# From the inside these go on the wire itself (the switch namespace's gw-in, the veth that ends
# in the gateway): the inside bridge drops them before they reach the gateway (br_netfilter
# validates IPv4 and IPv6 headers; the bridge's VLAN untagging drops a cut-off or stacked tag).
WIRE = {"eth_only", "ip_truncated", "ip_bad_version", "ihl_short", "ihl_beyond",
        "totlen_below_ihl", "totlen_beyond", "ip_csum_bad", "ip_csum_zero", "ethertype_unknown",
        "vlan_stacked", "vlan_truncated"}
# Reasons only malformed input produces: while a class runs, none but its own may move.
STRICT = {"frame_too_short", "vlan_too_short", "unknown_ethertype", "ipv4_too_short",
          "ipv4_bad_version", "ipv4_bad_ihl", "ipv4_bad_total_length", "ipv4_bad_checksum",
          "tcp_too_short", "tcp_bad_data_offset", "udp_too_short", "udp_bad_length",
          "icmp_too_short", "icmp_unsupported_type", "icmp_error_bad_inner",
          "unsupported_protocol", "tcp_invalid_flags", "ttl_expired"}


def stats():
    out = subprocess.run([SNATCTL, "--socket", cfg["socket"], "--json", "stats"],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(f"snatctl stats: {out.stderr.strip()}")
    return json.loads(out.stdout)


def flat(s):
    d = {f"drops.{k}": v for k, v in s["drops"].items()}
    d.update({f"control.{k}": v for k, v in s["control"].items()})
    return d


def delta(a, b):
    fa, fb = flat(a), flat(b)
    return {k: fb[k] - fa.get(k, 0) for k in fb if fb[k] != fa.get(k, 0)}


def nstat(ns, name):
    out = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-az", name], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        w = line.split()
        if w and w[0] == name:
            return int(w[1])
    return 0


def sessions_to(remote):
    out = subprocess.run([SNATCTL, "--socket", cfg["socket"], "--json", "sessions", "--remote",
                          remote, "--count"], capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout)["total"] if out.returncode == 0 else -1


def received(tag):
    try:
        return sum(1 for l in open(cfg["udp_log"]) if l.split("|")[-1].startswith(tag))
    except FileNotFoundError:
        return 0


class Sender:
    def __init__(self, side, ns, args):
        self.side = side
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, cfg["py3"], cfg["sender"],
                                   json.dumps(args)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.classes = json.loads(self.p.stdout.readline())["ready"]

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=10)


def key_of(kind, counter):
    return f"drops.{counter}" if kind == "drop" else f"control.{counter}"


senders = {"in": Sender("in", cfg["in_ns"], cfg["in_args"]),
           "wire": Sender("wire", cfg["wire_ns"], dict(cfg["in_args"], iface=cfg["wire_iface"], seed=3)),
           "out": Sender("out", cfg["out_ns"], cfg["out_args"])}


def sender_for(side, name):
    return senders["wire"] if side == "in" and name in WIRE else senders[side]


peer_ns = {"in": cfg["out_ns"], "out": cfg["in_ns"]}  # who receives what a side sends
results = []

# Phase 1: one class at a time from each side, its counter read before and after.
for side in ("in", "out"):
    for name, (sides, kind, counter) in EXPECT.items():
        if sides not in ("both", side):
            continue
        before = stats()
        csum_before = nstat(peer_ns[side], "UdpInCsumErrors") if kind == "csum" else 0
        sender_for(side, name).cmd(f"send {name} {N}")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = stats()
            if kind in ("drop", "control") and delta(before, now).get(key_of(kind, counter), 0) >= N:
                break
        time.sleep(0.2)  # let anything late (a frame counted twice) show
        after = stats()
        d = delta(before, after)
        where = f"[{'wire' if sender_for(side, name).side == 'wire' else side}] {name}"
        if kind in ("drop", "control"):
            k = key_of(kind, counter)
            got = d.get(k, 0)
            others = {x: v for x, v in d.items() if x != k and x.startswith("drops.")
                      and x[6:] in STRICT}
            extra = {x: v for x, v in d.items() if x != k and v}
            print(f"INFO {where}: sent {N}, counter deltas {extra if extra else '{}'} besides {k}={got}")
            print(f"CHECK {int(got == N)} {where}: {N} frames counted under {k} (got {got})")
            print(f"CHECK {int(not others)} {where}: no other malformed-input reason moved ({others})")
            if name.startswith("local_echo"):
                er = d.get("control.echo_replies", 0)
                print(f"CHECK {int(er == 0)} {where}: no echo reply to a bad echo request ({er})")
            if name.startswith("ttl"):
                answered = d.get("control.time_exceeded_sent", 0) + d.get("control.icmp_rate_limited", 0)
                print(f"CHECK {int(answered == N)} {where}: each expired packet answered or rate limited "
                      f"(time_exceeded_sent + icmp_rate_limited = {answered})")
        elif kind == "fwd":
            label = {"ip_options": "opt", "udp_csum_zero": "zero", "vlan_single": "vlan"}[name]
            want = f"{label}-{side}-"
            deadline = time.monotonic() + 3
            while received(want) < N and time.monotonic() < deadline:
                time.sleep(0.1)
            got = received(want)
            print(f"CHECK {int(got == N)} {where}: translated and delivered, the session's socket got {got} of {N}"
                  f"{' (gateway drops meanwhile: ' + str(d) + ')' if got != N else ''}")
        elif kind == "nofwd":
            time.sleep(0.5)
            got = received(f"{counter}-{side}-")
            print(f"INFO {where}: counter deltas {d}")
            print(f"CHECK {int(got == 0)} {where}: not for the gateway's MAC, not forwarded "
                  f"(the session's socket got {got} of {N})")
        elif kind == "nosession":
            n = sum(sessions_to(r) for r in counter.split(","))
            print(f"INFO {where}: counter deltas {d}")
            print(f"CHECK {int(n == 0)} {where}: no session toward {counter} ({n})")
        else:  # csum
            time.sleep(0.5)
            errs = nstat(peer_ns[side], "UdpInCsumErrors") - csum_before
            got = received(f"bad-{side}-")
            print(f"CHECK {int(errs == N and got == 0)} {where}: translated with the checksum still bad: "
                  f"the receiver counted {errs} checksum errors of {N}, delivered {got}")

# Phase 2: every drop class shuffled, from both sides at once, for a bounded time.
mix = {side: [n for n, (s, k, c) in EXPECT.items() if s in ("both", side)
              and k in ("drop", "control")] for side in ("in", "out")}
mix["wire"] = [n for n in mix["in"] if n in WIRE]
mix["in"] = [n for n in mix["in"] if n not in WIRE]
before = stats()
t0 = time.monotonic()
for side, s in senders.items():
    s.p.stdin.write(f"mix {cfg['mix_seconds']} {cfg['mix_pps']} {' '.join(mix[side])}\n")
    s.p.stdin.flush()
counts = {side: json.loads(s.p.stdout.readline())["mixed"] for side, s in senders.items()}
elapsed = time.monotonic() - t0
want = {}
for side in senders:
    for name, c in counts[side].items():
        sides, kind, counter = EXPECT[name]
        k = key_of(kind, counter)
        want[k] = want.get(k, 0) + c
total = sum(want.values())
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    time.sleep(0.2)
    d = delta(before, stats())
    if all(d.get(k, 0) >= v for k, v in want.items()):
        break
time.sleep(0.3)
d = delta(before, stats())
print(f"INFO mixed storm: {total} frames in {elapsed:.1f} s from both sides (3 senders) "
      f"({total / max(elapsed, 0.001):.0f}/s)")
# Exact where only malformed input counts; at least what was sent where ordinary traffic may
# add a few (no_session, icmp_error_no_session, tcp_not_syn: late segments of closed flows).
exact = lambda k: k.startswith("control.") or k[6:] in STRICT
bad = {k: (d.get(k, 0), v) for k, v in want.items()
       if (d.get(k, 0) != v if exact(k) else d.get(k, 0) < v)}
print(f"CHECK {int(not bad)} mixed storm: every reason counted what was sent "
      f"(mismatches as (counted, sent): {bad if bad else 'none'})")
extra = {k: v for k, v in d.items() if k not in want and k.startswith("drops.") and k[6:] in STRICT}
print(f"CHECK {int(not extra)} mixed storm: no malformed-input reason moved that was not sent ({extra})")
for s in senders.values():
    s.close()
PY
cat > "$TEST_TMP/udp_peer.py" <<'PY'
# h3's UDP session: one socket, one public (address, port). Learns its public end from the
# server's echo, then logs every datagram it receives (one line each) until the stop file.
import os, socket, sys
server, bind, state = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((bind.rsplit(":", 1)[0], int(bind.rsplit(":", 1)[1])))
s.settimeout(0.5)
for _ in range(10):
    s.sendto(b"hello\n", (server, 7007))
    try:
        data, _ = s.recvfrom(2048)
        break
    except socket.timeout:
        continue
else:
    sys.exit(1)
with open(f"{state}/udp_public", "w") as f:
    f.write(data.decode().split("|")[0] + "\n")
log = open(f"{state}/udp_received", "a", buffering=1)
while not os.path.exists(f"{state}/stop"):
    try:
        data, _ = s.recvfrom(2048)
        log.write(data.decode(errors="replace").rstrip("\n").replace("\n", " ") + "\n")
    except socket.timeout:
        pass
PY
cat > "$TEST_TMP/replies.py" <<'PY'
# ICMP the gateway itself sent (from one of its addresses), by type, in a capture.
import sys
from collections import Counter
from scapy.all import ICMP, IP, rdpcap
gw = set(sys.argv[2].split(","))
c = Counter(p[ICMP].type for p in rdpcap(sys.argv[1]) if IP in p and ICMP in p and p[IP].src in gw)
print(" ".join(f"{t}:{n}" for t, n in sorted(c.items())) or "none")
PY

# Mbufs in use: DPDK 22.11's mempool telemetry has no counts; the daemon's stats carry them
# when they have an "mbufs" object ({"inside": {"in_use": N, ...}, "outside": {...}}).
mbufs_in_use() {
    snatctl --json stats | "$PY3" -c 'import json, sys; m = json.load(sys.stdin).get("mbufs")
print(sum(p["in_use"] for p in m.values()) if isinstance(m, dict) else "")'
}
stat_field() { snatctl --json stats | "$PY3" -c "import json, sys; s = json.load(sys.stdin); print($1)"; }
ports_in_use_sum='sum(u["tcp"] + u["udp"] + u["icmp"] for u in s["ports_in_use"])'

# --- baseline ----------------------------------------------------------------------------------
snatctl sessions flush --all >/dev/null
sleep 0.5
base_mbufs=$(mbufs_in_use)
base=$(stat_field "s['total']['sessions'], $ports_in_use_sum")
say "baseline after flush: sessions, ports in use = $base; mbufs in use: ${base_mbufs:-no counter}"

h3_mac=$(in_ns h3 cat /sys/class/net/eth0/address)
srv_mac=$(in_ns srv cat /sys/class/net/eth0/address)
in_ns h3 ping -c 1 -W 1 "$GW_IN" >/dev/null
in_ns srv ping -c 1 -W 1 198.19.0.1 >/dev/null
gw_in_mac=$(in_ns h3 ip neigh show "$GW_IN" | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
gw_out_mac=$(in_ns srv ip neigh show 198.19.0.1 | grep -o 'lladdr [0-9a-f:]*' | cut -d' ' -f2)
[ -n "$gw_in_mac" ] && [ -n "$gw_out_mac" ] || { fail "the gateway's MACs are not known (inside '$gw_in_mac', outside '$gw_out_mac')"; finish; }
say "gateway MACs: inside $gw_in_mac, outside $gw_out_mac"

# --- the traffic that must keep working --------------------------------------------------------
ip netns exec snl-h3 "$PY3" "$TEST_TMP/udp_peer.py" "$SERVER" 198.18.0.13:40000 "$TEST_TMP" &
_bg_pids+=($!)
ip netns exec snl-h1 "$PY3" "$TESTS_DIR/echo_hold.py" "$SERVER" "$TEST_TMP" echo &
echo_pid=$!
_bg_pids+=("$echo_pid")
(
    ok=0 failed=0
    while [ ! -e "$TEST_TMP/stop" ]; do
        if [ "$(ip netns exec snl-h2 curl -s -m 3 "http://$SERVER/hello.txt")" = "hello through the gateway" ]; then
            ok=$((ok + 1))
        else
            failed=$((failed + 1))
        fi
        sleep 0.1
    done
    echo "$ok $failed" > "$TEST_TMP/curl_result"
) &
curl_pid=$!
_bg_pids+=("$curl_pid")
for ((n = 0; n < 50; n++)); do [ -s "$TEST_TMP/udp_public" ] && [ -s "$TEST_TMP/echo.peer" ] && break; sleep 0.1; done
udp_public=$(cat "$TEST_TMP/udp_public" 2>/dev/null)
[ -n "$udp_public" ] || { fail "h3's UDP session to $SERVER:7007 did not come up"; finish; }
check "h1's TCP echo connection is up ($(cat "$TEST_TMP/echo.peer" 2>/dev/null))" [ -s "$TEST_TMP/echo.peer" ]
say "h3's UDP session: 198.18.0.13:40000 is $udp_public outside"

# Captures of what reaches the server and h3 (the gateway's own ICMP is checked afterwards).
ip netns exec snl-srv tcpdump -n -U -i eth0 -w "$TEST_TMP/outside.pcap" icmp 2>/dev/null &
dump_out=$!
ip netns exec snl-h3 tcpdump -n -U -i eth0 -w "$TEST_TMP/inside.pcap" icmp 2>/dev/null &
dump_in=$!
_bg_pids+=("$dump_out" "$dump_in")
sleep 1

# --- the storm ---------------------------------------------------------------------------------
missed_before=$(stat_field "s['ports']['inside']['missed'] + s['ports']['outside']['missed']")
"$PY3" - "$TEST_TMP/orchestrate.json" <<PY
import json, sys
json.dump({
    "snatctl": "$ctl", "socket": "$sock", "py3": "$PY3", "sender": "$TEST_TMP/sender.py",
    "tmp": "$TEST_TMP", "count": $count, "mix_seconds": $mix_seconds, "mix_pps": $mix_pps,
    "udp_log": "$TEST_TMP/udp_received", "in_ns": "snl-h3", "out_ns": "snl-srv",
    "wire_ns": "snl-sw-in", "wire_iface": "gw-in",
    "in_args": {"iface": "eth0", "mac": "$h3_mac", "gw_mac": "$gw_in_mac", "ip": "198.18.0.13",
                "peer_ip": "$SERVER", "local_ip": "$GW_IN", "sport": 40000, "dport": 7007,
                "far_ip": "$SERVER", "pool_ip": "$SERVER", "tag": "in", "seed": 1,
                "bcast_ip": "198.18.0.255"},
    "out_args": {"iface": "eth0", "mac": "$srv_mac", "gw_mac": "$gw_out_mac", "ip": "$SERVER",
                 "peer_ip": "${udp_public%:*}", "local_ip": "198.19.0.1", "sport": 7007,
                 "dport": ${udp_public#*:}, "far_ip": "${udp_public%:*}",
                 "pool_ip": "${udp_public%:*}", "tag": "out", "seed": 2,
                 "bcast_ip": "198.19.0.255"},
}, open(sys.argv[1], "w"))
PY
t0=$(date +%s)
"$PY3" "$TEST_TMP/orchestrate.py" "$TEST_TMP/orchestrate.json" > "$TEST_TMP/verdict" 2> "$TEST_TMP/orchestrate.err"
rc=$?
say "the storm took $(($(date +%s) - t0)) s"
[ "$rc" = 0 ] || { fail "the storm's driver failed (rc $rc): $(tail -3 "$TEST_TMP/orchestrate.err")"; }
while read -r kind rest; do
    if [ "$kind" = INFO ]; then say "$rest"; continue; fi
    [ "$kind" = CHECK ] || continue
    if [ "${rest%% *}" = 1 ]; then ok "${rest#* }"; else fail "${rest#* }"; fi
done < "$TEST_TMP/verdict"

# --- what kept working -------------------------------------------------------------------------
touch "$TEST_TMP/stop" "$TEST_TMP/echo.stop"
wait "$echo_pid" "$curl_pid"
read -r e_ok e_failed e_worst _ < "$TEST_TMP/echo.result" || { e_ok=0; e_failed=missing; }
check "the established TCP connection kept working: $e_ok echoes, $e_failed failed, slowest ${e_worst} ms" \
    [ "$e_ok" -gt 0 -a "$e_failed" = 0 ]
read -r c_ok c_failed < "$TEST_TMP/curl_result" || { c_ok=0; c_failed=missing; }
check "new connections kept working: $c_ok fetches of hello.txt, $c_failed failed" [ "$c_ok" -gt 0 -a "$c_failed" = 0 ]
check "the daemon is alive (pid $gw_pid) and answers" kill -0 "$gw_pid"
check "snatctl still answers" snatctl_quiet version
sleep 1
kill -INT "$dump_out" "$dump_in" 2>/dev/null
wait "$dump_out" "$dump_in" 2>/dev/null
pool=$(cat "$SNL_DIR/state/pool")
gw_out_addrs=198.19.0.1
first=${pool%-*} last=${pool#*-}
for ((a = ${first##*.}; a <= ${last##*.}; a++)); do gw_out_addrs+=",${first%.*}.$a"; done
icmp_out=$("$PY3" "$TEST_TMP/replies.py" "$TEST_TMP/outside.pcap" "$gw_out_addrs")
icmp_in=$("$PY3" "$TEST_TMP/replies.py" "$TEST_TMP/inside.pcap" "$GW_IN")
say "ICMP from the gateway's addresses (type:count): toward the server $icmp_out; toward h3 $icmp_in"
not_ttl=$(echo "$icmp_out $icmp_in" | tr ' ' '\n' | grep -v -e '^none$' -e '^11:' -e '^$' | tr '\n' ' ')
check "the gateway sent no ICMP but time exceeded (type 11) on either side (others: ${not_ttl:-none})" [ -z "$not_ttl" ]

# Full health: a 10 MB download through the gateway, no RX mbuf shortage on either port.
want=$(cat "$SNL_DIR/www/10M.bin.sha256")
got=$(in_ns h4 curl -s -m 30 "http://$SERVER/10M.bin" | sha256sum | cut -d' ' -f1)
check "a 10 MB download after the storm is intact" [ "$got" = "$want" ]
nombuf=$(stat_field "s['ports']['inside']['rx_nombuf'] + s['ports']['outside']['rx_nombuf']")
missed=$(( $(stat_field "s['ports']['inside']['missed'] + s['ports']['outside']['missed']") - missed_before ))
say "ports: rx_nombuf $nombuf, frames missed during the test $missed"
check "no RX mbuf allocation failure on either port (rx_nombuf $nombuf)" [ "$nombuf" = 0 ]

# --- nothing leaked ----------------------------------------------------------------------------
snatctl sessions flush --all >/dev/null
sleep 0.5
after=$(stat_field "s['total']['sessions'], $ports_in_use_sum, sum(s['sessions_by_state']['tcp'].values()) + s['sessions_by_state']['udp'] + s['sessions_by_state']['icmp']")
read -r a_sessions a_ports a_states <<<"$(tr -d ',()' <<<"$after")"
check "after a flush: no session left ($a_sessions), no port in use ($a_ports), no session in any state ($a_states)" \
    [ "$a_sessions:$a_ports:$a_states" = 0:0:0 ]
end_mbufs=$(mbufs_in_use)
if [ -n "$base_mbufs" ]; then
    check "mbufs in use back to the idle level: $end_mbufs (before: $base_mbufs)" \
        [ "$end_mbufs" -le $((base_mbufs + 64)) ]
else
    say "mbufs in use: the daemon's stats have no \"mbufs\" counter (not checked; rx_nombuf and the download above stand in)"
fi
finish
