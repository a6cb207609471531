#!/usr/bin/env python3
"""UDP request/response load for `tools/lab compare` (runs in an inside host's namespace).

M sockets, each with one request outstanding at a time toward the lab's UDP echo service
(tools/lab.d/udp_echo.py answers b"<peer ip>:<peer port>|" + the request): a socket sends a
numbered request, waits for its answer, then sends the next. A request with no answer within
--timeout seconds is counted lost and the socket moves on; an answer that comes after that is
counted late (not answered). Bounded by --seconds (and --count requests in all, if given);
after the end, the requests still out get --timeout to be answered. Prints one JSON object:
sent, answered, lost, late, answered_per_s, round-trip ms (median, p99, max) and the public
addresses the server saw (the pool addresses the gateway used)."""
import argparse
import json
import os
import selectors
import socket
import sys
import time


def percentile_ms(sorted_s, p):
    if not sorted_s:
        return 0.0
    return sorted_s[int(p * (len(sorted_s) - 1) + 0.5)] * 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="IP:PORT of the echo service")
    ap.add_argument("--sockets", type=int, default=16, help="sockets, one request out each")
    ap.add_argument("--seconds", type=float, default=10.0, help="send new requests this long")
    ap.add_argument("--count", type=int, default=0, help="stop after this many requests (0: none)")
    ap.add_argument("--timeout", type=float, default=1.0, help="a request unanswered this long is lost")
    ap.add_argument("--size", type=int, default=32, help="request size, bytes")
    a = ap.parse_args()
    if not 1 <= a.sockets <= 1024 or a.seconds <= 0 or a.seconds > 3600 or a.timeout <= 0:
        ap.error("--sockets 1..1024, --seconds 0..3600, --timeout > 0")
    host, port = a.target.rsplit(":", 1)
    target = (host, int(port))
    pad = b"." * max(0, a.size - 24)

    sel = selectors.DefaultSelector()
    socks = []
    # Per socket: [sequence number outstanding (or None), its send time, its deadline]
    state = {}
    for _ in range(a.sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect(target)
        socks.append(s)
        state[s] = [None, 0.0, 0.0]
        sel.register(s, selectors.EVENT_READ)

    sent = answered = lost = late = send_errors = 0
    rtts = []
    public = {}
    seq = 0
    pid = os.getpid()
    start = time.monotonic()
    stop_sending = start + a.seconds

    def send(s, now):
        nonlocal seq, sent, send_errors
        if now >= stop_sending or (a.count and seq >= a.count):
            state[s][0] = None
            return
        seq += 1
        try:
            s.send(b"%d:%016d|" % (pid % 100000, seq) + pad)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            # Counted, and the request is treated as out (it will time out as lost).
            send_errors += 1
        sent += 1
        state[s][:] = [seq, now, now + a.timeout]

    now = time.monotonic()
    for s in socks:
        send(s, now)
    while True:
        now = time.monotonic()
        out = [st for st in state.values() if st[0] is not None]
        if not out:
            break
        wait = max(0.0, min(st[2] for st in out) - now)
        for key, _ in sel.select(timeout=min(wait, 0.1)):
            s = key.fileobj
            while True:
                try:
                    data = s.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # e.g. an ICMP error queued on the socket
                    break
                peer, _, body = data.partition(b"|")
                try:
                    got = int(body.split(b"|", 1)[0].split(b":", 1)[1])
                except (IndexError, ValueError):
                    late += 1
                    continue
                st = state[s]
                if st[0] is not None and got == st[0]:
                    t = time.monotonic()
                    answered += 1
                    rtts.append(t - st[1])
                    ip = peer.decode(errors="replace").rsplit(":", 1)[0]
                    public[ip] = public.get(ip, 0) + 1
                    send(s, t)
                else:
                    late += 1
        now = time.monotonic()
        for s, st in state.items():
            if st[0] is not None and now >= st[2]:
                lost += 1
                send(s, now)
    elapsed = min(time.monotonic(), stop_sending) - start
    rtts.sort()
    print(json.dumps({
        "seconds": round(elapsed, 3),
        "sockets": a.sockets,
        "sent": sent,
        "answered": answered,
        "lost": lost,
        "late": late,
        "send_errors": send_errors,
        "answered_per_s": answered / elapsed if elapsed > 0 else 0.0,
        "rtt_ms": {"median": percentile_ms(rtts, 0.5), "p99": percentile_ms(rtts, 0.99),
                   "max": rtts[-1] * 1000.0 if rtts else 0.0},
        "public_addresses": public,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
