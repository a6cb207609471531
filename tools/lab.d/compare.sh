# shellcheck shell=bash
# Part of tools/lab (sourced by it when the command is `compare`, not run): snatgw against the
# Linux kernel's SNAT, side by side, in one invocation (issue 5). For each gateway in turn
# (snatgw first, then kernel) it runs six bounded workloads from the inside hosts, each storm
# and the flood on a fresh lab and UDP + iperf3 on a last one (`tools/lab up`, ...,
# `tools/lab down`), and records the raw results and the gateway's counters:
#   (a) connect storm, client closes first: race_client on every host -> race_server :7001
#   (b) connect storm, server closes first: race_client --server-closes -> race_server
#       --close-first :7002 (reused public ports meet the server's TIME_WAIT)
#   (e) connect storm, close on accept, ONE pool address: race_server --close-first :7003,
#       race_client closing at once after connect (both FINs cross: both ends hold TIME_WAIT),
#       500 ms connect timeout - the Go client of the SNAT-race reports
#   (f) a silent SYN flood, ONE pool address: h1 floods :7005 with SYNs (hping3) and drops its
#       own RSTs, while h2 connects to the same port before, during and after
#   (c) UDP request/response: udp_rr.py on every host -> the lab's UDP echo :7007
#   (d) iperf3 TCP throughput from h1: upload, then download (-R)
# Then compare_report.py turns the raw files into compare.txt, compare.json and compare.png.
# The lab is taken down at the end, also on error or interrupt. Uses the lab's globals and
# functions (SNL_DIR, SNATGW_ROOT, LAB_D, SERVER, NS_GW, NS_SRV, say, warn, die, in_ns, race_bin,
# lab_is_up, existing_namespaces, state_get).

compare_usage() {
    cat <<EOF
usage: tools/lab compare [options]

Runs the same bounded workloads against snatgw, then against the kernel (iptables SNAT), each
storm and the SYN flood on a fresh lab, UDP and iperf3 on a last one, and writes a side-by-side
report (text, JSON, PNG) with the ratio snatgw/kernel. Workloads: (a) storm, client closes
first; (b) storm, server closes first; (e) storm, close on accept, one pool address, 500 ms
connect timeout; (f) silent SYN flood from h1 while h2 connects, one pool address; (c) UDP
request/response; (d) iperf3.
The lab must be down; it is down again at the end. On a shared machine run it under the lab
lock: flock /tmp/snl-lab.lock tools/lab compare

options:
  --seconds S         duration of each connect storm, (a), (b) and (e) (default 30)
  --hosts N           inside hosts (default 4)
  --threads N         race_client threads per host (default 32)
  --addresses-per-host N  source addresses each host's storm threads use round-robin, its own
                      and N-1 from 198.18.0.211-254, so its local ports (60 s in TIME_WAIT
                      after a client close) last the storm (default: one per 15 s of
                      storm, up to 4: 2 for 30 s)
  --udp-seconds S     duration of the UDP request/response load (default: min(10, --seconds))
  --udp-sockets N     UDP sockets per host, one request out each (default 16)
  --iperf-seconds S   duration of each iperf3 run (default: min(10, --seconds))
  --flood-seconds S   (f): how long h1 floods (default 15)
  --flood-rate N      (f): SYNs per second asked of hping3 (default 15000; the machine may
                      give fewer, the report shows how many went)
  --flood-after S     (f): how long h2 keeps connecting after the flood (default 20)
  --workloads LIST    which workloads, in this order (default "a b e f c d"; c and d share a lab)
  --out DIR           output directory (default $SNL_DIR/compare-<date>)
  --only snatgw|kernel  run one gateway only (no ratios; for trying things out)
  --snatgw-args "ARGS"  extra 'tools/lab up' options for the snatgw lab (e.g. "--workers 2")
  --kernel-args "ARGS"  extra 'tools/lab up' options for the kernel lab (e.g. "--random-fully")
  --report-only DIR   only (re)write the report from the raw results already in DIR
EOF
}

CMP_LAB_UP=0        # 1 while a lab this command brought up is up
# Background processes this command started, killed by PID on cleanup. `ip netns exec` execs
# the command, so $! is the process itself (or `timeout`, which passes a TERM on).
CMP_PIDS=()
CMP_CLEANED=0

