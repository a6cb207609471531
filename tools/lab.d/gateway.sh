# shellcheck shell=bash
# Part of tools/lab (sourced by it, not run): the two gateways the lab can put in the snl-gw
# namespace. kernel_gateway makes it a Linux router with iptables SNAT to the pool;
# snatgw_gateway starts the snatgw daemon on the veth ends (hugepages, the config written from
# snatgw.conf.in, net_af_xdp with a fall back to net_af_packet, waiting for "snatgw: ready").
# Uses the lab's globals: SNL_DIR, LAB_D, NS_GW, GW_IN, GW_OUT, and the options of `up`
# (POOL_ADDRESSES, POOL_PORTS, POLICY, STEERING, IDLE_SLEEP_US, LCORES, CFG_FILE, EAL_EXTRA,
# OVERRIDES, VDEV_ARGS).

kernel_gateway() {
    local pool_addresses="$1" pool_ports="$2" policy="$3" random_fully="$4" drop_invalid="$5"
    in_ns "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$NS_GW" ip addr add "$GW_IN/24" dev snatgw-in
    in_ns "$NS_GW" ip addr add "$GW_OUT/24" dev snatgw-out
    # The pool addresses are the box's own (as with MASQUERADE), so the kernel answers ARP
    # for them - and, like a real box, its TCP stack sees what conntrack does not translate.
    local first last a
    first=${pool_addresses%-*}
    last=${pool_addresses#*-}
    for ((a = ${first##*.}; a <= ${last##*.}; a++)); do
        in_ns "$NS_GW" ip addr add "${first%.*}.$a/32" dev snatgw-out
    done
    local to="$first-$last" rf=()
    [ "$first" = "$last" ] && to="$first"
    [ "$random_fully" = 1 ] && rf=(--random-fully)
    local rule=(-t nat -A POSTROUTING -s 198.18.0.0/24 -o snatgw-out)
    if [ -n "$pool_ports" ]; then
        # A port range needs a protocol with ports; ICMP and the rest take the address only.
        in_ns "$NS_GW" iptables "${rule[@]}" -p tcp -j SNAT --to-source "$to:$pool_ports" "${rf[@]}"
        in_ns "$NS_GW" iptables "${rule[@]}" -p udp -j SNAT --to-source "$to:$pool_ports" "${rf[@]}"
        to="$to:$pool_ports"
    fi
    in_ns "$NS_GW" iptables "${rule[@]}" -j SNAT --to-source "${to%%:*}" "${rf[@]}"
    [ "$drop_invalid" = 1 ] && in_ns "$NS_GW" iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP
    local liberal=0
    [ "$policy" = liberal ] && liberal=1
    in_ns "$NS_GW" sysctl -qw "net.netfilter.nf_conntrack_tcp_be_liberal=$liberal" || true
    local extra=""
    [ "$random_fully" = 1 ] && extra=" --random-fully"
    [ "$drop_invalid" = 1 ] && extra="$extra, INVALID dropped in FORWARD"
    say "kernel gateway: iptables SNAT --to-source $to$extra, nf_conntrack_tcp_be_liberal=$liberal"
}

hugepages_setup() {
    local have
    have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
    if [ "$have" -lt 1024 ]; then
        echo 1024 > /proc/sys/vm/nr_hugepages 2>/dev/null || true
        have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
        say "hugepages: reserved $have x 2 MiB"
    fi
    [ "$have" -ge 256 ]
}

# The EAL lcore mapping: main + W workers; when there are fewer CPUs than lcores, every lcore
# may run on any CPU (idle sleeping keeps this usable).
default_lcores() {
    local workers="$1" ncpu
    ncpu=$(nproc)
    if [ $((workers + 1)) -le "$ncpu" ]; then
        echo "0-$workers"
    else
        echo "(0-$workers)@(0-$((ncpu - 1)))"
    fi
}

vdev_string() {  # driver index iface queues
    case "$1" in
        af_xdp) echo "net_af_xdp$2,iface=$3,start_queue=0,queue_count=$4${VDEV_ARGS:+,$VDEV_ARGS}" ;;
        # A deep TPACKET ring (the driver's default is 512 frames): on two shared cores a
        # worker can be descheduled for tens of milliseconds.
        af_packet) echo "net_af_packet$2,iface=$3,qpairs=$4,blocksz=4096,framesz=2048,framecnt=8192${VDEV_ARGS:+,$VDEV_ARGS}" ;;
        # natperf's memif link (lab.d/natperf.sh): a memif server where the veth would be,
        # snatgw-in -> $NP_DIR/gw-in.sock.
        memif) np_memif_server "$2" "$NP_DIR/gw-${3#snatgw-}.sock" ;;
    esac
}

# Run the daemon in the gateway namespace: driver, then the command. 0 when its log says
# "snatgw: ready" (within SNL_READY_TIMEOUT s); its PID in snatgw.pid.
snatgw_launch() {
    local driver="$1" log="$SNL_DIR/snatgw.log" timeout="${SNL_READY_TIMEOUT:-60}" pid i; shift
    # The lab shares two cores with dozens of client threads: a higher CPU weight (nice -10)
    # keeps the scheduler from parking the poll-mode worker long enough to overflow its RX ring.
    ip netns exec "$NS_GW" nice -n -10 "$@" </dev/null >"$log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    echo "$pid" > "$SNL_DIR/snatgw.pid"
    for ((i = 0; i < timeout * 5; i++)); do
        if grep -q '^snatgw: ready' "$log" 2>/dev/null; then
            say "snatgw ready (pid $pid, $driver)"
            return 0
        fi
        pid_alive "$pid" || return 1
        sleep 0.2
    done
    return 1
}

# `tools/lab restart-gateway`: the gateway starts again from nothing, the rest of the lab as it
# is (the hosts' and the server's sockets and neighbour caches). snatgw: SIGTERM (its final
# counters go to snatgw-previous.log), then the same command as at `up`: no session, no
# neighbour known. kernel: conntrack -F and the gateway namespace's neighbour cache flushed.
restart_gateway() {
    local mode
    mode=$(state_get mode)
    case "$mode" in
        kernel)
            in_ns "$NS_GW" conntrack -F >/dev/null 2>&1 || true
            in_ns "$NS_GW" ip neigh flush all
            say "kernel gateway: conntrack table and neighbour cache flushed" ;;
        snatgw)
            [ -s "$SNL_DIR/snatgw.cmd" ] || die "no recorded snatgw command ($SNL_DIR/snatgw.cmd): tools/lab down; tools/lab up"
            local words=() w
            while IFS= read -r w; do eval "words+=($w)"; done < "$SNL_DIR/snatgw.cmd"
            stop_pidfile snatgw snatgw 15
            mv -f "$SNL_DIR/snatgw.log" "$SNL_DIR/snatgw-previous.log" 2>/dev/null || true
            say "restarting snatgw: ip netns exec $NS_GW ${words[*]:1}"
            snatgw_launch "${words[@]}" || { tail -n 15 "$SNL_DIR/snatgw.log" >&2; die "snatgw did not start again (see $SNL_DIR/snatgw.log)"; } ;;
        *) die "the lab is down (or not a NAT lab: $mode)" ;;
    esac
}

