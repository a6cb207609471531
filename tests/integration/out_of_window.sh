#!/bin/bash
# Out-of-window TCP segments from the outside (RST after out-of-window packets, the second
# failure snatgw removes). h1 holds a connection to the server's TCP echo service (:7100); from
# the server namespace scapy sends segments toward the connection's public address and port:
#   beyond   data with a sequence number 1e9 beyond the window
#   old      data entirely below the window (an old duplicate)
#   badack   an ACK for data h1 never sent
#   rst      a RST with a sequence number 1e9 beyond the window
# tcpdump on both sides (the server's eth0, the inside bridge) must show that the gateway
#   - never emits a RST, toward either side (the only RST allowed on the inside is the injected
#     one translated, under a policy that forwards it, which h1's TCP ignores),
#   - never lets the segment through untranslated (no pool address as a destination on the
#     inside, no inside address as a source on the outside),
# and the connection keeps working (two echoes after the injection).
# Run under each policy: snatgw liberal, strict, retrans-ok; kernel: its default
# (nf_conntrack_tcp_be_liberal=0) and liberal (=1). SNL_OOW_POLICIES overrides the list.
source "$(dirname "$0")/lib.sh"

if [ "$SNL_GATEWAY" = kernel ]; then
    policies="${SNL_OOW_POLICIES:-default liberal}"
else
    policies="${SNL_OOW_POLICIES:-liberal strict retrans-ok}"
fi

cat > "$TEST_TMP/client.py" <<'PY'
import os, socket, sys, time
server, state = sys.argv[1], sys.argv[2]

def exchange(s, msg):
    s.sendall(msg)
    data = b""
    deadline = time.monotonic() + 3
    while not data.endswith(b"\n"):
        s.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = s.recv(4096)
        if not chunk:
            return "closed"
        data += chunk
    return "ok" if data == msg else "wrong"

s = socket.create_connection((server, 7100), timeout=3)
line = b""
while not line.endswith(b"\n"):
    line += s.recv(1)
peer = line.decode().split()[1]
first = exchange(s, b"hello-before\n")
with open(f"{state}/peer", "w") as f:
    f.write(f"{peer} {first}\n")
t = time.monotonic()
while not os.path.exists(f"{state}/go") and time.monotonic() - t < 60:
    time.sleep(0.05)
results = []
for n in (1, 2):
    try:
        results.append(exchange(s, f"hello-after-{n}\n".encode()))
    except OSError as e:
        results.append(f"{e.__class__.__name__}")
    time.sleep(1)
with open(f"{state}/result", "w") as f:
    f.write(" ".join(results) + "\n")
s.close()
PY

cat > "$TEST_TMP/inject.py" <<'PY'
# Runs in the server namespace: learns the connection's sequence numbers from the outside
# capture, then sends the out-of-window segments toward the public address:port.
import sys, time
from scapy.all import IP, TCP, Raw, rdpcap, send, conf
conf.verb = 0
pcap, server, pub, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
pub_ip, pub_port = pub.rsplit(":", 1)[0], int(pub.rsplit(":", 1)[1])
srv_nxt = srv_ack = cli_nxt = None
for p in rdpcap(pcap):
    if IP not in p or TCP not in p:
        continue
    ip, tcp = p[IP], p[TCP]
    n = len(tcp.payload) + (1 if tcp.flags & 0x03 else 0)
    if ip.src == server and tcp.sport == 7100 and ip.dst == pub_ip and tcp.dport == pub_port:
        srv_nxt, srv_ack = (tcp.seq + n) % 2**32, tcp.ack
    if ip.dst == server and tcp.dport == 7100 and ip.src == pub_ip and tcp.sport == pub_port:
        cli_nxt = (tcp.seq + n) % 2**32
if srv_nxt is None or cli_nxt is None:
    print("no-sequence-numbers")
    sys.exit(1)
M = 2**32
segments = {
    "beyond": TCP(sport=7100, dport=pub_port, flags="PA", seq=(srv_nxt + 10**9) % M, ack=srv_ack) / Raw(b"X" * 64),
    "old": TCP(sport=7100, dport=pub_port, flags="PA", seq=(srv_nxt - 200000) % M, ack=srv_ack) / Raw(b"Y" * 64),
    "badack": TCP(sport=7100, dport=pub_port, flags="A", seq=srv_nxt, ack=(cli_nxt + 10**9) % M),
    "rst": TCP(sport=7100, dport=pub_port, flags="R", seq=(srv_nxt + 10**9) % M),
}
with open(out, "w") as f:
    for name, seg in segments.items():
        send(IP(src=server, dst=pub_ip) / seg)
        f.write(f"{name} {seg.seq} {int(seg.flags)}\n")
        time.sleep(0.2)
print("sent", " ".join(segments))
PY