cmp_cleanup() {
    [ "$CMP_CLEANED" = 1 ] && return 0
    CMP_CLEANED=1
    local p
    for p in "${CMP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    if [ "$CMP_LAB_UP" = 1 ]; then
        say "compare: taking the lab down"
        "$SNATGW_ROOT/tools/lab" down >/dev/null 2>&1 || warn "tools/lab down failed: run it by hand"
        CMP_LAB_UP=0
    fi
}

# Wait for the background PIDs given; returns non-zero if any failed (after waiting for all).
cmp_wait() {
    local p rc=0
    for p in "$@"; do wait "$p" || rc=1; done
    return "$rc"
}

# The counters of the lab's TCP stacks that tell a lost SYN (hosts: TcpExtTCPSynRetrans) from
# a server too slow to accept (server: TcpExtListenOverflows), and a SYN the server rejected on
# a TIME_WAIT's timestamp (server: TcpExtPAWSTimewait: a public (address, port) pair reused
# while the server still held it), with the server's TIME_WAIT and SYN cookie counters for
# context; one "ns counter value" a line.
cmp_tcp_counters() {
    local hosts="$1" i
    for ((i = 1; i <= hosts; i++)); do
        in_ns "snl-h$i" nstat -asz TcpExtTCPSynRetrans | awk -v ns="snl-h$i" '$1 ~ /^TcpExt/ {print ns, $1, $2}'
    done
    in_ns "$NS_SRV" nstat -asz TcpExtListenOverflows TcpExtListenDrops TcpExtPAWSTimewait TcpExtPAWSEstab \
        TcpExtTW TcpExtTWRecycled TcpExtTWKilled TcpExtSyncookiesSent TcpExtSyncookiesRecv TcpExtSyncookiesFailed \
        TcpExtTCPChallengeACK | awk -v ns="$NS_SRV" '$1 ~ /^TcpExt/ {print ns, $1, $2}'
}

# The gateway's own counters into FILE: snatgw's stats (JSON, from its control socket) or the
# kernel's conntrack -S (text, per CPU) and conntrack -C.
cmp_gateway_counters() {
    local gw="$1" file="$2"
    if [ "$gw" = kernel ]; then
        { in_ns "$NS_GW" conntrack -S 2>/dev/null || true
          echo "entries=$(in_ns "$NS_GW" conntrack -C 2>/dev/null || echo 0)"; } > "$file.txt"
    elif [ -n "$CMP_SNATCTL" ]; then
        "$CMP_SNATCTL" --socket "$SNL_DIR/snatgw.sock" --timeout 5 --json stats > "$file.json" 2>"$file.err" \
            || { warn "snatctl stats failed: $(head -c 200 "$file.err")"; rm -f "$file.json"; }
        [ -s "$file.err" ] || rm -f "$file.err"
    fi
}

# One snapshot of everything counted, before or after a workload: PHASE-{before,after}.*
cmp_snapshot() {
    local gw="$1" dir="$2" tag="$3"
    cmp_tcp_counters "$CMP_HOSTS" > "$dir/$tag.tcp"
    cmp_gateway_counters "$gw" "$dir/$tag.gw"
    cat /proc/loadavg > "$dir/$tag.loadavg"
}

# The source addresses of inside host I for the storms: its own, then CMP_ADDRS - 1 more from
# 198.18.0.211-254 (inside the /24 both gateways translate, outside the hosts' .11-.210).
# Why: a host's 64,512 local ports stay 60 s in TIME_WAIT after each client-closed connect,
# which a 30 s storm at ~3,000 connects/s per host would exhaust (connect() failing with
# EADDRNOTAVAIL on the host, not on the gateway).
cmp_host_addresses() {
    local i="$1" j list="198.18.0.$((10 + $1))"
    for ((j = 1; j < CMP_ADDRS; j++)); do list="$list,198.18.0.$((210 + (j - 1) * CMP_HOSTS + i))"; done
    echo "$list"
}

