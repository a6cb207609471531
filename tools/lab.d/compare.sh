# shellcheck shell=bash
# Part of tools/lab (sourced by it when the command is `compare`, not run): snatgw against the
# Linux kernel's SNAT, side by side, in one invocation (issue 5). For each gateway in turn
# (snatgw first, then kernel) it runs four bounded workloads from the inside hosts, each storm
# on a fresh lab and UDP + iperf3 on a third (`tools/lab up`, ..., `tools/lab down`), and
# records the raw results and the gateway's counters:
#   (a) connect storm, client closes first: race_client on every host -> race_server :7001
#   (b) connect storm, server closes first: race_client --server-closes -> race_server
#       --close-first :7002 (reused public ports meet the server's TIME_WAIT)
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
storm on a fresh lab, UDP and iperf3 on a third, and writes a side-by-side report (text, JSON,
PNG) with the ratio snatgw/kernel.
The lab must be down; it is down again at the end. On a shared machine run it under the lab
lock: flock /tmp/snl-lab.lock tools/lab compare

options:
  --seconds S         duration of each connect storm, (a) and (b) (default 30)
  --hosts N           inside hosts (default 4)
  --threads N         race_client threads per host (default 32)
  --addresses-per-host N  source addresses each host's storm threads use round-robin, its own
                      and N-1 from 198.18.0.211-254, so its local ports (60 s in TIME_WAIT
                      after a client close) last the storm (default: one per 15 s of
                      storm, up to 4: 2 for 30 s)
  --udp-seconds S     duration of the UDP request/response load (default: min(10, --seconds))
  --udp-sockets N     UDP sockets per host, one request out each (default 16)
  --iperf-seconds S   duration of each iperf3 run (default: min(10, --seconds))
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
# a server too slow to accept (server: TcpExtListenOverflows), one "ns counter value" a line.
cmp_tcp_counters() {
    local hosts="$1" i
    for ((i = 1; i <= hosts; i++)); do
        in_ns "snl-h$i" nstat -asz TcpExtTCPSynRetrans | awk -v ns="snl-h$i" '$1 ~ /^TcpExt/ {print ns, $1, $2}'
    done
    in_ns "$NS_SRV" nstat -asz TcpExtListenOverflows TcpExtListenDrops | awk -v ns="$NS_SRV" '$1 ~ /^TcpExt/ {print ns, $1, $2}'
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

# A connect storm: race_server on PORT (--close-first if server_closes), race_client with
# CMP_THREADS threads on every host for CMP_SECONDS. Raw results: PHASE-h*.json, -server.json.
cmp_storm() {
    local gw="$1" dir="$2" phase="$3" port="$4" server_closes="$5"
    local srv_args=() cli_args=() i srv_pid pids=()
    [ "$server_closes" = 1 ] && { srv_args=(--close-first); cli_args=(--server-closes --close-wait 5); }
    ip netns exec "$NS_SRV" "$CMP_RACE_SERVER" --threads 2 --address "$SERVER" --port "$port" "${srv_args[@]}" \
        --json > "$dir/$phase-server.json" 2> "$dir/$phase-server.err" &
    srv_pid=$!
    CMP_PIDS+=("$srv_pid")
    sleep 0.5
    pid_alive "$srv_pid" || die "race_server on :$port did not start: $(cat "$dir/$phase-server.err")"
    cmp_snapshot "$gw" "$dir" "$phase-before"
    say "($phase) $gw: $CMP_HOSTS hosts x $CMP_THREADS threads ($CMP_ADDRS source address(es) each) -> $SERVER:$port for $CMP_SECONDS s, $([ "$server_closes" = 1 ] && echo 'server closes first' || echo 'client closes first')"
    for ((i = 1; i <= CMP_HOSTS; i++)); do
        # Hard bound: the duration, a connect timeout (3 s), the wait for the server's close.
        ip netns exec "snl-h$i" timeout -k 5 "$((CMP_SECONDS + 30))" "$CMP_RACE_CLIENT" \
            --target "$SERVER:$port" --threads "$CMP_THREADS" --duration "$CMP_SECONDS" \
            --bind-from "$(cmp_host_addresses "$i")" --connect-timeout 3 "${cli_args[@]}" --interval 5 --json \
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

# A fresh lab for one gateway; TAG names its log files (up-TAG.log).
cmp_lab_up() {
    local gw="$1" dir="$2" tag="$3" args
    args="$CMP_SNATGW_ARGS"
    [ "$gw" = kernel ] && args="$CMP_KERNEL_ARGS"
    args=$(echo "$args" | xargs)  # trimmed
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
    cmp_lab_up "$gw" "$dir" a
    cmp_add_host_addresses
    cmp_storm "$gw" "$dir" a 7001 0
    cmp_lab_down "$dir" a
    cmp_lab_up "$gw" "$dir" b
    cmp_add_host_addresses
    cmp_storm "$gw" "$dir" b 7002 1
    cmp_lab_down "$dir" b
    cmp_lab_up "$gw" "$dir" cd
    cmp_udp "$gw" "$dir"
    sleep 1
    cmp_iperf "$gw" "$dir"
    cmp_lab_down "$dir" cd
    find "$dir" -maxdepth 1 -type f -empty -delete  # stderr files with nothing in them
    cat /proc/loadavg > "$dir/end.loadavg"
    say "compare: $gw done"
}

# What the report needs and a Debian system may lack: conntrack, matplotlib (for the PNG).
cmp_require() {
    local missing=()
    command -v conntrack >/dev/null || missing+=(conntrack)
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
             ${CMP_IPERF_SECONDS:+"$CMP_IPERF_SECONDS"}; do
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || die "compare: counts and durations are whole numbers >= 1 (got '$n')"
    done
    # Every load is bounded: at most 10 minutes a storm, 200 hosts, 256 threads a host.
    [ "$CMP_SECONDS" -le 600 ] || die "--seconds: at most 600"
    [ "$CMP_HOSTS" -le 200 ] || die "--hosts: at most 200"
    [ "$CMP_THREADS" -le 256 ] || die "--threads: at most 256"
    [ "$CMP_UDP_SOCKETS" -le 1024 ] || die "--udp-sockets: at most 1024"
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
