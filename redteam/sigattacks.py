#!/usr/bin/env python3
import sys, json, time, socket
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from sign import sign, now_ts, raw
PORT = int(sys.argv[1]); SECRET = sys.argv[2]
def send(path, body, ts=None, sig=None, headers=b"", method="POST"):
    ts = ts or now_ts(); sig = sig if sig is not None else sign(SECRET, body, ts)
    data = (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"ownid-signature: {sig}\r\nownid-timestamp: {ts}\r\nConnection: close\r\n").encode() + headers + b"\r\n" + body
    r = raw("127.0.0.1", PORT, data)
    line = r.split(b"\r\n",1)[0].decode(errors="replace"); b = r.split(b"\r\n\r\n",1)[-1][:200]
    return line, b
def show(name, res): print(f"{name:70s} -> {res[0]} {res[1]!r}")
b = b'{"loginId":"alice@example.com","ownIdData":"d1"}'
show("set alice", send("/ownid/setOwnIDDataByLoginId", b))
g = b'{"loginId":"alice@example.com"}'
# duplicate signature header: first bad, second good
ts = now_ts(); good = sign(SECRET, g, ts)
show("dup sig headers (bad first, good second)", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig="AAAA", headers=f"ownid-signature: {good}\r\n".encode()))
ts = now_ts(); good = sign(SECRET, g, ts)
show("dup sig headers (good first, bad second)", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig=good, headers=b"ownid-signature: AAAA\r\n"))
# uppercase header names
ts = now_ts(); s = sign(SECRET, g, ts)
data = (f"POST /ownid/getOwnIDDataByLoginId HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(g)}\r\nOWNID-SIGNATURE: {s}\r\nOwnId-Timestamp: {ts}\r\nConnection: close\r\n\r\n").encode()+g
print("uppercase header names ->", raw("127.0.0.1", PORT, data).split(b"\r\n",1)[0])
# timestamp in seconds, negative, with leading zeros, whitespace, plus sign, huge
for t in [str(int(time.time())), "-" + now_ts(), "0" + now_ts(), " " + now_ts(), "+" + now_ts(), "9"*40, now_ts()+".0", "1e12"]:
    show(f"timestamp {t!r}", send("/ownid/getOwnIDDataByLoginId", g, ts=t))
# stale / future
show("ts now-61s", send("/ownid/getOwnIDDataByLoginId", g, ts=str(int(time.time()*1000)-61000)))
show("ts now+59s", send("/ownid/getOwnIDDataByLoginId", g, ts=str(int(time.time()*1000)+59000)))
show("ts now+61s", send("/ownid/getOwnIDDataByLoginId", g, ts=str(int(time.time()*1000)+61000)))
# signature encodings
ts = now_ts(); s = sign(SECRET, g, ts)
show("sig urlsafe alphabet", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig=s.replace("+","-").replace("/","_")))
ts = now_ts(); s = sign(SECRET, g, ts)
show("sig without padding", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig=s.rstrip("=")))
ts = now_ts(); s = sign(SECRET, g, ts)
show("sig truncated to 16 bytes", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig=__import__('base64').b64encode(__import__('base64').b64decode(s)[:16]).decode()))
# replay across endpoints and variants of the same signature text
ts = now_ts(); s = sign(SECRET, g, ts)
show("first use (get)", send("/ownid/getOwnIDDataByLoginId", g, ts=ts, sig=s))
show("replay to session", send("/ownid/getSessionByLoginId", g, ts=ts, sig=s))
show("replay to session sig with trailing space-tab", send("/ownid/getSessionByLoginId", g, ts=ts, sig=s+" \t"))
show("replay to //ownid//getSession", send("/ownid//getSessionByLoginId", g, ts=ts, sig=s))
show("replay to /ownid/getSessionByLoginId/", send("/ownid/getSessionByLoginId/", g, ts=ts, sig=s))
show("replay to /ownid/getSessionByLoginId?x=1", send("/ownid/getSessionByLoginId?x=1", g, ts=ts, sig=s))
show("replay to /ownid/getSession%42yLoginId", send("/ownid/getSession%42yLoginId", g, ts=ts, sig=s))
show("replay to /OWNID/getSessionByLoginId", send("/OWNID/getSessionByLoginId", g, ts=ts, sig=s))
show("replay abs-form URI", send("http://x/ownid/getSessionByLoginId", g, ts=ts, sig=s))
# body canonicalization: signature over body with BOM/whitespace
for body in [b'\xef\xbb\xbf{"loginId":"alice@example.com"}', b' {"loginId":"alice@example.com"} ', b'{"loginId":"alice@example.com","loginId":"bob@example.com"}',
             b'{"loginId":"alice@example.com"}garbage', b'{"loginId":"alice@example.com"}\n{"x":1}', b'{"loginId":"al\\u0069ce@example.com"}',
             b'{"loginId":"alice@example.com\\u0000"}', b'{"loginId":"alice@example.com\\u200b"}', b'{"loginId":"alice@example.com\\ufe0f"}',
             b'{"loginId":"alice@example.com\\u034f"}', b'{"loginId":"alice@example.com\\u3164"}', b'{"loginId":"alice@example.com\\u2028"}',
             b'{"loginId":"alice@example.com\\udb40\\udc01"}', b'{"loginId":"\\ud800"}', b'{"loginId":"alice@example.com\\u00a0"}']:
    show(f"get body {body[:60]!r}", send("/ownid/getOwnIDDataByLoginId", body))