# Add them, then one ping from each source address to the server, so that both gateways have
# resolved every inside address (ARP) before a storm starts from it: the storm then measures
# the NAT, not the first-packet neighbour resolution of 32 threads starting at once.
cmp_add_host_addresses() {
    local i a
    for ((i = 1; i <= CMP_HOSTS; i++)); do
        for a in $(cmp_host_addresses "$i" | tr ',' ' '); do
            [ "$a" = "198.18.0.$((10 + i))" ] || in_ns "snl-h$i" ip addr add "$a/24" dev eth0
            in_ns "snl-h$i" ping -c 1 -W 2 -I "$a" "$SERVER" >/dev/null 2>&1 \
                || warn "warm-up: no answer to a ping from $a (h$i) to $SERVER"
        done
    done
}

# A connect storm: race_server on PORT, race_client with CMP_THREADS threads on every host for
# CMP_SECONDS. CLOSE: client (the client closes at once, the server on its FIN), server (the
# server at once, the client on its FIN) or both (each at once: close on accept). Connect
# timeout: TIMEOUT s. Raw results: PHASE-h*.json, -server.json.
cmp_storm() {
    local gw="$1" dir="$2" phase="$3" port="$4" close="$5" timeout_s="${6:-3}"
    local srv_args=() cli_args=() i srv_pid pids=() what
    case "$close" in
        client) what="client closes first" ;;
        server) srv_args=(--close-first); cli_args=(--server-closes --close-wait 5); what="server closes first" ;;
        both) srv_args=(--close-first); what="both close at once (close on accept)" ;;
    esac
    ip netns exec "$NS_SRV" "$CMP_RACE_SERVER" --threads 2 --address "$SERVER" --port "$port" "${srv_args[@]}" \
        --json > "$dir/$phase-server.json" 2> "$dir/$phase-server.err" &
    srv_pid=$!
    CMP_PIDS+=("$srv_pid")
    sleep 0.5
    pid_alive "$srv_pid" || die "race_server on :$port did not start: $(cat "$dir/$phase-server.err")"
    cmp_snapshot "$gw" "$dir" "$phase-before"
    say "($phase) $gw: $CMP_HOSTS hosts x $CMP_THREADS threads ($CMP_ADDRS source address(es) each) -> $SERVER:$port for $CMP_SECONDS s, $what, connect timeout $timeout_s s, pool $(state_get pool)"
    for ((i = 1; i <= CMP_HOSTS; i++)); do
        # Hard bound: the duration, a connect timeout (3 s), the wait for the server's close.
        ip netns exec "snl-h$i" timeout -k 5 "$((CMP_SECONDS + 30))" "$CMP_RACE_CLIENT" \
            --target "$SERVER:$port" --threads "$CMP_THREADS" --duration "$CMP_SECONDS" \
            --bind-from "$(cmp_host_addresses "$i")" --connect-timeout "$timeout_s" "${cli_args[@]}" --interval 5 --json \
            > "$dir/$phase-h$i.json" 2> "$dir/$phase-h$i.progress" &
        pids+=($!)
        CMP_PIDS+=($!)
    done
    cmp_wait "${pids[@]}" || warn "($phase) a race_client exited with an error (see $dir/$phase-h*.progress)"
    CMP_PIDS=("$srv_pid")  # the clients are done
    # The server may still be accepting what is in its queue: wait until it has accepted as
    # many as the clients completed, or its count stops moving for 2 s (15 s at most).
    local completed acc last=-1 still=0 n
    completed=$(cat "$dir/$phase"-h*.json 2>/dev/null | /usr/bin/python3 -c \
        'import json, sys; print(sum(json.loads(l)["connects_ok"] for l in sys.stdin if l.strip()))' || echo 0)
    for ((n = 0; n < 30 && still < 4; n++)); do
        kill -USR1 "$srv_pid" 2>/dev/null || break
        sleep 0.5
        acc=$(awk '/accepted/ {n = $3} END {print n + 0}' "$dir/$phase-server.err")
        [ "$acc" -ge "$completed" ] && break
        if [ "$acc" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$acc
    done
    cmp_snapshot "$gw" "$dir" "$phase-after"
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    CMP_PIDS=()
    for ((i = 1; i <= CMP_HOSTS; i++)); do tail -n 1 "$dir/$phase-h$i.progress" | sed "s/^/    h$i /"; done
}

