#!/bin/bash
# Soak (issue 6, item 5): a bounded run of heavy session churn, then the gateway must be back
# at its idle baseline. SNL_SOAK_SECONDS (default 120) of, at once:
#   - h1, h2: race_client, 2 threads each, connect and close with a RST (no TIME_WAIT on the
#     host, so no pause is needed) to the server's :7000
#   - h3, h4: race_client, 2 threads each, connect and close with a FIN, 2 ms pause per thread
#     (what a host's 64k local ports allow with TIME_WAIT holding them 60 s)
#   - every host: UDP churn, a new socket (a new session) per request/response to :7007
#   - h1: ICMP churn, one `ping -c 1` after another (a new identifier, a new session, each time)
# The lab runs with short timeouts (udp 10 s, icmp 5 s, tcp_transitory 10 s, quarantine 10 s),
# so that the sessions the churn leaves behind expire within the test.
# Checks:
#   - the churn worked: connects made, none failed; UDP answers with the right contents (a
#     few lost datagrams on two shared cores are tolerated: at most 0.5 %); pings answered
#   - the daemon's memory does not grow: its RSS (VmRSS of /proc/PID/status) at the end of the
#     churn is within SNL_SOAK_RSS_MARGIN_KB (default 2048 KiB) of its RSS at the middle, and
#     so are the bytes allocated from the DPDK heaps (EAL telemetry /eal/heap_info: hugepage
#     memory, not in the RSS); its open file descriptors and threads are as many at the end as
#     at the middle
#   - no RX mbuf allocation failure (rx_nombuf 0); mbufs in use back to the idle level once
#     the churn stops (when the stats carry an "mbufs" counter)
#   - after the churn stops, every session expires by itself: sessions, ports in use and
#     sessions by state all back to 0 (the idle baseline) within 40 s, without a flush; a
#     flush then finds nothing
#   - the gateway still forwards at full health: a 10 MB download is intact
# A longer run: SNL_SOAK_SECONDS=1800 tests/integration/soak.sh (docs/operations.md, "Soak").
source "$(dirname "$0")/lib.sh"
lab_ensure --config-extra pool.lab.udp=10 --config-extra pool.lab.icmp=5 \
    --config-extra pool.lab.tcp_transitory=10 --config-extra pool.lab.tcp_syn_sent=10 \
    --config-extra pool.lab.tcp_syn_recv=10 --config-extra pool.lab.quarantine=10
[ "$(lab_mode)" = snatgw ] || skip "the memory and counters checked are snatgw's"

seconds="${SNL_SOAK_SECONDS:-120}"
margin_kb="${SNL_SOAK_RSS_MARGIN_KB:-2048}"
ctl="$SNL_BUILD/tools/snatctl/snatctl"
sock="$SNL_DIR/snatgw.sock"
[ -x "$ctl" ] || { fail "snatctl is not built ($ctl)"; finish; }
client=$(race_bin race_client) || { fail "race_client is not built"; finish; }
snatctl() { "$ctl" --socket "$sock" --timeout 10 "$@"; }
gw_stat() { snatctl --json stats | "$PY3" -c "import json, sys; s = json.load(sys.stdin); print($1)" | tr -d ',()'; }
live='s["total"]["sessions"], sum(u["tcp"] + u["udp"] + u["icmp"] for u in s["ports_in_use"]), sum(s["sessions_by_state"]["tcp"].values()) + s["sessions_by_state"]["udp"] + s["sessions_by_state"]["icmp"]'
mbufs='sum(p["in_use"] for p in s["mbufs"].values()) if isinstance(s.get("mbufs"), dict) else ""'
pid=$(cat "$SNL_DIR/snatgw.pid")
hosts=$(host_count)
# The daemon's memory and handles: "VmRSS_kB RssAnon_kB fds threads dpdk_heap_bytes" (the
# DPDK heap holds the session tables and rings; hugepage memory is not in VmRSS).
proc_sample() {
    echo "$(awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} /^Threads:/ {t = $2} END {print r, a, t}' "/proc/$pid/status") $(find "/proc/$pid/fd" -mindepth 1 | wc -l) $("$PY3" "$TEST_TMP/dpdk_heap.py")"
}

