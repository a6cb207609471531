#!/bin/bash
# Neighbours age out, and floods cannot take the neighbour table (issue 13, item 3). Every flood
# is bounded in count and time and uses lab addresses only (198.18.0.0/15, addresses no
# namespace has).
#
# A fresh lab whose gateway has a /16 on each side (inside.address 198.18.0.1/16, outside.address
# 198.19.0.1/16; the NAT rule stays 198.18.0.0/24), so that there are tens of thousands of
# addresses the gateway would learn or resolve. The configured default gateway (the server,
# 198.19.0.2) is pinned in the neighbour table.
#   1. h1 sends SNL_NBR_ARPS (30000) ARP requests for the gateway's inside address from as many
#      distinct senders (198.18.1.0 and up, each with its own MAC), at up to SNL_NBR_PPS/s.
#        - unsolicited ARP stops creating entries at 3/4 of the table (arp_unsolicited_ignored)
#   2. h1 sends a UDP datagram to each of SNL_NBR_SCAN (20000) outside addresses that no host
#      has (198.19.128.0 and up, on the gateway's outside subnet: each needs its own next hop).
#        - the scanner's source (its pool address) gets its share of pending entries, the rest
#          of its frames are refused (neighbour_pending_refused)
#        - the unanswered pending entries are reclaimed a few seconds later (neighbour_expired)
#   3. After both floods:
#        - a NEW inside host (h2 with a second address, 198.18.0.200, which the gateway never
#          saw) fetches from the server: the gateway resolves it (and the server) and serves it
#        - the existing clients h3 and h4 still fetch from the server
#        - the daemon is alive
source "$(dirname "$0")/lib.sh"

arps="${SNL_NBR_ARPS:-30000}"
scan="${SNL_NBR_SCAN:-20000}"
pps="${SNL_NBR_PPS:-5000}"
ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
snatctl() { "$ctl" --socket "$sock" --timeout 10 "$@"; }
control_stat() {  # the named control counters, space separated
    snatctl --json stats | "$PY3" -c '
import json, sys
c = json.load(sys.stdin)["control"]
print(" ".join(str(c[k]) for k in sys.argv[1:]))' "$@"
}
NEW_HOST=198.18.0.200

lab_fresh --config-extra inside.address=198.18.0.1/16 --config-extra outside.address=198.19.0.1/16
[ "$(lab_mode)" = snatgw ] || skip "the counters checked are snatgw's"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }

fetch() {  # namespace [source address]: the body of hello.txt through the gateway
    in_ns "$1" curl -s -m 10 ${2:+--interface "$2"} "http://$SERVER/hello.txt" || true
}
check "before the floods, h2 fetches from the server" [ "$(fetch h2)" = "hello through the gateway" ]

cat > "$TEST_TMP/nbr_flood.py" <<'PY'
# Bounded floods from one namespace; stop after COUNT frames or 30 s, whichever first.
#   arp IFACE TARGET FIRST COUNT PPS    ARP requests for TARGET from COUNT distinct senders
#                                        FIRST, FIRST+1, ... each with its own MAC (raw frames)
#   scan FIRST COUNT PPS                 one UDP datagram to each of FIRST, FIRST+1, ... (the
#                                        kernel routes them through the gateway)
# Prints {"sent": N, "seconds": S}.
import ipaddress, json, socket, struct, sys, time
mode = sys.argv[1]
t0 = time.monotonic()
sent = 0
def pace(pps):
    ahead = sent / pps - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
if mode == "arp":
    iface, target = sys.argv[2], ipaddress.IPv4Address(sys.argv[3])
    first, count, pps = int(ipaddress.IPv4Address(sys.argv[4])), int(sys.argv[5]), int(sys.argv[6])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for i in range(count):
        if time.monotonic() - t0 > 30:
            break
        mac = b"\x02\x5e" + struct.pack("!I", i + 1)  # locally administered, unicast
        frame = (b"\xff" * 6 + mac + b"\x08\x06" +
                 struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + struct.pack("!I", first + i) +
                 b"\x00" * 6 + target.packed)
        s.send(frame + b"\x00" * (60 - len(frame)))
        sent += 1
        pace(pps)