# (f) The silent SYN flood: race_server on :7005; h2 connects (2 threads, 100 ms apart, 3 s
# connect timeout) for 3 s, then during the flood, then CMP_FLOOD_AFTER s after it; h1 floods
# the same port with SYNs (hping3, new source port each, CMP_FLOOD_RATE/s asked, at most
# CMP_FLOOD_SECONDS) with its own RSTs dropped (iptables), so every flooded connection stays
# half open. Raw results: f-before.json, f-during.json, f-after.json (h2's race_client),
# f-server.json, f-hping3.out, f-flood.env (packets h1 sent, seconds), counter snapshots f-0..3
# (.tcp, .gw.*) between the phases and f-{before,after} around the whole.
cmp_flood() {
    local gw="$1" dir="$2" port=7005 srv_pid flood_pid during_pid tx0 tx1 t0 t1 interval_us count
    interval_us=$((1000000 / CMP_FLOOD_RATE))
    count=$((CMP_FLOOD_RATE * CMP_FLOOD_SECONDS))
    ip netns exec "$NS_SRV" "$CMP_RACE_SERVER" --threads 2 --address "$SERVER" --port "$port" --json \
        > "$dir/f-server.json" 2> "$dir/f-server.err" &
    srv_pid=$!
    CMP_PIDS+=("$srv_pid")
    in_ns snl-h1 iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP || die "(f) iptables in snl-h1 failed"
    sleep 0.5
    pid_alive "$srv_pid" || die "race_server on :$port did not start: $(cat "$dir/f-server.err")"
    cmp_flood_connects() {  # phase seconds
        ip netns exec snl-h2 timeout -k 5 "$(($2 + 20))" "$CMP_RACE_CLIENT" --target "$SERVER:$port" --threads 2 \
            --pause-ms 100 --duration "$2" --connect-timeout 3 --interval 0 --json > "$dir/f-$1.json" 2> "$dir/f-$1.progress"
    }
    cmp_snapshot "$gw" "$dir" f-before
    cp "$dir/f-before.tcp" "$dir/f-0.tcp"
    say "(f) $gw: h2 connects to $SERVER:$port for 3 s, then h1 floods it with SYNs (hping3, 1 every $interval_us us, at most $count, $CMP_FLOOD_SECONDS s) while h2 connects, then h2 for $CMP_FLOOD_AFTER_SECONDS s more; pool $(state_get pool)"
    cmp_flood_connects before 3
    cmp_snapshot "$gw" "$dir" f-1
    tx0=$(in_ns snl-h1 cat /sys/class/net/eth0/statistics/tx_packets)
    t0=$(date +%s.%N)
    ip netns exec snl-h1 timeout -s INT -k 3 "$CMP_FLOOD_SECONDS" hping3 -q -S -p "$port" -i "u$interval_us" -c "$count" "$SERVER" \
        > "$dir/f-hping3.out" 2>&1 &
    flood_pid=$!
    CMP_PIDS+=("$flood_pid")
    cmp_flood_connects during "$CMP_FLOOD_SECONDS" &
    during_pid=$!
    CMP_PIDS+=("$during_pid")
    wait "$flood_pid" || true
    t1=$(date +%s.%N)
    tx1=$(in_ns snl-h1 cat /sys/class/net/eth0/statistics/tx_packets)
    wait "$during_pid" || warn "(f) h2's race_client during the flood exited with an error"
    {
        echo "sent=$((tx1 - tx0))"
        echo "seconds=$(echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}')"
        echo "rate_asked=$CMP_FLOOD_RATE"
        if [ "$gw" = kernel ]; then
            echo "h1_sessions=$(in_ns "$NS_GW" conntrack -L -s 198.18.0.11 2>/dev/null | wc -l)"
        elif [ -n "$CMP_SNATCTL" ]; then
            echo "h1_sessions=$("$CMP_SNATCTL" --socket "$SNL_DIR/snatgw.sock" --timeout 10 --json sessions --inside 198.18.0.11 --count 2>/dev/null \
                | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])' 2>/dev/null)"
        fi
    } > "$dir/f-flood.env"
    cmp_snapshot "$gw" "$dir" f-2
    say "(f) $gw: h1 sent $(sed -n 's/^sent=//p' "$dir/f-flood.env") packets in $(sed -n 's/^seconds=//p' "$dir/f-flood.env") s; h1 holds $(sed -n 's/^h1_sessions=//p' "$dir/f-flood.env") sessions at the gateway"
    cmp_flood_connects after "$CMP_FLOOD_AFTER_SECONDS"
    cmp_snapshot "$gw" "$dir" f-3
    cp "$dir/f-3.tcp" "$dir/f-after.tcp"
    [ "$gw" = kernel ] && cp "$dir/f-3.gw.txt" "$dir/f-after.gw.txt" 2>/dev/null
    [ "$gw" = snatgw ] && cp "$dir/f-3.gw.json" "$dir/f-after.gw.json" 2>/dev/null
    in_ns snl-h1 iptables -D OUTPUT -p tcp --tcp-flags RST RST -j DROP 2>/dev/null || true
    kill -TERM "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    CMP_PIDS=()
    local ph
    for ph in before during after; do tail -n 1 "$dir/f-$ph.progress" | sed "s/^/    h2 ($ph) /"; done
}

