# Loopback TCP proxy that records each connection's two directions to files.
import socket, sys, threading, os
listen_port, target_port, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port)); srv.listen(8)
n = 0
def pump(a, b, f):
    with open(f, "wb") as out:
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                d = b""
            if not d:
                try: b.shutdown(socket.SHUT_WR)
                except OSError: pass
                return
            out.write(d); out.flush()
            try: b.sendall(d)
            except OSError: return
while True:
    c, _ = srv.accept()
    n += 1
    s = socket.create_connection(("127.0.0.1", target_port))
    threading.Thread(target=pump, args=(c, s, f"{prefix}{n}.c2s"), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, f"{prefix}{n}.s2c"), daemon=True).start()
