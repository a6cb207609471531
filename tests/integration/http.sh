#!/bin/bash
# HTTP through the gateway: every inside host downloads the server's 10 MB file with curl (all
# hosts at once) and its sha256 must match the file's; a small file too. The server's access
# log must show each request from a pool address, never from an inside address.
source "$(dirname "$0")/lib.sh"
lab_ensure

hosts=$(host_count)
want=$(cat "$SNL_DIR/www/10M.bin.sha256")
log="$SNL_DIR/nginx-access.log"
before=$(wc -l < "$log")
for ((i = 1; i <= hosts; i++)); do
    bg in_ns "h$i" curl -s -m 60 -o "$TEST_TMP/h$i.bin" \
        -w '%{http_code} %{size_download} %{speed_download}\n' "http://$SERVER/10M.bin" \
        > "$TEST_TMP/h$i.curl"
done
wait
for ((i = 1; i <= hosts; i++)); do
    read -r code size speed < "$TEST_TMP/h$i.curl" || true
    got=$(sha256sum "$TEST_TMP/h$i.bin" 2>/dev/null | cut -d' ' -f1)
    say "h$i: HTTP ${code:-none}, ${size:-0} bytes at $(( ${speed%.*} / 1048576 )) MiB/s"
    check "h$i: 10M.bin HTTP 200" [ "${code:-0}" = 200 ]
    check "h$i: 10M.bin sha256 matches ($want)" [ "$got" = "$want" ]
    body=$(in_ns "h$i" curl -s -m 5 "http://$SERVER/hello.txt")
    check "h$i: hello.txt body" [ "$body" = "hello through the gateway" ]
done
sleep 0.2
tail -n +"$((before + 1))" "$log" > "$TEST_TMP/new.log"
n=$(wc -l < "$TEST_TMP/new.log")
bad=0
while read -r peer _; do
    in_pool "${peer%:*}" || bad=$((bad + 1))
done < "$TEST_TMP/new.log"
say "access log: $n new requests, $bad not from the pool; e.g. $(head -n 1 "$TEST_TMP/new.log")"
check "access log: all $((2 * hosts)) requests logged" [ "$n" -eq $((2 * hosts)) ]
check "access log: every request from a pool address" [ "$bad" -eq 0 ]
finish
