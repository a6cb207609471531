#!/bin/bash
# Floods and exhaustion (issue 6, item 4). Every flood is bounded in count and time and goes
# to lab addresses only.
#  (a) SYN flood from one inside host. The lab runs with pool.lab.max_sessions_per_host = CAP
#      (SNL_FLOOD_CAP, 500), tcp_transitory, tcp_syn_sent, tcp_syn_recv = 5 s, quarantine = 5 s. h1 sends SNL_FLOOD_SYNS
#      (4000) SYNs from distinct ports to 198.19.0.2:80 at up to 5000/s (h1 drops the SYN/ACKs
#      that come back, so its kernel sends no RST and the sessions stay embryonic, as with a
#      spoofing attacker's). While it runs, h2-h4 run race_client (connects to :7000).
#        - h1 never holds more than CAP sessions; every other SYN is counted (host_session_limit)
#        - the other hosts' connects all succeed, none slow (>= 1 s)
#        - the embryonic sessions expire after tcp_syn_recv and are freed at once (an
#          unanswered handshake gets no quarantine),
#          and then h1 connects again
#  (b) Unsolicited packets at the pool from the outside: SNL_FLOOD_OUT (20000) packets from the
#      server to random ports of 198.19.0.10-11 (TCP SYN, ACK, RST, FIN/ACK, SYN/ACK, UDP, ICMP
#      echo request and reply, ICMP errors quoting nothing we sent), at up to 5000/s, while h2
#      holds a TCP echo connection and h3 a UDP session.
#        - every packet dropped and counted: no_session (or icmp_error_no_session) exactly
#        - no session created, nothing answered (tcpdump on the server sees nothing from the
#          gateway's addresses but the two live sessions' traffic)
#        - both sessions keep working, on the same public ports
#  (c) A full session table: a lab with dataplane.sessions = SNL_FLOOD_TABLE (256). h2 holds 8
#      established connections; h1 floods 4x the table in SYNs; then h3 and h4 open and hold
#      connections until one fails.
#        - the flood fills the table and its embryonic sessions are evicted to make room
#          (sessions_evicted), no refusal yet (session_table_full 0)
#        - the held connections evict the remaining embryonic sessions; once only established
#          ones are left, new connects are refused and counted (session_table_full), cleanly
#          (a timeout: no RST, no refusal from the gateway)
#        - every established connection survives (echoes), the daemon is alive, and after a
#          flush sessions and ports in use are 0 and a new connection works
source "$(dirname "$0")/lib.sh"

cap="${SNL_FLOOD_CAP:-500}"
syns="${SNL_FLOOD_SYNS:-4000}"
out_count="${SNL_FLOOD_OUT:-20000}"
table="${SNL_FLOOD_TABLE:-256}"
ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
snatctl() { "$ctl" --socket "$sock" --timeout 10 "$@"; }
gw_stat() { snatctl --json stats | "$PY3" -c "import json, sys; s = json.load(sys.stdin); print($1)"; }
sessions_of() {  # inside address [state]: how many sessions
    snatctl --json sessions --inside "$1" ${2:+--state "$2"} --count | "$PY3" -c 'import json, sys; print(json.load(sys.stdin)["total"])'
}
H1=198.18.0.11

cat > "$TEST_TMP/flood.py" <<'PY'
# Bounded floods from one namespace through a raw IP socket (the kernel routes them):
#   syn SRC DST DPORT FIRST_SPORT COUNT PPS        SYNs from SRC, source ports FIRST_SPORT..
#   unsolicited SRC POOL_FIRST POOL_LAST AVOID COUNT PPS
#                 packets of every kind to random ports of the pool addresses, never to the
#                 public ports in AVOID (comma separated); prints the counts per kind (JSON)
# Stops after COUNT packets or 30 s, whichever first.
import json, random, socket, sys, time
from scapy.all import ICMP, IP, TCP, UDP, Raw
mode = sys.argv[1]
rng = random.Random(7)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
pkts, kinds = [], {}
if mode == "syn":
    src, dst, dport, first, count, pps = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    for i in range(count):
        pkts.append((dst, bytes(IP(src=src, dst=dst) / TCP(sport=first + i, dport=dport, flags="S", seq=rng.randrange(2**32), window=64240))))
    kinds["syn"] = count