cat > "$TEST_TMP/analyse.py" <<'PY'
# Reads both captures: RSTs the gateway emitted, untranslated leaks.
import sys
from scapy.all import IP, TCP, rdpcap
outside, inside, injected, pool = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
first, last = pool.split("-") if "-" in pool else (pool, pool)
prefix = first.rsplit(".", 1)[0] + "."
lo, hi = int(first.rsplit(".", 1)[1]), int(last.rsplit(".", 1)[1])
in_pool = lambda a: a.startswith(prefix) and lo <= int(a.rsplit(".", 1)[1]) <= hi
inj_rst = {int(l.split()[1]) for l in open(injected) if l.startswith("rst ")}
out_rst, in_rst, in_rst_translated, leaks_in, leaks_out = [], [], 0, [], []
for p in rdpcap(outside):
    if IP not in p or TCP not in p:
        continue
    ip, tcp = p[IP], p[TCP]
    if ip.src.startswith("198.18."):
        leaks_out.append(f"{ip.src}:{tcp.sport}>{ip.dst}:{tcp.dport}")
    if tcp.flags & 0x04 and not (ip.src == "198.19.0.2" and tcp.seq in inj_rst):
        out_rst.append(f"{ip.src}:{tcp.sport}>{ip.dst}:{tcp.dport} seq={tcp.seq}")
for p in rdpcap(inside):
    if IP not in p or TCP not in p:
        continue
    ip, tcp = p[IP], p[TCP]
    if in_pool(ip.dst) or in_pool(ip.src):
        leaks_in.append(f"{ip.src}:{tcp.sport}>{ip.dst}:{tcp.dport}")
    if tcp.flags & 0x04:
        if ip.src == "198.19.0.2" and tcp.seq in inj_rst:
            in_rst_translated += 1
        else:
            in_rst.append(f"{ip.src}:{tcp.sport}>{ip.dst}:{tcp.dport} seq={tcp.seq}")
print(f"INFO outside RSTs (besides the injected one): {len(out_rst)} {' '.join(out_rst[:3])}")
print(f"INFO inside RSTs: {len(in_rst)} {' '.join(in_rst[:3])}; injected RST forwarded translated: {in_rst_translated}")
print(f"CHECK {int(not out_rst)} no RST toward the server from the gateway or the pool ({len(out_rst)} seen)")
print(f"CHECK {int(not in_rst)} no RST toward the inside except the injected one, translated ({len(in_rst)} seen)")
print(f"CHECK {int(not leaks_in)} nothing untranslated on the inside (pool addresses seen: {len(leaks_in)} {' '.join(leaks_in[:2])})")
print(f"CHECK {int(not leaks_out)} nothing untranslated on the outside (inside addresses seen: {len(leaks_out)} {' '.join(leaks_out[:2])})")
PY

for policy in $policies; do
    if [ "$policy" = default ]; then lab_ensure; else lab_ensure --policy "$policy"; fi
    say "policy $policy: $(cat "$SNL_DIR/state/policy")"
    st="$TEST_TMP/$policy"
    mkdir -p "$st"
    ip netns exec snl-srv tcpdump -n -U -i eth0 -w "$st/outside.pcap" tcp 2>/dev/null &
    dump_out=$!
    ip netns exec snl-sw-in tcpdump -n -U -i br0 -w "$st/inside.pcap" tcp 2>/dev/null &
    dump_in=$!
    _bg_pids+=("$dump_out" "$dump_in")
    sleep 1.5
    ip netns exec snl-h1 "$PY3" "$TEST_TMP/client.py" "$SERVER" "$st" &
    client=$!
    _bg_pids+=("$client")
    for ((n = 0; n < 50; n++)); do [ -s "$st/peer" ] && break; sleep 0.1; done
    read -r pub first < "$st/peer" || { fail "[$policy] h1 could not connect to $SERVER:7100"; continue; }
    pooled=no
    in_pool "${pub%:*}" && pooled=yes
    check "[$policy] connection up, public address $pub from the pool ($pooled), first echo $first" \
        [ "$first:$pooled" = ok:yes ]
    sleep 0.3
    inj=$(in_ns srv "$PY3" "$TEST_TMP/inject.py" "$st/outside.pcap" "$SERVER" "$pub" "$st/injected")
    check "[$policy] scapy sent the out-of-window segments toward $pub ($inj)" grep -q '^sent' <<<"$inj"
    sleep 0.5
    touch "$st/go"
    wait "$client"
    sleep 0.5
    kill -INT "$dump_out" "$dump_in" 2>/dev/null
    wait "$dump_out" "$dump_in" 2>/dev/null
    result=$(cat "$st/result" 2>/dev/null || echo "no-result")
    check "[$policy] the connection keeps working: two echoes after the injection ($result)" [ "$result" = "ok ok" ]
    "$PY3" "$TEST_TMP/analyse.py" "$st/outside.pcap" "$st/inside.pcap" "$st/injected" \
        "$(cat "$SNL_DIR/state/pool")" > "$st/verdict" 2>&1
    while read -r kind rest; do
        if [ "$kind" = INFO ]; then say "[$policy] $rest"; continue; fi
        if [ "$kind" != CHECK ]; then say "[$policy] analyse: $kind $rest"; continue; fi
        if [ "${rest%% *}" = 1 ]; then ok "[$policy] ${rest#* }"; else fail "[$policy] ${rest#* }"; fi
    done < "$st/verdict"
    if [ "$(lab_mode)" = snatgw ]; then
        say "[$policy] snatgw $("$LAB" counters 2>/dev/null | grep -m1 '^drops:' || echo 'drops: (no report)')"
    fi
    if [ "$(lab_mode)" = kernel ]; then
        say "[$policy] kernel conntrack: $(in_ns gw conntrack -S 2>/dev/null | awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } } END { printf "invalid=%d", s["invalid"] }')"
    fi
done
finish