# UDP request/response from every host to the echo service, CMP_UDP_SECONDS.
cmp_udp() {
    local gw="$1" dir="$2" i pids=()
    cmp_snapshot "$gw" "$dir" c-before
    say "(c) $gw: UDP request/response, $CMP_HOSTS hosts x $CMP_UDP_SOCKETS sockets -> $SERVER:7007 for $CMP_UDP_SECONDS s"
    for ((i = 1; i <= CMP_HOSTS; i++)); do
        ip netns exec "snl-h$i" timeout -k 5 "$((CMP_UDP_SECONDS + 20))" /usr/bin/python3 "$LAB_D/udp_rr.py" \
            --target "$SERVER:7007" --sockets "$CMP_UDP_SOCKETS" --seconds "$CMP_UDP_SECONDS" --timeout 1 \
            > "$dir/c-h$i.json" 2> "$dir/c-h$i.err" &
        pids+=($!)
        CMP_PIDS+=($!)
    done
    cmp_wait "${pids[@]}" || warn "(c) a UDP client exited with an error (see $dir/c-h*.err)"
    CMP_PIDS=()
    cmp_snapshot "$gw" "$dir" c-after
}

# iperf3 from h1 to the server: upload, then download (-R), CMP_IPERF_SECONDS each.
cmp_iperf() {
    local gw="$1" dir="$2" dirn flag
    cmp_snapshot "$gw" "$dir" d-before
    for dirn in up down; do
        flag=()
        [ "$dirn" = down ] && flag=(-R)
        say "(d) $gw: iperf3 h1 -> $SERVER:5201 ${flag[*]:-(upload)} for $CMP_IPERF_SECONDS s"
        # The lab's iperf3 server takes one test at a time; a retry covers a server still busy.
        local try
        for try in 1 2 3; do
            if ip netns exec snl-h1 timeout -k 5 "$((CMP_IPERF_SECONDS + 30))" iperf3 -c "$SERVER" \
                    -t "$CMP_IPERF_SECONDS" --connect-timeout 3000 "${flag[@]}" -J > "$dir/d-$dirn.json" 2> "$dir/d-$dirn.err"; then
                break
            fi
            warn "(d) iperf3 $dirn failed (try $try): $(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' "$dir/d-$dirn.json" 2>/dev/null)"
            sleep 2
        done
    done
    cmp_snapshot "$gw" "$dir" d-after
}