else:
    src, lo, hi, avoid, count, pps = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    avoid = {int(p) for p in avoid.split(",") if p}
    prefix, a, b = lo.rsplit(".", 1)[0], int(lo.rsplit(".", 1)[1]), int(hi.rsplit(".", 1)[1])
    names = ["tcp_syn", "tcp_ack", "tcp_rst", "tcp_finack", "tcp_synack", "udp", "echo_request", "echo_reply", "icmp_error"]
    flags = {"tcp_syn": "S", "tcp_ack": "A", "tcp_rst": "R", "tcp_finack": "FA", "tcp_synack": "SA"}
    for i in range(count):
        dst = f"{prefix}.{rng.randint(a, b)}"
        port = rng.randrange(1024, 65536)
        while port in avoid:
            port = rng.randrange(1024, 65536)
        sport = rng.randrange(1024, 65536)
        k = names[i % len(names)]
        kinds[k] = kinds.get(k, 0) + 1
        ip = IP(src=src, dst=dst)
        if k in flags:
            p = ip / TCP(sport=sport, dport=port, flags=flags[k], seq=rng.randrange(2**32), ack=rng.randrange(2**32))
        elif k == "udp":
            p = ip / UDP(sport=sport, dport=port) / Raw(b"unsolicited")
        elif k == "echo_request":
            p = ip / ICMP(type=8, id=port, seq=1) / Raw(b"ping")
        elif k == "echo_reply":
            p = ip / ICMP(type=0, id=port, seq=1) / Raw(b"pong")
        else:  # port unreachable quoting a datagram "we" never got from the pool
            p = ip / ICMP(type=3, code=3) / bytes(IP(src=dst, dst=src, ttl=1) / UDP(sport=port, dport=sport))
        pkts.append((dst, bytes(p)))
t0 = time.monotonic()
sent = 0
for dst, b in pkts:
    if time.monotonic() - t0 > 30:
        break
    s.sendto(b, (dst, 0))
    sent += 1
    ahead = sent / pps - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
if sent < len(pkts):  # cut by the time bound: count what went
    kinds = {"cut": sent}
print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - t0, 2), "kinds": kinds}))
PY

cat > "$TEST_TMP/udp_client.py" <<'PY'
# A UDP session to the echo service: one datagram every 50 ms until the stop file, each answer
# checked; writes "ok lost public_ends" at the end.
import os, socket, sys, time
server, state = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((server, 7007))
ok = lost = n = 0
peers = set()
while not os.path.exists(f"{state}/udp.stop"):
    msg = f"dgram-{n}".encode()
    n += 1
    s.send(msg)
    try:
        peer, _, echoed = s.recv(2048).partition(b"|")
        if echoed == msg:
            ok += 1
            peers.add(peer.decode())
            if not os.path.exists(f"{state}/udp.peer"):
                open(f"{state}/udp.peer", "w").write(peer.decode() + "\n")
        else:
            lost += 1
    except OSError:
        lost += 1
    time.sleep(0.05)
open(f"{state}/udp.result", "w").write(f"{ok} {lost} {','.join(sorted(peers))}\n")
PY

cat > "$TEST_TMP/holder.py" <<'PY'
# Opens connections to the echo service one after another and holds them: until one fails
# (then MORE further attempts, to have refusals to count), at most MOST. Writes
# "held failure attempts_failed" to STATE/NAME.filled, echoes on every held connection when
# STATE/check appears ("good held" to STATE/NAME.echo), closes them when STATE/release appears.
import os, socket, sys, time
server, state, name, most, more = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
held, failure, failed = [], "none", 0
while len(held) < most:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.5)
    this = "none"
    try:
        s.connect((server, 7100))
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(1)
        held.append(s)
    except socket.timeout:
        this = "timeout"
    except ConnectionRefusedError:
        this = "refused"
    except ConnectionResetError:
        this = "reset"
    except OSError as e:
        this = f"errno{e.errno}"
    if this != "none":
        s.close()
        failure = this if failure in ("none", "timeout") else failure  # keep the worst
        failed += 1
        if failed > more:
            break
open(f"{state}/{name}.filled", "w").write(f"{len(held)} {failure} {failed}\n")
def wait_for(f):
    t = time.monotonic()
    while not os.path.exists(f"{state}/{f}") and time.monotonic() - t < 120:
        time.sleep(0.05)
