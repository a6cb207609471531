#!/usr/bin/env python3
"""UDP echo server of the snatgw lab (runs in the server namespace).

Answers every datagram with b"<peer ip>:<peer port>|" + the datagram, so a client behind the
gateway learns which public address and port the server saw. Stops on SIGTERM/SIGINT."""
import signal
import socket
import sys

addr = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 7007
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
try:
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(f"{peer[0]}:{peer[1]}|".encode() + data, peer)
except KeyboardInterrupt:
    pass
