import socket, time, struct, sys
PORT=int(sys.argv[1]); mode=sys.argv[2]
def frame(t, flags, sid, payload): return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
s=socket.create_connection(("127.0.0.1",PORT)); s.settimeout(0.5)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4,0,0,b""))
hdr = bytes([0x82,0x86,0x84]) + b"\x41\x01x"  # GET http / authority x
t0=time.time()
def alive():
    try:
        d=s.recv(65536)
        return d != b""
    except socket.timeout: return True
    except Exception: return False
if mode=="pings":  # never a HEADERS frame, only PINGs
    while time.time()-t0<25:
        try: s.sendall(frame(6,0,0,b"12345678"))
        except Exception: break
        if not alive(): break
        time.sleep(1.5)
elif mode=="continuation":  # HEADERS without END_HEADERS, then a CONTINUATION byte per 2 s
    s.sendall(frame(1,0x1,1,hdr[:1]))
    for b in hdr[1:]*10:
        time.sleep(2)
        try: s.sendall(frame(9,0,1,bytes([b])))
        except Exception: break
        if not alive(): break
        if time.time()-t0>25: break
elif mode=="partialframe":  # 8 of the 9 bytes of a HEADERS frame header, then PING? no: nothing valid can follow; trickle nothing
    f=frame(1,0x5,1,hdr)
    s.sendall(f[:8])
    while time.time()-t0<25:
        if not alive(): break
        time.sleep(1)
print(mode, "connection open for %.1fs" % (time.time()-t0))