wait_for("check")
good = 0
for i, s in enumerate(held):
    msg = f"{name}-{i}\n".encode()
    try:
        s.settimeout(3.0)
        s.sendall(msg)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        good += data == msg
    except OSError:
        pass
open(f"{state}/{name}.echo", "w").write(f"{good} {len(held)}\n")
wait_for("release")
for s in held:
    s.close()
PY

cat > "$TEST_TMP/replies.py" <<'PY'
# Packets from the gateway's addresses that are not the two live sessions' traffic.
import sys
from scapy.all import IP, TCP, UDP, rdpcap
tcp_pub, udp_pub = sys.argv[2], sys.argv[3]
bad = []
for p in rdpcap(sys.argv[1]):
    ip = p[IP]
    if TCP in p and f"{ip.src}:{p[TCP].sport}" == tcp_pub and p[TCP].dport == 7100:
        continue
    if UDP in p and f"{ip.src}:{p[UDP].sport}" == udp_pub and p[UDP].dport == 7007:
        continue
    bad.append(p.summary())
print(len(bad), " | ".join(bad[:3]))
PY

# h1's kernel must not answer the SYN/ACKs of the flood (a RST would end the sessions at once).
drop_flood_replies() { in_ns h1 iptables -I INPUT -p tcp --dport 30000:39999 -j DROP; }

