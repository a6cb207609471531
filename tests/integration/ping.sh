#!/bin/bash
# ICMP echo through the lab: every inside host pings the gateway's inside address (answered by
# the gateway itself) and the server (translated both ways; the server sees a pool address).
source "$(dirname "$0")/lib.sh"
lab_ensure

hosts=$(host_count)
for ((i = 1; i <= hosts; i++)); do
    out=$(in_ns "h$i" ping -c 3 -i 0.2 -W 1 "$GW_IN" 2>&1)
    check "h$i: ping $GW_IN (the gateway) 3/3 replies" grep -q ' 3 received' <<<"$out"
    out=$(in_ns "h$i" ping -c 3 -i 0.2 -W 1 "$SERVER" 2>&1)
    check "h$i: ping $SERVER (the server, through the NAT) 3/3 replies" grep -q ' 3 received' <<<"$out"
done

# The server sees the echo requests from a pool address, never from an inside address.
in_ns srv timeout 5 tcpdump -n -l -i eth0 -c 2 icmp and icmp[icmptype] == icmp-echo \
    > "$TEST_TMP/srv.txt" 2>/dev/null &
dump=$!
sleep 1
in_ns h1 ping -c 2 -i 0.2 -W 1 "$SERVER" >/dev/null 2>&1
wait "$dump" || true
src=$(awk '/ICMP echo request/ {print $3; exit}' "$TEST_TMP/srv.txt")
say "server sees echo requests from $src"
check "the server sees h1's echo requests from a pool address" in_pool "${src:-none}"

# A large ping (not fragmented: 1472 bytes of payload fill a 1500-byte MTU).
out=$(in_ns h1 ping -c 2 -i 0.2 -W 1 -s 1472 -M "do" "$SERVER" 2>&1)
check "h1: ping -s 1472 (full MTU) 2/2 replies" grep -q ' 2 received' <<<"$out"
finish
