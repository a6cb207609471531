#!/bin/bash
# A silent SYN flood from one inside host, and another host connecting meanwhile. A fresh lab
# with ONE pool address and the default configuration (no per-host cap set). h1 floods the
# server's port with SYNs from ever new source ports (hping3, SNL_SYNFLOOD_RATE per second,
# 15,000, for SNL_SYNFLOOD_SECONDS, 15; bounded by a count and by `timeout`) and drops its own
# RSTs (iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP in h1), so the server's SYN/ACKs
# are never answered and every flooded connection stays half open (the server retransmits its
# SYN/ACK, falls back on SYN cookies when its SYN queue is full). h2 connects to the same
# server port, one connection at a time per thread (2 threads, 100 ms apart, 3 s connect
# timeout, client closes first): for SNL_SYNFLOOD_BEFORE_SECONDS (3) before the flood, during
# it, and for SNL_SYNFLOOD_AFTER_SECONDS (20) after it. Passes when
#   - h1 did flood: more SYNs than the pool address has ports (64,512), so that a gateway that
#     gives each of them a (public port, server) pair runs out of pairs toward the server,
#   - in each phase h2 made connections, none failed and none needed a second SYN (TCP_INFO),
#     and h2's TcpExtTCPSynRetrans did not move,
#   - the server rejected no SYN on a TIME_WAIT (TcpExtPAWSTimewait).
# Printed with them: the flood's rate, the server's SYN cookies, TIME_WAIT and accept-queue
# counters, and the gateway's counters at the end of the flood and at the end (snatgw: its
# report and the sessions h1 holds; kernel: conntrack -S and -C).
source "$(dirname "$0")/lib.sh"
lab_fresh --pool-addresses 198.19.0.10

rate="${SNL_SYNFLOOD_RATE:-15000}"
seconds="${SNL_SYNFLOOD_SECONDS:-15}"
before="${SNL_SYNFLOOD_BEFORE_SECONDS:-3}"
after="${SNL_SYNFLOOD_AFTER_SECONDS:-20}"
port="${SNL_SYNFLOOD_PORT:-7005}"
for n in "$rate" "$seconds" "$before" "$after"; do
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { fail "SNL_SYNFLOOD_*: whole numbers >= 1 (got '$n')"; finish; }
done
# Bounded: at most 50,000 SYNs/s for at most 60 s.
[ "$rate" -le 50000 ] && [ "$seconds" -le 60 ] || { fail "SNL_SYNFLOOD_RATE <= 50000 and SNL_SYNFLOOD_SECONDS <= 60"; finish; }
count=$((rate * seconds))
interval_us=$((1000000 / rate))
pool_ports=64512
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
server=$(race_bin race_server) || { fail "race_server is not built"; finish; }
command -v hping3 >/dev/null || { fail "hping3 is missing (apt-get install hping3; tools/test installs it)"; finish; }
command -v iptables >/dev/null || { fail "iptables is missing (apt-get install iptables; tools/test installs it)"; finish; }

ip netns exec snl-srv "$server" --threads 2 --address "$SERVER" --port "$port" --json \
    > "$TEST_TMP/server.json" 2> "$TEST_TMP/server.err" &
srv_pid=$!
_bg_pids+=("$srv_pid")
# h1 must not answer the server's SYN/ACKs (a RST would end each half-open connection at once).
in_ns h1 iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP \
    || { fail "iptables in h1: the flooder's RSTs cannot be dropped"; finish; }
undo_rst_drop() { in_ns h1 iptables -D OUTPUT -p tcp --tcp-flags RST RST -j DROP 2>/dev/null || true; }
sleep 0.5
kill -0 "$srv_pid" 2>/dev/null || { undo_rst_drop; fail "race_server did not start: $(cat "$TEST_TMP/server.err")"; finish; }

connects() {  # phase seconds: h2's connects for that long
    ip netns exec snl-h2 timeout -k 5 "$(($2 + 20))" "$client" --target "$SERVER:$port" --threads 2 --pause-ms 100 \
        --duration "$2" --connect-timeout 3 --interval 0 --json > "$TEST_TMP/$1.json" 2> "$TEST_TMP/$1.progress"
}
h1_tx() { in_ns h1 cat /sys/class/net/eth0/statistics/tx_packets; }
h1_sessions() {  # sessions of h1 at the gateway
    if [ "$(lab_mode)" = kernel ]; then
        echo "conntrack entries from h1: $(in_ns gw conntrack -L -s 198.18.0.11 2>/dev/null | wc -l)"
    elif [ -x "$SNATCTL" ]; then
        echo "h1's sessions: $("$SNATCTL" --socket "$SNL_DIR/snatgw.sock" --timeout 10 --json sessions --inside 198.18.0.11 --count 2>/dev/null \
            | "$PY3" -c 'import json, sys; print(json.load(sys.stdin)["total"])' 2>/dev/null || echo '?'); by state: $("$SNATCTL" --socket "$SNL_DIR/snatgw.sock" --timeout 10 --json stats 2>/dev/null \
            | "$PY3" -c 'import json, sys; t = json.load(sys.stdin)["sessions_by_state"]["tcp"]; print(" ".join(f"{k}={v}" for k, v in t.items() if v) or "none")' 2>/dev/null || echo '?')"
    fi
}