cat > "$TEST_TMP/dpdk_heap.py" <<'PY'
# Bytes allocated from the DPDK heaps (rte_malloc), from the EAL telemetry socket of the lab's
# daemon (--file-prefix snl); prints nothing when the daemon runs without telemetry.
import json, os, socket
path = "/var/run/dpdk/snl/dpdk_telemetry.v2"
if os.path.exists(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    size = json.loads(s.recv(4096))["max_output_len"]
    def ask(cmd):
        s.send(cmd.encode())
        return json.loads(s.recv(size))
    print(sum(ask(f"/eal/heap_info,{h}")["/eal/heap_info"]["Alloc_size"]
              for h in ask("/eal/heap_list")["/eal/heap_list"]))
PY

cat > "$TEST_TMP/udp_churn.py" <<'PY'
# UDP churn: a new socket (so a new public port) for every request, until the stop file;
# writes "ok lost wrong" at the end.
import os, socket, sys
server, state, name = sys.argv[1], sys.argv[2], sys.argv[3]
ok = lost = wrong = n = 0
while not os.path.exists(f"{state}/stop"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    msg = f"{name}-{n}".encode()
    n += 1
    try:
        s.sendto(msg, (server, 7007))
        data, _ = s.recvfrom(2048)
        if data.partition(b"|")[2] == msg:
            ok += 1
        else:
            wrong += 1
    except socket.timeout:
        lost += 1
    s.close()
open(f"{state}/{name}.udp", "w").write(f"{ok} {lost} {wrong}\n")
PY

snatctl sessions flush --all >/dev/null
sleep 1
read -r base_sessions base_ports base_states <<<"$(gw_stat "$live")"
base_mbufs=$(gw_stat "$mbufs")
nombuf0=$(gw_stat 's["ports"]["inside"]["rx_nombuf"] + s["ports"]["outside"]["rx_nombuf"]')
read -r missed0 created0 <<<"$(gw_stat 's["ports"]["inside"]["missed"] + s["ports"]["outside"]["missed"], s["total"]["new"]')"
say "idle baseline: $base_sessions sessions, $base_ports ports in use; daemon pid $pid: $(proc_sample) (VmRSS kB, RssAnon kB, threads, fds, DPDK heap bytes); mbufs in use: ${base_mbufs:-no counter}"
say "soak: $seconds s of churn from $hosts hosts"

t0=$(date +%s)
for ((i = 1; i <= hosts; i++)); do
    if [ $((i % 4)) -eq 1 ] || [ $((i % 4)) -eq 2 ]; then close=(--rst); else close=(--pause-ms 2); fi
    ip netns exec "snl-h$i" "$client" --target "$SERVER:7000" --threads 2 --duration "$seconds" "${close[@]}" \
        --interval 0 --json > "$TEST_TMP/race_h$i.json" 2> "$TEST_TMP/race_h$i.err" &
    _bg_pids+=($!)
    ip netns exec "snl-h$i" "$PY3" "$TEST_TMP/udp_churn.py" "$SERVER" "$TEST_TMP" "h$i" &
    _bg_pids+=($!)
done
(
    ok=0 failed=0
    while [ ! -e "$TEST_TMP/stop" ]; do
        if ip netns exec snl-h1 ping -c 1 -W 1 "$SERVER" >/dev/null 2>&1; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
        sleep 0.2
    done
    echo "$ok $failed" > "$TEST_TMP/ping"
) &
_bg_pids+=($!)

# Samples every 5 s: sessions and the daemon's memory. The middle and the end are kept.
most_sessions=0
mid="" end=""
: > "$TEST_TMP/samples"
while [ $(($(date +%s) - t0)) -lt "$seconds" ]; do
    sleep 5
    el=$(($(date +%s) - t0))
    read -r sess _ <<<"$(gw_stat "$live")"
    smp=$(proc_sample)
    echo "$el s: $sess sessions, $smp" >> "$TEST_TMP/samples"
    [ "${sess:-0}" -gt "$most_sessions" ] && most_sessions=$sess
    if [ -z "$mid" ] && [ "$el" -ge $((seconds / 2)) ]; then mid=$smp; fi
    if [ "$el" -ge $((seconds - 6)) ] && [ -z "$end" ]; then end=$smp; fi
done
[ -n "$end" ] || end=$(proc_sample)
[ -n "$mid" ] || mid=$end
read -r created1 <<<"$(gw_stat 's["total"]["new"]')"
touch "$TEST_TMP/stop"
wait
t_churn=$(($(date +%s) - t0))
sed 's/^/    /' "$TEST_TMP/samples"
say "churn over after $t_churn s: $((created1 - created0)) sessions created, at most $most_sessions live at once"

# --- the churn itself --------------------------------------------------------------------------
c_ok=0 c_failed=0 u_ok=0 u_lost=0 u_wrong=0
for ((i = 1; i <= hosts; i++)); do
    read -r ok failed <<<"$("$PY3" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(r["connects_ok"], r["connects_failed"])' "$TEST_TMP/race_h$i.json" 2>/dev/null || echo "0 1")"
    c_ok=$((c_ok + ok)); c_failed=$((c_failed + failed))
    read -r ok lost wrong < "$TEST_TMP/h$i.udp" || { ok=0; lost=1; wrong=0; }
    u_ok=$((u_ok + ok)); u_lost=$((u_lost + lost)); u_wrong=$((u_wrong + wrong))
done
read -r p_ok p_failed < "$TEST_TMP/ping" || { p_ok=0; p_failed=1; }
check "TCP churn: $c_ok connects, $c_failed failed" [ "$c_ok" -gt 0 -a "$c_failed" = 0 ]
check "UDP churn: $u_ok answers, $u_wrong wrong, $u_lost lost (at most 0.5 %)" \
    [ "$u_ok" -gt 0 -a "$u_wrong" = 0 -a $((u_lost * 200)) -le $((u_ok + u_lost)) ]
check "ICMP churn: $p_ok pings answered, $p_failed not" [ "$p_ok" -gt 0 -a "$p_failed" = 0 ]

# --- memory ------------------------------------------------------------------------------------
read -r rss_mid anon_mid thr_mid fds_mid heap_mid <<<"$mid"
read -r rss_end anon_end thr_end fds_end heap_end <<<"$end"
say "daemon at the middle: VmRSS $rss_mid kB, RssAnon $anon_mid kB, $thr_mid threads, $fds_mid fds, DPDK heap ${heap_mid:-?} B; at the end: $rss_end kB, $anon_end kB, $thr_end threads, $fds_end fds, ${heap_end:-?} B"
check "memory does not grow: VmRSS $rss_mid -> $rss_end kB (margin $margin_kb kB)" [ $((rss_end - rss_mid)) -le "$margin_kb" ]
if [ -n "$heap_mid" ] && [ -n "$heap_end" ]; then
    check "the DPDK heap does not grow: $heap_mid -> $heap_end bytes allocated (margin $margin_kb kB)" \
        [ $((heap_end - heap_mid)) -le $((margin_kb * 1024)) ]
else
    say "no EAL telemetry socket: the DPDK heap not checked"
fi
check "no file descriptor or thread leak: fds $fds_mid -> $fds_end, threads $thr_mid -> $thr_end" \
    [ "$fds_end" -le "$fds_mid" -a "$thr_end" -le "$thr_mid" ]
read -r nombuf missed <<<"$(gw_stat 's["ports"]["inside"]["rx_nombuf"] + s["ports"]["outside"]["rx_nombuf"], s["ports"]["inside"]["missed"] + s["ports"]["outside"]["missed"]')"
say "ports: frames missed during the soak (RX ring full, the worker not scheduled in time): $((missed - missed0))"
check "no RX mbuf allocation failure (rx_nombuf +$((nombuf - nombuf0)))" [ "$nombuf" = "$nombuf0" ]

# --- back to the idle baseline by expiry alone -------------------------------------------------
t1=$(date +%s)
for ((n = 0; n < 80; n++)); do
    read -r sessions ports states <<<"$(gw_stat "$live")"
    [ "$sessions:$ports:$states" = "$base_sessions:$base_ports:$base_states" ] && break
    sleep 0.5
done
check "every session expired by itself within $(($(date +%s) - t1)) s: sessions $sessions, ports in use $ports, by state $states (idle: $base_sessions, $base_ports, $base_states)" \
    [ "$sessions:$ports:$states" = "$base_sessions:$base_ports:$base_states" ]
flushed=$(snatctl --json sessions flush --all | "$PY3" -c 'import json, sys; print(json.load(sys.stdin)["flushed"])')
check "a flush afterwards finds nothing ($flushed flushed)" [ "$flushed" = 0 ]
end_mbufs=$(gw_stat "$mbufs")
if [ -n "$base_mbufs" ]; then
    check "mbufs in use back to the idle level: $end_mbufs (idle: $base_mbufs)" [ "$end_mbufs" -le $((base_mbufs + 64)) ]
else
    say "mbufs in use: the daemon's stats have no \"mbufs\" counter (not checked; rx_nombuf above and the download below stand in)"
fi
want=$(cat "$SNL_DIR/www/10M.bin.sha256")
got=$(in_ns h2 curl -s -m 30 "http://$SERVER/10M.bin" | sha256sum | cut -d' ' -f1)
check "full health after the soak: a 10 MB download is intact" [ "$got" = "$want" ]
check "the daemon is still the same process (pid $pid)" kill -0 "$pid"
finish
