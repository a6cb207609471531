# shellcheck shell=bash disable=SC2034
# Part of tools/lab (sourced by it, not run): `tools/lab natperf up|run|down|status`, the
# natperf tester (tools/natperf, RFC 9693) in front of one gateway, so the same natperf run
# measures snatgw and the Linux kernel (issue 7, item 3).
#
#   --link af_xdp (snatgw or kernel)              --link memif (snatgw only)
#
#   snl-np                   snl-gw               snl-np             snl-gw
#   natperf                  snatgw | kernel      natperf            snatgw
#   Initiator  np-in ==veth== snatgw-in            Initiator  client ~~memif~~ server  inside
#    198.18.0.100            198.18.0.1/24         198.18.0.100       ($SNL_DIR/natperf/gw-in.sock)
#   Responder  np-out ==veth== snatgw-out          Responder  client ~~memif~~ server  outside
#    198.19.0.2              198.19.0.1/24         198.19.0.2         ($SNL_DIR/natperf/gw-out.sock)
#                            pool 198.19.0.10-11
#
# natperf drives its veth ends with net_af_xdp (they carry no kernel address); the gateway side
# is the lab's own: snatgw_try (net_af_xdp on snatgw-in/out, or memif servers) or kernel_gateway (ip_forward,
# iptables SNAT to the pool) from gateway.sh, with the lab's addresses and pool.
#
# memif and --in-memory: DPDK 22.11's net_memif registers a multi-process action at probe
# (rte_mp_action_register), which --in-memory refuses ("Failed to register mp action callback:
# Operation not supported"). So both memif processes (snatgw and natperf) run with their own
# --file-prefix instead, and on 4 KiB pages (--no-huge -m ...): DPDK wants a mounted hugetlbfs
# for hugepages outside --in-memory, and this lab mounts nothing. memif copies frames into
# its own shared rings (not zero-copy), so the mbuf memory's page size does not matter. The
# runtime directories those prefixes leave in /var/run/dpdk are removed by `down`.
#
# Uses the lab's globals and functions (SNL_DIR, SNL_BUILD, NS_GW, GW_IN, GW_OUT, SERVER, say,
# warn, die, in_ns, ns_create, no_offloads, state_get/state_set, lab_is_up, existing_namespaces,
# pid_alive, stop_pidfile, cmd_down, default_lcores, hugepages_setup, snatgw_bin, snatgw_try,
# kernel_gateway).

NS_NP=snl-np
NP_DIR="$SNL_DIR/natperf"
NP_INITIATOR_IP=198.18.0.100
# The DPDK file prefixes of the memif processes (their /var/run/dpdk/PREFIX is ours to remove).
NP_PREFIX=snl-np
NP_GW_PREFIX=snl-np-gw