tcp_snapshot "$TEST_TMP/tcp.0"
say "phase 'before': h2 connects to $SERVER:$port for $before s ($(lab_mode) gateway, pool $(cat "$SNL_DIR/state/pool"))"
connects before "$before"
tcp_snapshot "$TEST_TMP/tcp.1"

say "phase 'during': h1 floods $SERVER:$port with SYNs (hping3, 1 every $interval_us us, at most $count, $seconds s), h2 connects meanwhile"
tx0=$(h1_tx)
t0=$(date +%s.%N)
ip netns exec snl-h1 timeout -s INT -k 3 "$seconds" hping3 -q -S -p "$port" -i "u$interval_us" -c "$count" "$SERVER" \
    > "$TEST_TMP/hping3.out" 2>&1 &
flood_pid=$!
_bg_pids+=("$flood_pid")
connects during "$seconds" &
during_pid=$!
_bg_pids+=("$during_pid")
wait "$flood_pid"
t1=$(date +%s.%N)
tx1=$(h1_tx)
sent=$((tx1 - tx0))
flood_s=$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')
wait "$during_pid"
say "h1 sent $sent packets in $flood_s s ($(echo "$sent $flood_s" | awk '{printf "%.0f", $1 / ($2 > 0 ? $2 : 1)}')/s); hping3: $(grep -E 'packets (transmitted|tramitted)' "$TEST_TMP/hping3.out" | head -1)"
say "at the flood's end: $(h1_sessions)"
gateway_report
tcp_snapshot "$TEST_TMP/tcp.2"

say "phase 'after': h2 connects for $after s after the flood"
connects after "$after"
tcp_snapshot "$TEST_TMP/tcp.3"
undo_rst_drop
kill -TERM "$srv_pid"
wait "$srv_pid"

check "h1 flooded: $sent SYNs, more than the $pool_ports ports of the one pool address" [ "$sent" -gt "$pool_ports" ]
i=0
for phase in before during after; do
    retrans=$(tcp_delta "$TEST_TMP/tcp.$i" "$TEST_TMP/tcp.$((i + 1))" TcpExtTCPSynRetrans snl-h2)
    i=$((i + 1))
    read -r c_ok c_failed c_retrans c_errs c_max <<<"$("$PY3" -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("0 1 0 no-report 0"); sys.exit()
e = {k: v for k, v in list(r["errors"].items()) + list(r["errors_other"].items()) if v and k != "other"}
print(r["connects_ok"], r["connects_failed"], r["syn_retransmitted"], ",".join(f"{k}={v}" for k, v in sorted(e.items())) or "none", r["connect_ms"]["max"])' "$TEST_TMP/$phase.json")"
    say "[$phase] figures: connects=$((c_ok + c_failed)) failed=$c_failed ($c_errs) syn_retrans_tcp_info=$c_retrans syn_retrans_nstat=$retrans slowest_ms=$c_max"
    check "[$phase] h2 connected: $c_ok connects, $c_failed failed ($c_errs)" [ "$c_ok" -gt 0 -a "$c_failed" = 0 ]
    check "[$phase] h2 sent no SYN twice (TCP_INFO: $c_retrans connects; TcpExtTCPSynRetrans +$retrans)" [ "$c_retrans" = 0 -a "$retrans" = 0 ]
done
paws=$(tcp_delta "$TEST_TMP/tcp.0" "$TEST_TMP/tcp.3" TcpExtPAWSTimewait snl-srv)
say "server TCP counters that moved over the test: $(server_tcp_moved "$TEST_TMP/tcp.0" "$TEST_TMP/tcp.3")"
check "no SYN rejected by a TIME_WAIT at the server (TcpExtPAWSTimewait +$paws)" [ "$paws" = 0 ]
say "at the end: $(h1_sessions)"
gateway_report
finish