# Start snatgw with one driver; 0 when its log says "snatgw: ready".
snatgw_try() {
    local driver="$1" workers="$2"; shift 2
    local bin conf log="$SNL_DIR/snatgw.log" timeout="${SNL_READY_TIMEOUT:-60}"
    bin=$(snatgw_bin) || die "snatgw is not built (ninja -C $SNL_BUILD) - or set SNATGW_BIN"
    if [ -n "$CFG_FILE" ]; then
        conf="$CFG_FILE"
    else
        conf="$SNL_DIR/snatgw.conf"
        sed -e "s|@WORKERS@|$workers|" \
            -e "s|@IDLE_SLEEP_US@|$IDLE_SLEEP_US|" \
            -e "s|@STEERING@|$STEERING|" \
            -e "s|@INSIDE_DEVICE@|$(vdev_string "$driver" 0 snatgw-in "$workers")|" \
            -e "s|@OUTSIDE_DEVICE@|$(vdev_string "$driver" 1 snatgw-out "$workers")|" \
            -e "s|@POOL_ADDRESSES@|$POOL_ADDRESSES|" \
            -e "s|@POOL_PORTS@|${POOL_PORTS:-1024-65535}|" \
            -e "s|@POLICY@|${POLICY:-liberal}|" \
            -e "s|@LAB@|$SNL_DIR|" \
            "$LAB_D/snatgw.conf.in" > "$conf"
    fi
    local eal lcores="${LCORES:-$(default_lcores "$workers")}"
    if [ "$driver" = memif ]; then
        # net_memif cannot probe under --in-memory (DPDK 22.11): a file prefix of its own, and
        # 4 KiB pages (hugepages outside --in-memory would need a mounted hugetlbfs).
        rm -rf "/var/run/dpdk/$NP_GW_PREFIX"
        eal=(--file-prefix "$NP_GW_PREFIX" --no-huge -m 1024 --lcores "$lcores")
    else
        eal=(--in-memory --file-prefix snl --lcores "$lcores")
        hugepages_setup || { warn "no hugepages: running on 4 KiB pages (--no-huge)"; eal+=(--no-huge -m 1024); }
    fi
    # shellcheck disable=SC2206
    [ -n "$EAL_EXTRA" ] && eal+=($EAL_EXTRA)
    local cmd=("$bin" --config "$conf" "${OVERRIDES[@]}" -- "${eal[@]}")
    say "starting snatgw ($driver, $workers worker(s)): ip netns exec $NS_GW ${cmd[*]}"
    # The command as run, for `tools/lab restart-gateway` (one shell-quoted word a line).
    printf '%q\n' "$driver" "${cmd[@]}" > "$SNL_DIR/snatgw.cmd"
    snatgw_launch "$driver" "${cmd[@]}" && return 0
    if pid_alive "$(cat "$SNL_DIR/snatgw.pid" 2>/dev/null)"; then
        warn "snatgw not ready after ${timeout}s: stopping it"
        stop_pidfile snatgw snatgw 10
    else
        rm -f "$SNL_DIR/snatgw.pid"
    fi
    warn "snatgw with $driver failed; last lines of its log:"
    tail -n 15 "$log" >&2 || true
    # A failed AF_XDP start may leave an XDP program attached.
    in_ns "$NS_GW" ip link set dev snatgw-in xdp off 2>/dev/null || true
    in_ns "$NS_GW" ip link set dev snatgw-out xdp off 2>/dev/null || true
    mv -f "$log" "$SNL_DIR/snatgw-$driver-failed.log"
    return 1
}

snatgw_gateway() {
    local vdev="$1" workers="$2"
    case "$vdev" in
        af_xdp | af_packet)
            snatgw_try "$vdev" "$workers" || die "snatgw did not start with $vdev" ;;
        auto)
            if snatgw_try af_xdp "$workers"; then
                vdev=af_xdp
            else
                if grep -q 'larger than combined queue count' "$SNL_DIR/snatgw-af_xdp-failed.log" 2>/dev/null; then
                    warn "net_af_xdp: a veth shows DPDK one combined channel, so one queue only ($workers workers asked)"
                fi
                warn "falling back from net_af_xdp to net_af_packet"
                snatgw_try af_packet "$workers" || die "snatgw did not start with af_xdp nor af_packet"
                vdev=af_packet
            fi ;;
        *) die "--vdev must be auto, af_xdp or af_packet" ;;
    esac
    state_set vdev "$vdev"
}
