#!/bin/bash
# Runs the integration tests against one gateway (SNL_GATEWAY=snatgw|kernel, default snatgw):
# the lab is brought up once for the tests that share it (SNL_KEEP_LAB), the tests that need
# their own configuration (out_of_window: one lab per policy; pool_exhaustion: a tiny pool)
# bring up their own, and everything is taken down at the end. Ends with "N passed, N failed,
# N skipped"; exit 0 only if nothing failed. Arguments: test names to run (default: all).
cd "$(dirname "$0")" || exit 1
LAB=../../tools/lab
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(ping traceroute udp http iperf3 port_reuse storm out_of_window pool_exhaustion)
export SNL_GATEWAY="${SNL_GATEWAY:-snatgw}"
pass=0 failed=0 skipped=0 failed_names=""
"$LAB" down >/dev/null 2>&1
for t in "${tests[@]}"; do
    start=$(date +%s)
    SNL_KEEP_LAB=1 ./"$t".sh
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
