# shellcheck shell=bash
# Part of tools/lab (sourced by it, not run): `tools/lab demo`, what the README's first command
# shows. It brings the lab up (tearing down whatever was there), then from the inside hosts:
# curl through the gateway, the server's access log with the pool addresses, ping and
# traceroute, a 3 s connect storm; then the gateway's counters, and takes the lab down.

cmd_demo() {
    require_root
    local fail=0 mode i code
    if lab_is_up || [ -n "$(existing_namespaces)" ]; then cmd_down; fi
    cmd_up "$@"
    mode=$(state_get mode)
    local hosts
    hosts=$(host_count)

    say "curl http://$SERVER/hello.txt from every inside host, through the $mode gateway"
    for ((i = 1; i <= hosts; i++)); do
        code=$(in_ns "snl-h$i" curl -s -m 5 -o /dev/null \
            -w '%{http_code} %{size_download} bytes in %{time_total}s from %{local_ip}:%{local_port}' \
            "http://$SERVER/hello.txt" || true)
        echo "  h$i: HTTP $code"
        [[ "$code" == 200* ]] || fail=1
    done

    say "the server's nginx access log (client address:port as the server sees it)"
    sleep 0.2
    tail -n "$hosts" "$SNL_DIR/nginx-access.log" | sed 's/^/  /'

    say "ping from h1: the gateway ($GW_IN) and the server ($SERVER)"
    in_ns snl-h1 ping -c 2 -W 1 "$GW_IN" | sed -n 's/^/  /; /packets transmitted/p; /bytes from/p' || fail=1
    in_ns snl-h1 ping -c 3 -W 1 "$SERVER" | sed -n 's/^/  /; /packets transmitted/p; /bytes from/p' || fail=1

    say "traceroute -n from h1 to $SERVER"
    in_ns snl-h1 traceroute -n -q 1 -w 1 -m 4 "$SERVER" | sed 's/^/  /' || fail=1

    local rc
    if rc=$(race_bin race_client); then
        say "connect storm: $hosts hosts x 16 threads -> $SERVER:7000 for 3 s"
        local pids=()
        for ((i = 1; i <= hosts; i++)); do
            in_ns "snl-h$i" "$rc" --target "$SERVER:7000" --threads 16 --duration 3 --interval 0 \
                --json > "$SNL_DIR/demo-storm-h$i.json" 2>/dev/null &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || fail=1; done
        python3 - "$SNL_DIR" "$hosts" <<'EOF'
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
ok = failed = slow = retrans = 0
p99 = mx = 0.0
for i in range(1, n + 1):
    r = json.load(open(f"{d}/demo-storm-h{i}.json"))
    ok += r["connects_ok"]; failed += r["connects_failed"]; slow += r["slow_1s_after_call"]
    retrans += r["syn_retransmitted"]
    p99 = max(p99, r["connect_ms"]["p99"]); mx = max(mx, r["connect_ms"]["max"])
print(f"  {ok} connects ({ok / 3:.0f}/s), {failed} failed, {slow} took >= 1 s, {retrans} needed a "
      f"retransmitted SYN (a lost SYN or SYN-ACK); worst host p99 {p99:.2f} ms, max {mx:.1f} ms")
EOF
    fi

    if [ "$mode" = snatgw ]; then
        say "stopping snatgw: its final counters"
        cmd_stop_gateway | tail -n 60 | sed 's/^/  /'
    else
        say "the kernel gateway's counters"
        cmd_counters | sed 's/^/  /'
    fi
    say "tearing the lab down"
    cmd_down
    if [ "$fail" = 0 ]; then say "demo: everything went through the gateway"; else warn "demo: something failed (see above)"; fi
    return "$fail"
}
