#!/usr/bin/env python3
"""TCP echo server of the snatgw lab (runs in the server namespace).

On accept it sends one line "peer <ip>:<port>\n" (the address the server sees: behind the
gateway, a pool address and public port), then echoes everything back until the client closes.
One thread per connection; stops on SIGTERM/SIGINT."""
import signal
import socket
import sys
import threading

addr = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 7100


def serve(conn, peer):
    with conn:
        try:
            conn.sendall(f"peer {peer[0]}:{peer[1]}\n".encode())
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(1024)
try:
    while True:
        conn, peer = s.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
except KeyboardInterrupt:
    pass