# The lab of (a) and (b): a per-host cap, short embryonic timeout and quarantine.
lab_capped() {
    lab_ensure --config-extra "pool.lab.max_sessions_per_host=$cap" --config-extra pool.lab.tcp_transitory=5 \
        --config-extra pool.lab.tcp_syn_sent=5 --config-extra pool.lab.tcp_syn_recv=5 \
        --config-extra pool.lab.quarantine=5
    [ "$(lab_mode)" = snatgw ] || skip "the counters checked are snatgw's"
    [ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
}

# ===== (a) SYN flood from one inside host, per-host cap ======================================
part_a() {
    lab_capped
    client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
    command -v iptables >/dev/null || skip "iptables is missing"
    snatctl sessions flush --all >/dev/null
    drop_flood_replies
    say "(a) SYN flood: $syns SYNs from h1 to $SERVER:80, per-host cap $cap"
    read -r limit0 expired0 <<<"$(gw_stat "s['drops']['host_session_limit'], s['total']['expired']" | tr -d ',()')"
    for i in 2 3 4; do
        ip netns exec "snl-h$i" "$client" --target "$SERVER:7000" --threads 2 --duration 4 --pause-ms 25 \
            --interval 0 --json > "$TEST_TMP/race_h$i.json" 2>/dev/null &
        _bg_pids+=($!)
    done
    ip netns exec snl-h1 "$PY3" "$TEST_TMP/flood.py" syn "$H1" "$SERVER" 80 30000 "$syns" 5000 > "$TEST_TMP/flood_a.json" &
    flood_pid=$!
    _bg_pids+=("$flood_pid")
    most=0
    while kill -0 "$flood_pid" 2>/dev/null; do
        n=$(sessions_of "$H1")
        [ "$n" -gt "$most" ] && most=$n
        sleep 0.2
    done
    wait "$flood_pid"
    wait
    sent=$("$PY3" -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$TEST_TMP/flood_a.json")
    now=$(sessions_of "$H1")
    [ "$now" -gt "$most" ] && most=$now
    limit1=$(gw_stat "s['drops']['host_session_limit']")
    limited=$((limit1 - limit0))
    say "h1 sent $sent SYNs; h1's sessions: at most $most seen, $now now; host_session_limit +$limited"
    check "the cap holds: h1 never had more than $cap sessions (most seen: $most)" [ "$most" -le "$cap" ]
    check "h1 filled its cap: $now sessions" [ "$now" -eq "$cap" ]
    check "every SYN beyond the cap counted: host_session_limit +$limited = $sent - $cap" [ "$limited" -eq $((sent - cap)) ]
    ok_all=0 failed_all=0 slow_all=0
    for i in 2 3 4; do
        read -r c_ok c_failed c_slow <<<"$("$PY3" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["connects_ok"], r["connects_failed"], r["slow_1s_after_call"])' "$TEST_TMP/race_h$i.json" 2>/dev/null || echo "0 missing 0")"
        ok_all=$((ok_all + c_ok)); failed_all=$((failed_all + ${c_failed//missing/1})); slow_all=$((slow_all + c_slow))
    done
    check "the other hosts kept connecting during the flood: $ok_all connects, $failed_all failed, $slow_all slow (>= 1 s)" \
        [ "$ok_all" -gt 0 -a "$failed_all" = 0 -a "$slow_all" = 0 ]
    # Embryonic sessions: expired after tcp_syn_recv (5 s) and freed at once (no quarantine).
    t0=$(date +%s)
    for ((n = 0; n < 40; n++)); do
        embryonic=$(( $(sessions_of "$H1" syn_sent) + $(sessions_of "$H1" syn_recv) ))
        [ "$embryonic" = 0 ] && break
        sleep 0.5
    done
    t_exp=$(($(date +%s) - t0))
    expired=$(( $(gw_stat "s['total']['expired']") - expired0 ))
    check "h1's embryonic sessions timed out within ${t_exp} s of the flood's end (left: $embryonic; expired +$expired)" \
        [ "$embryonic" = 0 -a "$expired" -ge "$cap" ]
    for ((n = 0; n < 40; n++)); do
        left=$(sessions_of "$H1")
        [ "$left" = 0 ] && break
        sleep 0.5
    done
    t_free=$(($(date +%s) - t0))
    check "and were freed: h1 has $left sessions ${t_free} s after the flood" [ "$left" = 0 ]
    body=$(in_ns h1 curl -s -m 5 --local-port 50000-50100 "http://$SERVER/hello.txt" || true)
    check "h1 connects again" [ "$body" = "hello through the gateway" ]
}

# ===== (b) unsolicited packets at the pool from the outside ==================================
part_b() {
    lab_capped
    say "(b) $out_count unsolicited packets from the server to random ports of the pool"
    ip netns exec snl-h2 "$PY3" "$TESTS_DIR/echo_hold.py" "$SERVER" "$TEST_TMP" tcp &
    tcp_pid=$!
    ip netns exec snl-h3 "$PY3" "$TEST_TMP/udp_client.py" "$SERVER" "$TEST_TMP" &
    udp_pid=$!
    _bg_pids+=("$tcp_pid" "$udp_pid")
    for ((n = 0; n < 50; n++)); do [ -s "$TEST_TMP/tcp.peer" ] && [ -s "$TEST_TMP/udp.peer" ] && break; sleep 0.1; done
    tcp_pub=$(cat "$TEST_TMP/tcp.peer" 2>/dev/null) udp_pub=$(cat "$TEST_TMP/udp.peer" 2>/dev/null)
    [ -n "$tcp_pub" ] && [ -n "$udp_pub" ] || { fail "the TCP ($tcp_pub) or UDP ($udp_pub) session did not come up"; finish; }
    say "live sessions: h2 TCP as $tcp_pub, h3 UDP as $udp_pub"
    pool=$(cat "$SNL_DIR/state/pool")
    ip netns exec snl-srv tcpdump -n -U -i eth0 -w "$TEST_TMP/replies.pcap" \
        "ip and (src host 198.19.0.1 or src net 198.19.0.0/24 and not src host $SERVER)" 2>/dev/null &
    dump=$!
    _bg_pids+=("$dump")
    sleep 1
    read -r ns0 ens0 new0 te0 er0 sess0 <<<"$(gw_stat "s['drops']['no_session'], s['drops']['icmp_error_no_session'], s['total']['new'], s['control']['time_exceeded_sent'], s['control']['echo_replies'], s['total']['sessions']" | tr -d ',()')"
    ip netns exec snl-srv "$PY3" "$TEST_TMP/flood.py" unsolicited "$SERVER" "${pool%-*}" "${pool#*-}" \
        "${tcp_pub#*:},${udp_pub#*:}" "$out_count" 5000 > "$TEST_TMP/flood_b.json"
    sleep 1
    read -r ns1 ens1 new1 te1 er1 sess1 <<<"$(gw_stat "s['drops']['no_session'], s['drops']['icmp_error_no_session'], s['total']['new'], s['control']['time_exceeded_sent'], s['control']['echo_replies'], s['total']['sessions']" | tr -d ',()')"
    read -r sent errs secs <<<"$("$PY3" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["sent"], r["kinds"].get("icmp_error", 0), r["seconds"])' "$TEST_TMP/flood_b.json")"
    say "sent $sent packets in $secs s ($(cut -c1-200 "$TEST_TMP/flood_b.json"))"
    check "every unsolicited packet dropped as no_session: +$((ns1 - ns0)) = $((sent - errs))" [ $((ns1 - ns0)) -eq $((sent - errs)) ]
    check "every ICMP error about nothing dropped as icmp_error_no_session: +$((ens1 - ens0)) = $errs" [ $((ens1 - ens0)) -eq "$errs" ]
    check "no session created by the flood (new +$((new1 - new0)); sessions $sess0 -> $sess1)" [ $((new1 - new0)) = 0 ]
    check "the gateway answered none of it itself (time exceeded +$((te1 - te0)), echo replies +$((er1 - er0)))" \
        [ $((te1 - te0)) = 0 -a $((er1 - er0)) = 0 ]
    touch "$TEST_TMP/tcp.stop" "$TEST_TMP/udp.stop"
    wait "$tcp_pid" "$udp_pid"
    sleep 0.5
    kill -INT "$dump" 2>/dev/null
    wait "$dump" 2>/dev/null
    replies=$("$PY3" "$TEST_TMP/replies.py" "$TEST_TMP/replies.pcap" "$tcp_pub" "$udp_pub")
    check "nothing sent toward the server but the live sessions' traffic (others: $replies)" [ "${replies%% *}" = 0 ]
    read -r t_ok t_failed t_worst t_peer < "$TEST_TMP/tcp.result" || t_ok=0
    read -r u_ok u_lost u_peers < "$TEST_TMP/udp.result" || u_ok=0
    check "the TCP session kept working, same public end: $t_ok echoes, $t_failed failed, slowest ${t_worst} ms ($t_peer)" \
        [ "$t_ok" -gt 0 -a "$t_failed" = 0 -a "$t_peer" = "$tcp_pub" ]
    check "the UDP session kept working, same public end: $u_ok answers, $u_lost lost ($u_peers)" \
        [ "$u_ok" -gt 0 -a "$u_lost" = 0 -a "$u_peers" = "$udp_pub" ]
}

# ===== (c) a full session table ==============================================================
part_c() {
    lab_ensure --config-extra "dataplane.sessions=$table"
    [ "$(lab_mode)" = snatgw ] || skip "the counters checked are snatgw's"
    [ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
    snatctl sessions flush --all >/dev/null
    capacity=$(gw_stat "s['total']['session_capacity']")
    say "(c) session table of $capacity; h2 holds 8 connections, h1 floods $((4 * capacity)) SYNs"
    drop_flood_replies
    rm -f "$TEST_TMP/check" "$TEST_TMP/release"
    ip netns exec snl-h2 "$PY3" "$TEST_TMP/holder.py" "$SERVER" "$TEST_TMP" h2 8 0 &
    _bg_pids+=($!)
    for ((n = 0; n < 100; n++)); do [ -s "$TEST_TMP/h2.filled" ] && break; sleep 0.1; done
    read -r h2_held _ < "$TEST_TMP/h2.filled" || h2_held=0
    check "h2 holds 8 established connections ($h2_held)" [ "$h2_held" = 8 ]
    read -r ev0 full0 ins0 <<<"$(gw_stat "s['total']['evicted'], s['drops']['session_table_full'], s['total']['insert_failed']" | tr -d ',()')"
    ip netns exec snl-h1 "$PY3" "$TEST_TMP/flood.py" syn "$H1" "$SERVER" 80 30000 $((4 * capacity)) 3000 > "$TEST_TMP/flood_c.json"
    sleep 0.5
    read -r ev1 full1 sessions1 ins1 <<<"$(gw_stat "s['total']['evicted'], s['drops']['session_table_full'], s['total']['sessions'], s['total']['insert_failed']" | tr -d ',()')"
    sent=$("$PY3" -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$TEST_TMP/flood_c.json")
    say "after $sent SYNs: $sessions1 sessions, evicted +$((ev1 - ev0)), session_table_full +$((full1 - full0)) (of which the hash refused the insert: insert_failed +$((ins1 - ins0)))"
    check "the flood filled the table ($sessions1 of $capacity)" [ "$sessions1" = "$capacity" ]
    check "its embryonic sessions were dropped early to make room: evicted +$((ev1 - ev0)) >= $((sent - capacity))" \
        [ $((ev1 - ev0)) -ge $((sent - capacity)) ]
    check "no refusal while something could be evicted (session_table_full +$((full1 - full0)))" [ "$full1" = "$full0" ]
    # Established connections until the table holds nothing else; then refusals.
    ip netns exec snl-h3 "$PY3" "$TEST_TMP/holder.py" "$SERVER" "$TEST_TMP" h3 "$capacity" 3 &
    _bg_pids+=($!)
    for ((n = 0; n < 600; n++)); do [ -s "$TEST_TMP/h3.filled" ] && break; sleep 0.1; done
    read -r h3_held h3_failure h3_failed < "$TEST_TMP/h3.filled" || { h3_held=0; h3_failure=missing; }
    read -r ev2 full2 sessions2 embryonic ins2 <<<"$(gw_stat "s['total']['evicted'], s['drops']['session_table_full'], s['total']['sessions'], s['sessions_by_state']['tcp']['syn_sent'] + s['sessions_by_state']['tcp']['syn_recv'], s['total']['insert_failed']" | tr -d ',()')"
    say "h3 holds $h3_held connections, then $h3_failed failed ($h3_failure); $sessions2 sessions, $embryonic embryonic; evicted +$((ev2 - ev1)), session_table_full +$((full2 - full1)) (insert_failed +$((ins2 - ins1)))"
    snatctl sessions --inside 198.18.0.13 --limit 5 > "$TEST_TMP/h3.sessions" 2>&1
    check "the held connections took the embryonic sessions' places (evicted +$((ev2 - ev1)), embryonic left: $embryonic)" \
        [ $((ev2 - ev1)) -gt 0 -a "$embryonic" = 0 ]
    check "then new connects were refused and counted: session_table_full +$((full2 - full1))" [ $((full2 - full1)) -gt 0 ]
    check "cleanly: the failed connects timed out (no reset or refusal: $h3_failure)" [ "$h3_failure" = timeout ]
    touch "$TEST_TMP/check"
    for ((n = 0; n < 100; n++)); do [ -s "$TEST_TMP/h2.echo" ] && [ -s "$TEST_TMP/h3.echo" ] && break; sleep 0.1; done
    read -r h2_good _ < "$TEST_TMP/h2.echo" || h2_good=0
    read -r h3_good _ < "$TEST_TMP/h3.echo" || h3_good=0
    check "every established connection survived: h2 $h2_good/8, h3 $h3_good/$h3_held echoes" \
        [ "$h2_good" = 8 -a "$h3_good" = "$h3_held" ]
    say "drops meanwhile: $(gw_stat "' '.join(f'{k}={v}' for k, v in s['drops'].items() if v)")"
    if [ "$h3_good" != "$h3_held" ]; then
        say "h3's sessions when it held its connections:"; sed 's/^/    /' "$TEST_TMP/h3.sessions"
        say "h3's sessions now:"; snatctl sessions --inside 198.18.0.13 --limit 5 | sed 's/^/    /'
    fi
    touch "$TEST_TMP/release"
    wait
    check "the daemon is alive" kill -0 "$(cat "$SNL_DIR/snatgw.pid")"
    snatctl sessions flush --all >/dev/null
    sleep 0.5
    read -r s_left p_left <<<"$(gw_stat "s['total']['sessions'], sum(u['tcp'] + u['udp'] + u['icmp'] for u in s['ports_in_use'])" | tr -d ',()')"
    check "after a flush: $s_left sessions, $p_left ports in use" [ "$s_left:$p_left" = 0:0 ]
    body=$(in_ns h4 curl -s -m 5 "http://$SERVER/hello.txt" || true)
    check "a new connection works" [ "$body" = "hello through the gateway" ]
}

# (b) first: the SYN/ACKs the server still retransmits after (a) would be unsolicited too.
for part in ${SNL_FLOOD_PARTS:-b a c}; do
    case "$part" in
        a) part_a ;;
        b) part_b ;;
        c) part_c ;;
        *) fail "SNL_FLOOD_PARTS: unknown part '$part' (a, b, c)" ;;
    esac
done
finish