np_usage() {
    cat <<EOF
usage: tools/lab natperf up|run|down|status [options]

  up --gateway snatgw|kernel --link memif|af_xdp [options]
      Build the natperf lab: the gateway in snl-gw and natperf's ports in snl-np (af_xdp:
      two veth pairs; memif: snatgw's two ports are memif servers, natperf connects as client).
      kernel + memif is not possible (the kernel has no memif).
      --pool-addresses LIST     pool (default 198.19.0.10-198.19.0.11)
      --pool-ports A-B          pool port range (default 1024-65535; kernel: SNAT's own choice)
      --policy P                liberal|strict|retrans-ok (as for tools/lab up)
      --workers N               snatgw worker lcores: 1 only (natperf reads one queue per port)
      --idle-sleep-us US        snatgw dataplane.idle_sleep_us (default: memif 0, the worker
                                has a CPU of its own; af_xdp the lab's 50, the kernel's
                                softirq work for the veths shares the worker's CPU)
      --lcores LIST             snatgw EAL --lcores (default: main 0, workers 1..N)
      --config-extra KEY=VALUE  extra snatgw override (repeatable)
      --eal "ARGS"              extra snatgw EAL arguments
      --vdev-args ARGS          extra net_af_xdp arguments for snatgw's veth ends
      --kernel-rps yes|no       kernel: forward on the last CPU (RPS on snatgw-in/out), as
                                snatgw's worker has CPU 1 (default yes); no: the forwarding
                                runs in natperf's send call, on natperf's CPU
  run [natperf options] [-- extra EAL args]
      Run natperf (in snl-np) against the gateway that is up. The lab supplies the ports,
      addresses, gateways, EAL arguments and a --flush-command for the gateway (snatgw:
      snatctl sessions flush --all; kernel: conntrack -F in snl-gw); an option given here
      replaces the lab's. natperf's output is printed, its exit code returned.
      Environment: SNL_NP_LCORES (natperf's EAL -l list, default: a CPU the snatgw worker
      does not use if there is one), NATPERF_BIN.
  down
      Stop natperf and the gateway, delete the namespaces, remove the memif sockets
      (tools/lab down does the same).
  status
      What is up.

Under a shared machine's lab lock: flock /tmp/snl-lab.lock tools/lab natperf ...
EOF
}

natperf_bin() {
    local p
    for p in "${NATPERF_BIN:-}" "$SNL_BUILD/tools/natperf/natperf" "$SNL_BUILD/tools/natperf"; do
        if [ -n "$p" ] && [ -f "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    return 1
}

snatctl_bin() {
    local p
    for p in "${SNATCTL_BIN:-}" "$SNL_BUILD/tools/snatctl/snatctl" "$SNL_BUILD/tools/snatctl"; do
        if [ -n "$p" ] && [ -f "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    command -v snatctl
}

# Path sockets (not abstract ones, which belong to one network namespace: snatgw is in snl-gw,
# natperf in snl-np), one socket per link.
NP_MEMIF_ARGS="id=0,socket-abstract=no"

# The memif device string of one of snatgw's ports (a server; natperf is the client).
np_memif_server() {  # index socket
    echo "net_memif$1,role=server,socket=$2,$NP_MEMIF_ARGS"
}

# Two veth pairs, natperf's ends in snl-np, the gateway's in snl-gw (named as in the main lab,
# so snatgw_try and kernel_gateway work on them unchanged). One queue per snatgw worker on
# every end: a frame sent on queue k of one end arrives on queue k of the other.
np_veths() {
    local queues="$1" pair np gw
    for pair in np-in:snatgw-in np-out:snatgw-out; do
        np=${pair%%:*}
        gw=${pair#*:}
        ip -n "$NS_NP" link add name "$np" numtxqueues "$queues" numrxqueues "$queues" type veth \
            peer name "$gw" netns "$NS_GW" numtxqueues "$queues" numrxqueues "$queues"
        no_offloads "$NS_NP" "$np"
        no_offloads "$NS_GW" "$gw"
        in_ns "$NS_NP" ip link set "$np" up
        in_ns "$NS_GW" ip link set "$gw" up
    done
}

# The kernel gateway's forwarding on a CPU of its own, as snatgw's worker has (lcore 1):
# without it, a frame natperf sends on a veth is forwarded in natperf's own send call, on
# natperf's CPU (veth_xmit -> netif_rx -> softirq on the same CPU). RPS on the gateway's ends
# moves that work to the last CPU. Nothing to do on a one-CPU machine.
np_kernel_cpu() {
    local ncpu mask dev
    ncpu=$(nproc)
    [ "$ncpu" -ge 2 ] || return 0
    mask=$(printf '%x' $((1 << (ncpu - 1))))
    for dev in snatgw-in snatgw-out; do
        in_ns "$NS_GW" sh -c "echo $mask > /sys/class/net/$dev/queues/rx-0/rps_cpus"
    done
    say "kernel gateway: forwarding on CPU $((ncpu - 1)) (RPS mask $mask on snatgw-in/out)"
}

np_up() {
    local gateway="" link="" workers=1 kernel_rps=yes
    POOL_ADDRESSES=198.19.0.10-198.19.0.11 POOL_PORTS="" POLICY="" STEERING=auto
    # Idle sleeping (dataplane.idle_sleep_us): off over memif, where snatgw's worker has CPU 1
    # to itself and a sleeping worker adds its sleep to every frame's latency (measured: 66 us
    # typical at 10000 frames/s with the lab's 50 us, 2.5 us with 0). Over af_xdp the lab's
    # 50: the kernel's veth and AF_XDP work for snatgw's frames runs in softirq on the worker's
    # CPU, and a worker that never sleeps starves it (measured with 0: 1.5 ms typical latency,
    # a third of the throughput).
    IDLE_SLEEP_US="" LCORES="" CFG_FILE="" EAL_EXTRA="" OVERRIDES=() VDEV_ARGS=""
    local all="$*"
    while [ $# -gt 0 ]; do
        case "$1" in
            --gateway) gateway="$2"; shift ;;
            --link) link="$2"; shift ;;
            --workers) workers="$2"; shift ;;
            --pool-addresses) POOL_ADDRESSES="$2"; shift ;;
            --pool-ports) POOL_PORTS="$2"; shift ;;
            --policy) POLICY="$2"; shift ;;
            --idle-sleep-us) IDLE_SLEEP_US="$2"; shift ;;
            --lcores) LCORES="$2"; shift ;;
            --config-extra)
                [[ "$2" == *=* ]] || die "--config-extra wants KEY=VALUE, got '$2'"
                OVERRIDES+=("--${2%%=*}" "${2#*=}"); shift ;;
            --eal) EAL_EXTRA="$2"; shift ;;
            --vdev-args) VDEV_ARGS="$2"; shift ;;
            --kernel-rps) kernel_rps="$2"; shift ;;
            -h | --help) np_usage; exit 0 ;;
            *) die "unknown option for natperf up: $1 (tools/lab natperf help)" ;;
        esac
        shift
    done
    [[ "$gateway" =~ ^(snatgw|kernel)$ ]] || die "natperf up: --gateway snatgw|kernel is required"
    [[ "$link" =~ ^(memif|af_xdp)$ ]] || die "natperf up: --link memif|af_xdp is required"
    [[ "$kernel_rps" =~ ^(yes|no)$ ]] || die "--kernel-rps must be yes or no"
    if [ -z "$IDLE_SLEEP_US" ]; then
        IDLE_SLEEP_US=50
        [ "$link" = memif ] && [ "$(nproc)" -ge 2 ] && IDLE_SLEEP_US=0
    fi
    [ "$gateway:$link" != kernel:memif ] \
        || die "natperf up: the kernel gateway has no memif port (memif is a DPDK shared-memory link): use --link af_xdp"
    [[ "$workers" =~ ^[0-9]+$ ]] && [ "$workers" -ge 1 ] && [ "$workers" -le 64 ] || die "--workers must be 1..64"
    [ -z "$POLICY" ] || [[ "$POLICY" =~ ^(liberal|strict|retrans-ok)$ ]] || die "--policy must be liberal, strict or retrans-ok"
    [[ "$POOL_ADDRESSES" =~ ^198\.1[89]\.[0-9]+\.[0-9]+(-198\.1[89]\.[0-9]+\.[0-9]+)?$ ]] \
        || die "--pool-addresses: one address or a range A-B inside 198.18.0.0/15"
    [ -z "$POOL_PORTS" ] || [[ "$POOL_PORTS" =~ ^[0-9]+-[0-9]+$ ]] || die "--pool-ports must be A-B"
    [ "$gateway" = kernel ] && [ "$workers" != 1 ] && die "--workers is for snatgw"
    # natperf drives one RX/TX queue per port, and snatgw's worker k sends on queue k: frames
    # from workers >= 1 would land on memif rings or veth queues natperf does not read. (And
    # net_af_xdp sees a veth as one combined channel: snatgw cannot have 2 queues on it.)
    [ "$workers" = 1 ] || die "--workers $workers: natperf uses one queue per port, so snatgw must have one worker (queue) here"
    require_root
    if lab_is_up; then die "the lab is already up ($(state_get mode)): tools/lab down first"; fi
    [ -z "$(existing_namespaces)" ] || die "namespaces $(existing_namespaces | tr '\n' ' ')exist: run tools/lab down first"
    [ "$gateway" = kernel ] && { command -v iptables >/dev/null || die "iptables is missing"; }
    [ "$gateway" = kernel ] && { command -v conntrack >/dev/null || die "conntrack is missing (apt-get install conntrack)"; }

    mkdir -p "$SNL_DIR" "$NP_DIR"
    rm -rf "$SNL_DIR/state"
    rm -f "$NP_DIR"/*.sock
    state_set mode starting
    state_set natperf "$link"
    state_set args "natperf $all"
    trap 'rc=$?; if [ $rc -ne 0 ]; then warn "natperf up failed: tearing down"; cmd_down >/dev/null 2>&1 || true; fi' EXIT
    say "natperf lab: $gateway gateway in $NS_GW, natperf's ports in $NS_NP over $link"
    ns_create "$NS_GW"
    ns_create "$NS_NP"
    if [ "$link" = af_xdp ]; then
        local queues=1
        [ "$gateway" = snatgw ] && queues="$workers"
        np_veths "$queues"
    fi
    if [ "$gateway" = kernel ]; then
        kernel_gateway "$POOL_ADDRESSES" "$POOL_PORTS" "$POLICY" 0 0
        [ "$kernel_rps" = yes ] && np_kernel_cpu
        state_set vdev none
    elif [ "$link" = af_xdp ]; then
        snatgw_try af_xdp "$workers" || die "snatgw did not start on net_af_xdp"
        state_set vdev af_xdp
    else
        snatgw_try memif "$workers" || die "snatgw did not start on net_memif"
        state_set vdev memif
    fi
    state_set workers "$workers"
    state_set hosts 0
    state_set pool "$POOL_ADDRESSES"
    if [ "$gateway" = kernel ]; then
        state_set policy "${POLICY:-kernel default} (nf_conntrack_tcp_be_liberal=$(in_ns "$NS_GW" sysctl -n net.netfilter.nf_conntrack_tcp_be_liberal))"
    else
        state_set policy "${POLICY:-liberal}"
    fi
    state_set mode "$gateway"
    trap - EXIT
    say "natperf lab up: $gateway over $link (tools/lab natperf run [natperf options])"
}

# natperf's lcore: one the snatgw workers do not use (they are lcores 1..W of default_lcores);
# else 0, which snatgw's main lcore shares (it sleeps between control duties).
np_lcore() {
    local workers ncpu
    workers=$(state_get workers)
    ncpu=$(nproc)
    if [ "$(state_get mode)" = snatgw ] && [ $((${workers:-1} + 1)) -lt "$ncpu" ]; then
        echo $((${workers:-1} + 1))
    else
        echo 0
    fi
}

np_flush_command() {
    if [ "$(state_get mode)" = kernel ]; then
        echo "ip netns exec $NS_GW conntrack -F"
    else
        local ctl
        ctl=$(snatctl_bin) || die "snatctl is not built (ninja -C $SNL_BUILD) - or set SNATCTL_BIN"
        echo "$ctl --socket $SNL_DIR/snatgw.sock sessions flush --all"
    fi
}

np_run() {
    local link mode bin
    link=$(state_get natperf)
    mode=$(state_get mode)
    [ -n "$link" ] && [[ "$mode" =~ ^(snatgw|kernel)$ ]] \
        || die "the natperf lab is not up (tools/lab natperf up --gateway G --link L)"
    require_root
    bin=$(natperf_bin) || die "natperf is not built (ninja -C $SNL_BUILD) - or set NATPERF_BIN"
    local user=() user_eal=() seen_dashes=0 a
    for a in "$@"; do
        if [ "$seen_dashes" = 0 ] && [ "$a" = -- ]; then seen_dashes=1; continue; fi
        if [ "$seen_dashes" = 1 ]; then user_eal+=("$a"); else user+=("$a"); fi
    done
    # The lab's options, each unless the user gave it.
    local flush
    flush=$(np_flush_command) || exit 1
    local -A lab_opts=(
        [--initiator-ip]="$NP_INITIATOR_IP"
        [--initiator-gateway]="$GW_IN"
        [--responder-ip]="$SERVER"
        [--responder-gateway]="$GW_OUT"
        [--flush-command]="$flush"
    )
    local eal=(--no-pci -l "${SNL_NP_LCORES:-$(np_lcore)}")
    if [ "$link" = memif ]; then
        lab_opts[--initiator-port]=net_memif_np0
        lab_opts[--responder-port]=net_memif_np1
        # Not --in-memory (net_memif cannot probe under it; see the top of this file).
        rm -rf "/var/run/dpdk/$NP_PREFIX"
        eal+=(--file-prefix "$NP_PREFIX" --no-huge -m 1024
              --vdev "net_memif_np0,role=client,socket=$NP_DIR/gw-in.sock,$NP_MEMIF_ARGS"
              --vdev "net_memif_np1,role=client,socket=$NP_DIR/gw-out.sock,$NP_MEMIF_ARGS")
    else
        lab_opts[--initiator-port]=net_af_xdp_np0
        lab_opts[--responder-port]=net_af_xdp_np1
        eal+=(--file-prefix "$NP_PREFIX")
        if hugepages_setup; then
            eal+=(--in-memory)
        else
            warn "no hugepages: natperf on 4 KiB pages (--no-huge)"
            rm -rf "/var/run/dpdk/$NP_PREFIX"
            eal+=(--no-huge -m 1024)
        fi
        eal+=(--vdev "net_af_xdp_np0,iface=np-in,start_queue=0,queue_count=1"
              --vdev "net_af_xdp_np1,iface=np-out,start_queue=0,queue_count=1")
    fi
    local opts=() k
    for k in --initiator-port --initiator-ip --initiator-gateway --responder-port --responder-ip \
             --responder-gateway --flush-command; do
        # The user's "--opt VALUE" or "--opt=VALUE" wins.
        local given=0
        for a in "${user[@]}"; do [[ "$a" == "$k" || "$a" == "$k="* ]] && given=1; done
        [ "$given" = 1 ] || opts+=("$k" "${lab_opts[$k]}")
    done
    local cmd=("$bin" "${opts[@]}" "${user[@]}" -- "${eal[@]}" "${user_eal[@]}")
    say "natperf against $mode over $link: ip netns exec $NS_NP $(printf '%q ' "${cmd[@]}")" >&2
    # In the background so that its PID is on record for `down` (and an interrupt stops it).
    # nice -10 as snatgw has: on a busy shared machine a starved tester loses its own frames.
    ip netns exec "$NS_NP" nice -n -10 "${cmd[@]}" </dev/null &
    local pid=$! rc=0
    echo "$pid" > "$SNL_DIR/natperf.pid"
    trap 'kill -TERM '"$pid"' 2>/dev/null || true' INT TERM
    wait "$pid" || rc=$?
    # A signal interrupts the first wait: wait for natperf itself to end.
    while pid_alive "$pid"; do wait "$pid" || rc=$?; done
    trap - INT TERM
    rm -f "$SNL_DIR/natperf.pid"
    [ "$link" = memif ] && rm -rf "/var/run/dpdk/$NP_PREFIX"
    return "$rc"
}

np_status() {
    local mode link ns pid p
    mode=$(state_get mode)
    link=$(state_get natperf)
    echo "lab: natperf mode, gateway $mode over $link ($(state_get workers) worker(s)), policy $(state_get policy), pool $(state_get pool)"
    echo "up arguments: $(state_get args)"
    for ns in "$NS_NP" "$NS_GW"; do
        if ip netns pids "$ns" >/dev/null 2>&1; then
            printf '  %-8s %s\n' "$ns" "$(ip -n "$ns" -br link | awk '$1 != "lo" {printf "%s %s; ", $1, $2; n++} END {if (!n) printf "(no links: memif)"}')"
        else
            printf '  %-8s missing\n' "$ns"
        fi
    done
    for p in snatgw natperf; do
        [ -f "$SNL_DIR/$p.pid" ] || continue
        pid=$(cat "$SNL_DIR/$p.pid")
        printf '  %-8s pid %-8s %s\n' "$p" "$pid" "$(pid_alive "$pid" && echo running || echo DEAD)"
    done
    [ "$link" = memif ] && ls -l "$NP_DIR"/*.sock 2>/dev/null | sed 's/^/  /'
    if [ "$mode" = kernel ]; then
        echo "conntrack entries: $(in_ns "$NS_GW" conntrack -C 2>/dev/null || echo '?')"
    fi
    return 0
}

# Called by cmd_down: what the natperf mode leaves outside the namespaces. natperf itself is
# stopped first (by its PID), the namespaces and snatgw by cmd_down.
np_stop() {
    stop_pidfile natperf natperf 5
}
np_cleanup_files() {
    rm -f "$NP_DIR"/gw-in.sock "$NP_DIR"/gw-out.sock "$SNL_DIR/natperf.pid"
    rm -rf "/var/run/dpdk/$NP_PREFIX" "/var/run/dpdk/$NP_GW_PREFIX"
}

cmd_natperf() {
    local sub="${1:-help}"
    [ $# -gt 0 ] && shift
    case "$sub" in
        up) np_up "$@" ;;
        run) np_run "$@" ;;
        down) cmd_down ;;
        status)
            if [ -n "$(state_get natperf)" ]; then np_status; else echo "natperf lab: down"; fi ;;
        help | -h | --help) np_usage ;;
        *) np_usage >&2; exit 2 ;;
    esac
}