# A fresh lab for one gateway; TAG names its log files (up-TAG.log); EXTRA: more `up` options
# of this workload (--pool-addresses ...), given before the user's own.
cmp_lab_up() {
    local gw="$1" dir="$2" tag="$3" extra="${4:-}" args
    args="$CMP_SNATGW_ARGS"
    [ "$gw" = kernel ] && args="$CMP_KERNEL_ARGS"
    args=$(echo "$extra $args" | xargs)  # trimmed
    say "compare: tools/lab up --gateway $gw --hosts $CMP_HOSTS${args:+ $args} (for $tag)"
    CMP_LAB_UP=1  # from here on, cleanup takes down whatever `up` built (also a half-built lab)
    # shellcheck disable=SC2086
    if ! "$SNATGW_ROOT/tools/lab" up --gateway "$gw" --hosts "$CMP_HOSTS" $args > "$dir/up-$tag.log" 2>&1; then
        tail -n 20 "$dir/up-$tag.log" >&2
        die "tools/lab up --gateway $gw failed (see $dir/up-$tag.log)"
    fi
    grep -E 'starting snatgw|ready|kernel gateway|lab up' "$dir/up-$tag.log" | sed 's/^/    /' || true
    {
        echo "gateway=$gw"
        echo "up_args=--gateway $gw --hosts $CMP_HOSTS${args:+ $args}"
        echo "vdev=$(state_get vdev)"
        echo "workers=$(state_get workers)"
        echo "policy=$(state_get policy)"
        echo "pool=$(state_get pool)"
    } > "$dir/lab.env"
    cp "$dir/lab.env" "$dir/lab-$tag.env"
    if [ "$gw" = kernel ]; then
        in_ns "$NS_GW" sysctl -n net.netfilter.nf_conntrack_max > "$dir/conntrack_max" 2>/dev/null || true
        in_ns "$NS_GW" iptables -t nat -S POSTROUTING > "$dir/iptables.txt" 2>/dev/null || true
    fi
}

cmp_lab_down() {
    local dir="$1" tag="$2"
    "$SNATGW_ROOT/tools/lab" counters > "$dir/counters-$tag.txt" 2>&1 || true
    "$SNATGW_ROOT/tools/lab" down > "$dir/down-$tag.log" 2>&1 || warn "tools/lab down: see $dir/down-$tag.log"
    CMP_LAB_UP=0
}

# One gateway. Each storm gets a lab of its own, and UDP and iperf3 a third: what a workload
# leaves behind (TIME_WAIT on the hosts and the server, the gateway's sessions, conntrack
# entries, public ports held) must not weigh on the next one.
cmp_gateway_run() {
    local gw="$1" dir="$CMP_OUT/$1"
    mkdir -p "$dir"
    cat /proc/loadavg > "$dir/start.loadavg"
    local w
    for w in $CMP_WORKLOADS; do
        case "$w" in
            a) cmp_lab_up "$gw" "$dir" a
               cmp_add_host_addresses
               cmp_storm "$gw" "$dir" a 7001 client 3
               cmp_lab_down "$dir" a ;;
            b) cmp_lab_up "$gw" "$dir" b
               cmp_add_host_addresses
               cmp_storm "$gw" "$dir" b 7002 server 3
               cmp_lab_down "$dir" b ;;
            e) cmp_lab_up "$gw" "$dir" e "--pool-addresses 198.19.0.10"
               cmp_add_host_addresses
               cmp_storm "$gw" "$dir" e 7003 both 0.5
               cmp_lab_down "$dir" e ;;
            f) cmp_lab_up "$gw" "$dir" f "--pool-addresses 198.19.0.10"
               cmp_flood "$gw" "$dir"
               cmp_lab_down "$dir" f ;;
            c) ;;  # with d, on one lab
            d) cmp_lab_up "$gw" "$dir" cd
               cmp_udp "$gw" "$dir"
               sleep 1
               cmp_iperf "$gw" "$dir"
               cmp_lab_down "$dir" cd ;;
        esac
    done
    find "$dir" -maxdepth 1 -type f -empty -delete  # stderr files with nothing in them
    cat /proc/loadavg > "$dir/end.loadavg"
    say "compare: $gw done"
}

