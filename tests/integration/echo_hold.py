# A TCP connection held open through the gateway to the lab's echo service (:7100), shared by
# the integration tests: one checked echo every 20 ms until STATE/NAME.stop exists. Writes the
# connection's public end (as the server saw it) to STATE/NAME.peer at once, and
# "ok failed max_ms public_end" to STATE/NAME.result at the end.
# Usage: echo_hold.py SERVER STATE NAME
import os, socket, sys, time
server, state, name = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.create_connection((server, 7100), timeout=3)
line = b""
while not line.endswith(b"\n"):
    line += s.recv(1)
peer = line.decode().split()[1]
open(f"{state}/{name}.peer", "w").write(peer + "\n")
ok = failed = n = 0
worst = 0.0
while not os.path.exists(f"{state}/{name}.stop"):
    msg = f"echo-{n}\n".encode()
    n += 1
    t = time.monotonic()
    try:
        s.sendall(msg)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("closed")
            data += chunk
        ok += data == msg
        failed += data != msg
    except OSError:
        failed += 1
        break
    worst = max(worst, time.monotonic() - t)
    time.sleep(0.02)
open(f"{state}/{name}.result", "w").write(f"{ok} {failed} {worst * 1000:.0f} {peer}\n")
