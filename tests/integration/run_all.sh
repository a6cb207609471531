#!/bin/bash
# Runs the integration tests against one gateway (SNL_GATEWAY=snatgw|kernel, default snatgw):
# the lab is brought up once for the tests that share it (SNL_KEEP_LAB), the tests that need
# their own configuration (out_of_window: one lab per policy; pool_exhaustion: a tiny pool)
# bring up their own, and everything is taken down at the end. Ends with "N passed, N failed,
# N skipped"; exit 0 only if nothing failed. Arguments: test names to run (default: all), a
# script's name or one of the named variants below (seed_storm_close_on_accept,
# seed_storm_client_first, seed_storm_server_first, seed_cold_start, seed_syn_flood,
# storm_server_closes); "seeds" stands for the five seed tests.
cd "$(dirname "$0")" || exit 1
LAB=../../tools/lab
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(ping traceroute udp http iperf3 port_reuse storm out_of_window pool_exhaustion)
expanded=()
for t in "${tests[@]}"; do
    if [ "$t" = seeds ]; then
        expanded+=(seed_storm_close_on_accept seed_storm_client_first seed_storm_server_first seed_cold_start seed_syn_flood)
    else
        expanded+=("$t")
    fi
done
tests=("${expanded[@]}")
export SNL_GATEWAY="${SNL_GATEWAY:-snatgw}"
pass=0 failed=0 skipped=0 failed_names=""
"$LAB" down >/dev/null 2>&1
# Named variants of a script, as in tests/meson.build: the seeds' workloads (issue 12), each on
# a fresh lab with one pool address.
seed_storm=(SNL_STORM_THREADS=32 SNL_STORM_CONNECT_TIMEOUT=0.5 SNL_STORM_POOL_ADDRESSES=1 SNL_STORM_FRESH_LAB=1)
variant() {  # name -> "script env..."
    case "$1" in
        seed_storm_close_on_accept) echo storm "${seed_storm[@]}" SNL_STORM_CLOSE=both SNL_STORM_SECONDS=30 SNL_STORM_PORT=7003 ;;
        seed_storm_client_first) echo storm "${seed_storm[@]}" SNL_STORM_CLOSE=client SNL_STORM_SECONDS=10 SNL_STORM_PORT=7001 ;;
        seed_storm_server_first) echo storm "${seed_storm[@]}" SNL_STORM_CLOSE=server SNL_STORM_SECONDS=10 SNL_STORM_PORT=7002 ;;
        seed_cold_start) echo cold_start ;;
        seed_syn_flood) echo syn_flood ;;
        storm_server_closes) echo storm SNL_STORM_SERVER_CLOSES=1 SNL_STORM_SECONDS=5 SNL_STORM_PORT=7002 ;;
        *) echo "$1" ;;
    esac
}
for t in "${tests[@]}"; do
    start=$(date +%s)
    read -r script env_args <<<"$(variant "$t")"
    # shellcheck disable=SC2086  # env_args: words
    env SNL_KEEP_LAB=1 $env_args ./"$script".sh
    rc=$?
    echo "== $t: $(case $rc in 0) echo passed ;; 77) echo skipped ;; *) echo FAILED ;; esac) in $(($(date +%s) - start)) s"
    case $rc in
        0) pass=$((pass + 1)) ;;
        77) skipped=$((skipped + 1)) ;;
        *) failed=$((failed + 1)); failed_names+=" $t" ;;
    esac
done
"$LAB" down >/dev/null 2>&1
echo
echo "$SNL_GATEWAY gateway: $pass passed, $failed failed${failed_names:+ ($failed_names )}, $skipped skipped"
[ "$failed" -eq 0 ]
