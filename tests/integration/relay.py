#!/usr/bin/env python3
"""A man in the middle for the migration tests: listens on LISTEN_HOST:PORT,
relays one connection at a time to TARGET_HOST:PORT, records what the client
sends into RECORD, and with --flip N inverts the client's byte number N on
the way. Serves --connections connections (default 1), then exits."""
import argparse, socket, threading

p = argparse.ArgumentParser()
p.add_argument('listen')
p.add_argument('target')
p.add_argument('record')
p.add_argument('--flip', type=int, default=-1)
p.add_argument('--connections', type=int, default=1)
a = p.parse_args()

def hostport(s):
    h, _, port = s.rpartition(':')
    return h, int(port)

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(hostport(a.listen))
srv.listen(1)
print('relay ready', flush=True)
seen = 0
with open(a.record, 'wb') as rec:
    for _ in range(a.connections):
        c, _ = srv.accept()
        u = socket.create_connection(hostport(a.target))

        def back():
            try:
                while True:
                    b = u.recv(65536)
                    if not b:
                        break
                    c.sendall(b)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                if seen <= a.flip < seen + len(b):
                    b = bytearray(b)
                    b[a.flip - seen] ^= 0xff
                    b = bytes(b)
                seen += len(b)
                rec.write(b)
                u.sendall(b)
        except OSError:
            pass
        try:
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        t.join(30)
        c.close()
        u.close()