else:
    first, count, pps = int(ipaddress.IPv4Address(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        if time.monotonic() - t0 > 30:
            break
        try:
            s.sendto(b"scan", (str(ipaddress.IPv4Address(first + i)), 9))
        except OSError:
            pass  # an ICMP error reported on the socket; keep going
        sent += 1
        pace(pps)
print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - t0, 2)}))
PY

read -r ign0 ref0 exp0 learned0 <<<"$(control_stat arp_unsolicited_ignored neighbour_pending_refused neighbour_expired arp_learned)"

# ---- 1. ARP requests from 30,000 distinct inside senders ----------------------------------------
say "1. $arps ARP requests for $GW_IN from distinct senders 198.18.1.0.. (h1, up to $pps/s)"
in_ns h1 timeout 60 "$PY3" "$TEST_TMP/nbr_flood.py" arp eth0 "$GW_IN" 198.18.1.0 "$arps" "$pps" > "$TEST_TMP/arp.json"
say "   sent: $(cat "$TEST_TMP/arp.json")"
sleep 1
read -r ign1 learned1 <<<"$(control_stat arp_unsolicited_ignored arp_learned)"
say "   arp_learned +$((learned1 - learned0)), arp_unsolicited_ignored +$((ign1 - ign0))"
# The table holds 4096: unsolicited learning stops at 3072 entries, everything after is ignored.
check "unsolicited ARP beyond 3/4 of the table is ignored and counted (+$((ign1 - ign0)) of $arps)" \
    [ $((ign1 - ign0)) -ge $((arps / 2)) ]
# (+16: the lab hosts re-validating the gateway are learnt again, as updates)
check "no more than 3072 senders learnt (+$((learned1 - learned0)))" [ $((learned1 - learned0)) -le $((3072 + 16)) ]

# ---- 2. a scan of 20,000 outside addresses nobody has --------------------------------------------
say "2. $scan UDP datagrams from h1 to 198.19.128.0.. (no host there; up to $pps/s)"
in_ns h1 timeout 60 "$PY3" "$TEST_TMP/nbr_flood.py" scan 198.19.128.0 "$scan" "$pps" > "$TEST_TMP/scan.json"
say "   sent: $(cat "$TEST_TMP/scan.json")"
read -r ref1 <<<"$(control_stat neighbour_pending_refused)"
say "   neighbour_pending_refused +$((ref1 - ref0))"
# h1's datagrams all leave from one pool address: 64 pending entries for it at a time.
check "the scanner's frames beyond its pending share are refused and counted (+$((ref1 - ref0)) of $scan)" \
    [ $((ref1 - ref0)) -ge $((scan / 2)) ]

# ---- 3. a new host and the old ones are served ---------------------------------------------------
in_ns h2 ip addr add "$NEW_HOST/24" dev eth0
body=$(fetch h2 "$NEW_HOST")
check "a new inside host ($NEW_HOST, never seen by the gateway) fetches from the server after the floods" \
    [ "$body" = "hello through the gateway" ]
in_ns h2 ip addr del "$NEW_HOST/24" dev eth0 || true
check "h3 still fetches from the server" [ "$(fetch h3)" = "hello through the gateway" ]
check "h4 still fetches from the server" [ "$(fetch h4)" = "hello through the gateway" ]

# The scan's pending entries were never answered: reclaimed 3 s after their last retry.
deadline=$((SECONDS + 15))
while :; do
    read -r exp1 <<<"$(control_stat neighbour_expired)"
    [ $((exp1 - exp0)) -ge 64 ] || [ "$SECONDS" -ge "$deadline" ] || { sleep 1; continue; }
    break
done
check "unanswered pending entries are reclaimed (neighbour_expired +$((exp1 - exp0)))" [ $((exp1 - exp0)) -ge 64 ]
check "the daemon is alive" kill -0 "$(cat "$SNL_DIR/snatgw.pid")"
gateway_report
finish
