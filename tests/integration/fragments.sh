#!/bin/bash
# IPv4 fragments through the gateway (docs/architecture.md, Fragments), real kernels on both
# ends doing the fragmenting and the reassembling:
#   - big answers: h1 asks a UDP service in the server namespace for 3000..20000-byte answers
#     (the server's kernel fragments them); every byte checked;
#   - a big request: h1 sends 3000..12000-byte datagrams (h1's kernel fragments them) to the lab's
#     UDP echo service (:7007), whose answer is as big; every byte checked;
#   - ping -s 3000 from h1 to the server, both ways fragmented, no loss, no wrong byte;
#   - out of order: from the server namespace, scapy sends a big answer to h1's open UDP socket
#     as fragments in reverse order (and one duplicated); h1 gets it whole;
#   - with a NAT that translates fragments as fragments (net_af_xdp), tcpdump shows translated
#     later fragments on both sides; and no fragment drop counter moved.
# net_af_packet (the lab's multi-worker vdev) joins its sockets to a PACKET_FANOUT group with
# PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles before snatgw sees anything, a datagram
# larger than a TPACKET frame (2048 bytes) is cut short, and one larger than the veth's MTU
# cannot leave whole. There the test sends datagrams of at most 1400 bytes through a path MTU of
# 1000 (fragmented on the wire, whole within snatgw): fragmented traffic still crosses, but
# snatgw's fragment path is not what carries it (the unit tests FragmentWorkers cover several
# workers).
source "$(dirname "$0")/lib.sh"
lab_ensure

mode=$(lab_mode)
vdev=$(cat "$SNL_DIR/state/vdev" 2>/dev/null || echo none)
BIG_PORT=7301
OOO_PORT=7302
if [ "$vdev" = af_packet ]; then
    # Fragmented on the wire (path MTU 1000 on both ends), at most one TPACKET frame reassembled.
    sizes_big="1200 1400"; sizes_echo="1100 1300"; ping_size=1400; ooo_size=1400; ooo_frag=600
    in_ns h1 ip route replace default via "$GW_IN" mtu lock 1000
    in_ns srv ip route replace 198.19.0.0/24 dev eth0 mtu lock 1000
    say "net_af_packet: the kernel reassembles before snatgw (PACKET_FANOUT_FLAG_DEFRAG): datagrams up to the MTU, fragmented by a path MTU of 1000"
else
    sizes_big="3000 4000 8000 20000"; sizes_echo="3000 5000 12000"; ping_size=3000; ooo_size=6000; ooo_frag=1000
fi
restore_routes() {
    if [ "$vdev" = af_packet ]; then
        in_ns h1 ip route replace default via "$GW_IN" 2>/dev/null || true
        in_ns srv ip route replace 198.19.0.0/24 dev eth0 proto kernel scope link src "$SERVER" 2>/dev/null || true
    fi
}
# The lab may stay up for the next test: its routes as they were, whatever happens.
trap 'rc=$?; restore_routes; (exit $rc); _cleanup' EXIT

ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
fragment_drops() {  # the fragment drop counters (and a cut-short frame's), one "name value" a line
    [ "$mode" = snatgw ] && [ -x "$ctl" ] || return 0
    "$ctl" --socket "$sock" --timeout 10 --json stats | "$PY3" -c '
import json, sys
d = json.load(sys.stdin)["drops"]
for k in ("fragment_malformed", "fragment_unmatched", "fragment_hold_full", "fragment_expired",
          "ipv4_fragment", "ipv4_bad_total_length"):
    print(k, d.get(k, 0))'
}
fragment_drops > "$TEST_TMP/drops.before"

# The pattern both ends compute: n bytes from a seed.
cat > "$TEST_TMP/pattern.py" <<'PY'
def pattern(n, seed):
    return bytes((seed + i * 7 + (i >> 8)) & 0xff for i in range(n))
PY

# A UDP service that answers "big N SEED" with N pattern bytes.
cat > "$TEST_TMP/big_server.py" <<'PY'
import signal, socket, sys
sys.path.insert(0, sys.argv[3])
from pattern import pattern
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(65535)
    parts = data.split()
    if len(parts) == 3 and parts[0] == b"big":
        s.sendto(pattern(int(parts[1]), int(parts[2])), peer)