# What the report needs and a Debian system may lack: conntrack, iptables and hping3 (the
# flood), matplotlib (for the PNG).
cmp_require() {
    local missing=()
    command -v conntrack >/dev/null || missing+=(conntrack)
    command -v iptables >/dev/null || missing+=(iptables)
    command -v hping3 >/dev/null || missing+=(hping3)
    /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || missing+=(python3-matplotlib)
    if [ ${#missing[@]} -gt 0 ]; then
        say "compare: installing ${missing[*]} (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null \
            || warn "apt-get install ${missing[*]} failed: the report may lack them"
    fi
}

cmd_compare() {
    CMP_SECONDS=30 CMP_HOSTS=4 CMP_THREADS=32 CMP_UDP_SECONDS="" CMP_UDP_SOCKETS=16
    CMP_IPERF_SECONDS="" CMP_OUT="" CMP_SNATGW_ARGS="" CMP_KERNEL_ARGS="" CMP_ADDRS=""
    CMP_FLOOD_SECONDS=15 CMP_FLOOD_RATE=15000 CMP_FLOOD_AFTER_SECONDS=20 CMP_WORKLOADS="a b e f c d"
    local only="" report_only="" gateways=(snatgw kernel) cmdline
    cmdline=$(echo "tools/lab compare $*" | sed 's/ *$//')
    while [ $# -gt 0 ]; do
        case "$1" in
            --seconds) CMP_SECONDS="$2"; shift ;;
            --hosts) CMP_HOSTS="$2"; shift ;;
            --threads) CMP_THREADS="$2"; shift ;;
            --addresses-per-host) CMP_ADDRS="$2"; shift ;;
            --udp-seconds) CMP_UDP_SECONDS="$2"; shift ;;
            --udp-sockets) CMP_UDP_SOCKETS="$2"; shift ;;
            --iperf-seconds) CMP_IPERF_SECONDS="$2"; shift ;;
            --flood-seconds) CMP_FLOOD_SECONDS="$2"; shift ;;
            --flood-rate) CMP_FLOOD_RATE="$2"; shift ;;
            --flood-after) CMP_FLOOD_AFTER_SECONDS="$2"; shift ;;
            --workloads) CMP_WORKLOADS="$2"; shift ;;
            --out) CMP_OUT="$2"; shift ;;
            --only) only="$2"; shift ;;
            --snatgw-args) CMP_SNATGW_ARGS="$2"; shift ;;
            --kernel-args) CMP_KERNEL_ARGS="$2"; shift ;;
            --report-only) report_only="$2"; shift ;;
            -h | --help) compare_usage; return 0 ;;
            *) compare_usage >&2; die "unknown option for compare: $1" ;;
        esac
        shift
    done
    if [ -n "$report_only" ]; then
        [ -d "$report_only" ] || die "--report-only: no directory $report_only"
        /usr/bin/python3 "$LAB_D/compare_report.py" "$report_only"
        return
    fi
    local n
    for n in "$CMP_SECONDS" "$CMP_HOSTS" "$CMP_THREADS" "$CMP_UDP_SOCKETS" ${CMP_UDP_SECONDS:+"$CMP_UDP_SECONDS"} ${CMP_ADDRS:+"$CMP_ADDRS"} \
             "$CMP_FLOOD_SECONDS" "$CMP_FLOOD_RATE" "$CMP_FLOOD_AFTER_SECONDS" \
             ${CMP_IPERF_SECONDS:+"$CMP_IPERF_SECONDS"}; do
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "compare: counts and durations are whole numbers >= 1 (got '$n')"
    done
    # Every load is bounded: at most 10 minutes a storm, 200 hosts, 256 threads a host.
    [ "$CMP_SECONDS" -le 600 ] || die "--seconds: at most 600"
    [ "$CMP_HOSTS" -le 200 ] || die "--hosts: at most 200"
    [ "$CMP_THREADS" -le 256 ] || die "--threads: at most 256"
    [ "$CMP_UDP_SOCKETS" -le 1024 ] || die "--udp-sockets: at most 1024"
    [ "$CMP_FLOOD_SECONDS" -le 60 ] && [ "$CMP_FLOOD_AFTER_SECONDS" -le 120 ] || die "--flood-seconds: at most 60; --flood-after: at most 120"
    [ "$CMP_FLOOD_RATE" -le 50000 ] || die "--flood-rate: at most 50000"
    local w
    for w in $CMP_WORKLOADS; do [[ "$w" =~ ^[abcdef]$ ]] || die "--workloads: letters among a b c d e f (got '$w')"; done
    [ -n "$(echo "$CMP_WORKLOADS" | xargs)" ] || die "--workloads: at least one"
    if [[ " $CMP_WORKLOADS " == *" f "* ]] && [ "$CMP_HOSTS" -lt 2 ]; then die "--workloads f needs --hosts 2 or more (h1 floods, h2 connects)"; fi
    # One source address per host for every 15 s of storm (up to the 60 s of TIME_WAIT).
    [ -n "$CMP_ADDRS" ] || CMP_ADDRS=$(( ((CMP_SECONDS < 60 ? CMP_SECONDS : 60) + 14) / 15 ))
    [ $(( (CMP_ADDRS - 1) * CMP_HOSTS )) -le 44 ] \
        || die "--addresses-per-host: (N - 1) x hosts must be at most 44 (198.18.0.211-254); use fewer hosts or addresses"
    [ -n "$CMP_UDP_SECONDS" ] || CMP_UDP_SECONDS=$((CMP_SECONDS < 10 ? CMP_SECONDS : 10))
    [ -n "$CMP_IPERF_SECONDS" ] || CMP_IPERF_SECONDS=$((CMP_SECONDS < 10 ? CMP_SECONDS : 10))
    [ "$CMP_UDP_SECONDS" -le 600 ] && [ "$CMP_IPERF_SECONDS" -le 600 ] || die "--udp-seconds, --iperf-seconds: at most 600"
    case "$only" in
        "") ;;
        snatgw | kernel) gateways=("$only") ;;
        *) die "--only snatgw|kernel" ;;
    esac
    require_root
    if lab_is_up || [ -n "$(existing_namespaces)" ]; then
        die "the lab is up (or half up): compare brings up its own; tools/lab down first"
    fi
    CMP_RACE_CLIENT=$(race_bin race_client) || die "race_client is not built (ninja -C $SNL_BUILD)"
    CMP_RACE_SERVER=$(race_bin race_server) || die "race_server is not built (ninja -C $SNL_BUILD)"
    CMP_SNATCTL=$(find_bin snatctl "${SNATCTL:-}" "$SNL_BUILD/tools/snatctl/snatctl") \
        || { CMP_SNATCTL=""; warn "snatctl is not built: snatgw's counters come only from 'tools/lab counters'"; }
    command -v iperf3 >/dev/null || die "iperf3 is missing (apt-get install iperf3)"
    cmp_require
    export SNL_DIR SNL_BUILD
    [ -n "$CMP_OUT" ] || CMP_OUT="$SNL_DIR/compare-$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$CMP_OUT"
    CMP_OUT=$(realpath "$CMP_OUT")

    trap 'cmp_cleanup' EXIT
    trap 'warn "compare: interrupted"; cmp_cleanup; exit 130' INT TERM
    {
        echo "command=$cmdline"
        echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "seconds=$CMP_SECONDS"
        echo "hosts=$CMP_HOSTS"
        echo "threads=$CMP_THREADS"
        echo "addresses_per_host=$CMP_ADDRS"
        echo "udp_seconds=$CMP_UDP_SECONDS"
        echo "udp_sockets=$CMP_UDP_SOCKETS"
        echo "iperf_seconds=$CMP_IPERF_SECONDS"
        echo "flood_seconds=$CMP_FLOOD_SECONDS"
        echo "flood_rate=$CMP_FLOOD_RATE"
        echo "flood_after_seconds=$CMP_FLOOD_AFTER_SECONDS"
        echo "workloads=$CMP_WORKLOADS"
        echo "gateways=${gateways[*]}"
        echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
        echo "cpus=$(nproc)"
        echo "kernel=$(uname -r)"
        echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
        echo "snatgw_bin=$(snatgw_bin || true)"
        echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    } > "$CMP_OUT/meta.env"
    say "compare: results in $CMP_OUT"
    local gw
    for gw in "${gateways[@]}"; do
        cmp_gateway_run "$gw"
    done
    echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$CMP_OUT/meta.env"
    trap - INT TERM
    /usr/bin/python3 "$LAB_D/compare_report.py" "$CMP_OUT"
}
