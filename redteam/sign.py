#!/usr/bin/env python3
"""send.py-like signer: sign(secret_b64, body, ts) and a raw sender."""
import base64, hmac, hashlib, time, socket, sys, json
def sign(secret, body: bytes, ts: str):
    return base64.b64encode(hmac.new(base64.b64decode(secret), body + b"." + ts.encode(), hashlib.sha256).digest()).decode()
def now_ts(): return str(int(time.time()*1000))
def raw(host, port, data: bytes, src=None, timeout=10):
    s = socket.create_connection((host, port), timeout=timeout, source_address=(src,0) if src else None)
    s.sendall(data)
    out=b""
    try:
        while True:
            c=s.recv(65536)
            if not c: break
            out+=c
    except socket.timeout: pass
    s.close(); return out
def req(path, body: bytes, secret, ts=None, extra=b"", host="127.0.0.1", port=8080, sig=None):
    ts = ts or now_ts()
    sig = sig or sign(secret, body, ts)
    data = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"ownid-signature: {sig}\r\nownid-timestamp: {ts}\r\nConnection: close\r\n").encode() + extra + b"\r\n" + body
    return raw(host, port, data)