PY

# Out of order: wait for one request "ooo N SEED" from inside, answer with N pattern bytes sent
# as fragments, last first, the middle one twice (IP_HDRINCL: the kernel keeps the fragments).
cat > "$TEST_TMP/ooo_server.py" <<'PY'
import socket, sys
sys.path.insert(0, sys.argv[5])
from pattern import pattern
from scapy.all import IP, UDP, Raw, fragment
server, port, fragsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((server, port))
s.settimeout(30)
open(sys.argv[4], "w").write("listening\n")
data, peer = s.recvfrom(2048)
_, n, seed = data.split()
pkt = IP(src=server, dst=peer[0], id=0x5a5a, ttl=64) / UDP(sport=port, dport=peer[1]) / Raw(pattern(int(n), int(seed)))
frags = fragment(pkt, fragsize=fragsize)
order = list(reversed(frags))
if len(order) >= 3:
    order.insert(2, order[1])
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for f in order:
    raw.sendto(bytes(f), (peer[0], 0))
print(f"sent {len(frags)} fragments ({len(order)} with the duplicate) to {peer[0]}:{peer[1]}")
PY

# The inside client: requests and checks.
cat > "$TEST_TMP/client.py" <<'PY'
import socket, sys
sys.path.insert(0, sys.argv[1])
from pattern import pattern
server, what = sys.argv[2], sys.argv[3]
sizes = [int(x) for x in sys.argv[4:]]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)

def ask(payload, port, expect):
    for _ in range(3):  # UDP: a lost fragment loses the datagram; two retries
        s.sendto(payload, (server, port))
        try:
            while True:
                data, _ = s.recvfrom(65535)
                if data.endswith(expect) or data == expect:
                    return data
        except socket.timeout:
            continue
    return None

ok = 0
for i, n in enumerate(sizes):
    seed = 11 + i
    if what == "big":
        want = pattern(n, seed)
        got = ask(b"big %d %d" % (n, seed), 7301, want)
        good = got == want
    elif what == "echo":
        payload = pattern(n, seed)
        got = ask(payload, 7007, payload)
        good = got is not None and got.partition(b"|")[2] == payload
    else:  # ooo: one request, one answer (the server sends it once)
        s.settimeout(20)
        s.sendto(b"ooo %d %d" % (n, seed), (server, 7302))
        try:
            got, _ = s.recvfrom(65535)
        except socket.timeout:
            got = None
        good = got == pattern(n, seed)
    print(f"{what} {n}: {'ok' if good else 'FAILED (' + ('nothing' if got is None else str(len(got)) + ' bytes, different') + ')'}")
    ok += good
print(f"RESULT {ok} {len(sizes)}")
PY

# tcpdump: later fragments (offset != 0) on both sides of the gateway.
pool=$(pool_first)
# (ip netns exec directly: its PID is tcpdump's, which SIGINT must reach.)
ip netns exec snl-sw-in tcpdump -i gw-in -n -U -w "$TEST_TMP/inside.pcap" 'ip[6:2] & 0x1fff != 0' >/dev/null 2>&1 &
dump_in=$!
_bg_pids+=("$dump_in")
ip netns exec snl-srv tcpdump -i eth0 -n -U -w "$TEST_TMP/outside.pcap" 'ip[6:2] & 0x1fff != 0' >/dev/null 2>&1 &
dump_out=$!
_bg_pids+=("$dump_out")
bg ip netns exec snl-srv "$PY3" "$TEST_TMP/big_server.py" "$SERVER" "$BIG_PORT" "$TEST_TMP"
for _ in $(seq 50); do
    in_ns srv ss -lunH 2>/dev/null | awk '{print $4}' | grep -q ":$BIG_PORT\$" && break
    sleep 0.1
done
sleep 1  # tcpdump attaches

