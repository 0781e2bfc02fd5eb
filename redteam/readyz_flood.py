import sys, time, socket, threading
sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__))); from sign import req
PORT=int(sys.argv[1]); N=int(sys.argv[2]); DUR=float(sys.argv[3])
S="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
stop=time.time()+DUR; counts={}
lock=threading.Lock()
def flood(i):
    src="127.0.1.%d" % (i % 50 + 1)
    try:
        s=socket.create_connection(("127.0.0.1",PORT), source_address=(src,0)); s.settimeout(10)
        while time.time()<stop:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"); d=s.recv(4096)
            k=d[9:12]
            with lock: counts[k]=counts.get(k,0)+1
    except Exception as e:
        with lock: counts[type(e).__name__]=counts.get(type(e).__name__,0)+1
ts=[threading.Thread(target=flood,args=(i,),daemon=True) for i in range(N)]
[t.start() for t in ts]
time.sleep(1)
lat=[]
while time.time()<stop-1:
    t=time.time(); r=req("/ownid/getOwnIDDataByLoginId", b'{"loginId":"alice@example.com"}', S, port=PORT)
    lat.append((round(time.time()-t,3), r[9:12].decode()))
    time.sleep(0.5)
[t.join() for t in ts]
print("readyz answers:", counts); print("signed gets during the flood (s, status):", lat)