run_client() {  # what sizes...
    local out
    out=$(in_ns h1 "$PY3" "$TEST_TMP/client.py" "$TEST_TMP" "$SERVER" "$@" 2>&1)
    echo "$out" | grep -v '^RESULT' | sed "s/^/[$TEST_NAME]   /"
    read -r _ got want <<<"$(echo "$out" | grep '^RESULT')"
    [ -n "${want:-}" ] && [ "${got:-0}" = "$want" ]
}

# shellcheck disable=SC2086
check "big answers ($sizes_big bytes) arrive whole, every byte right" run_client big $sizes_big
# shellcheck disable=SC2086
check "big requests ($sizes_echo bytes) to the echo service come back whole" run_client echo $sizes_echo

ping_out=$(in_ns h1 ping -c 4 -i 0.3 -W 2 -s "$ping_size" "$SERVER" 2>&1)
echo "$ping_out" | tail -n 2 | sed "s/^/[$TEST_NAME]   /"
check "ping -s $ping_size: 4 of 4 replies" grep -q ' 4 received' <<<"$ping_out"
check "ping -s $ping_size: no wrong data byte" bash -c '! grep -qi "wrong data" <<<"$1"' _ "$ping_out"

# Out of order, from the server namespace.
rm -f "$TEST_TMP/ooo.ready"
ip netns exec snl-srv "$PY3" "$TEST_TMP/ooo_server.py" "$SERVER" "$OOO_PORT" "$ooo_frag" "$TEST_TMP/ooo.ready" \
    "$TEST_TMP" >"$TEST_TMP/ooo.log" 2>&1 &
ooo_pid=$!
_bg_pids+=("$ooo_pid")
for _ in $(seq 150); do [ -f "$TEST_TMP/ooo.ready" ] && break; sleep 0.1; done
check "the out-of-order sender is ready" [ -f "$TEST_TMP/ooo.ready" ]
check "a big answer sent as fragments in reverse order (one duplicated) arrives whole" run_client ooo "$ooo_size"
wait "$ooo_pid" 2>/dev/null || true
sed "s/^/[$TEST_NAME]   scapy: /" "$TEST_TMP/ooo.log" | grep -v WARNING || true

sleep 1
kill -INT "$dump_in" "$dump_out" 2>/dev/null || true
wait "$dump_in" "$dump_out" 2>/dev/null || true
restore_routes
if [ "$vdev" != af_packet ]; then
    # The gateway passed fragments as fragments, translated: toward h1 with h1 as destination,
    # toward the server with a pool address as source.
    n_in=$(tcpdump -r "$TEST_TMP/inside.pcap" -n "src $SERVER and dst 198.18.0.11" 2>/dev/null | wc -l)
    n_out=$(tcpdump -r "$TEST_TMP/outside.pcap" -n "dst $SERVER and src net 198.19.0.0/24 and not src $SERVER" 2>/dev/null | wc -l)
    bad_in=$(tcpdump -r "$TEST_TMP/inside.pcap" -n "src $SERVER and not dst net 198.18.0.0/24" 2>/dev/null | wc -l)
    bad_out=$(tcpdump -r "$TEST_TMP/outside.pcap" -n "dst $SERVER and src net 198.18.0.0/24" 2>/dev/null | wc -l)
    say "later fragments seen: $n_in toward h1, $n_out toward the server (untranslated: $bad_in, $bad_out)"
    check "translated later fragments reached h1" [ "$n_in" -gt 0 ]
    check "translated later fragments reached the server (from the pool, $pool..)" [ "$n_out" -gt 0 ]
    check "no fragment crossed untranslated" [ "$((bad_in + bad_out))" -eq 0 ]
fi

if [ "$mode" = snatgw ]; then
    fragment_drops > "$TEST_TMP/drops.after"
    grew=$(awk 'NR == FNR {b[$1] = $2; next} $2 > b[$1] {printf "%s+%d ", $1, $2 - b[$1]}' \
        "$TEST_TMP/drops.before" "$TEST_TMP/drops.after")
    say "fragment drop counters that moved: ${grew:-none}"
    check "the gateway's drop counters were read" [ "$(wc -l < "$TEST_TMP/drops.after")" -eq 6 ]
    check "no fragment was dropped by the gateway" [ -z "$grew" ]
fi
finish
