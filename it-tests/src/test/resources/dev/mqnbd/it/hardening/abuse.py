#!/usr/bin/env python3
"""Attacks on an NBD server, as docs/hardening.md describes them (issue "Abuse resistance").

Usage: abuse.py HOST PORT ATTACK [ARGS...]; prints one line "ATTACK key value ...", exit 0 unless
the tool itself failed. Attacks:
  unread-reads EXPORT N LENGTH SECONDS  N READs of LENGTH bytes at 0 on one connection, replies never read
  option-flood CONNS N SECONDS          CONNS connections each send N NBD_OPT_LIST without reading
  stalled-handshakes N SECONDS          N connections that stop after the greeting
  idle-flood EXPORT N SECONDS           N connections that choose EXPORT and sit idle
  range-flood EXPORT N [STRIDE]         writes a page every STRIDE bytes (default 4 MiB), then N pipelined
                                        TRIM + WRITE_ZEROES over the whole export (extended headers); prints
                                        how long their replies took
  slow-reader EXPORT SECONDS            a client that reads its replies slowly (the soak runs one)
  partial-writes EXPORT N LENGTH SENT SECONDS
                                        N connections each send a WRITE of LENGTH bytes but only SENT
                                        bytes of its payload (or what the server takes of it within a
                                        second), then hold; prints how many the server closed
  slow-writes EXPORT CONNS N LENGTH SECONDS
                                        CONNS connections each pipeline N whole WRITEs of LENGTH bytes (to a
                                        slow export) and never read a reply; after SECONDS prints how many
                                        MiB the server had taken off their sockets
  one-write-each EXPORT CONNS LENGTH SECONDS
                                        CONNS connections, opened one after another, each send one whole
                                        WRITE of LENGTH bytes (to a slow export) and never read a reply;
                                        after SECONDS prints how many MiB the server had taken off them
  slow-reads EXPORT CONNS N LENGTH SECONDS
                                        CONNS connections each pipeline N READs of LENGTH bytes (from a slow
                                        export), replies never read, held SECONDS
  disc-junk EXPORT                      WRITE 4 KiB, DISC and junk in one send; prints whether the WRITE
                                        was answered before the close
"""
import socket
import struct
import sys
import threading
import time

NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REQ_MAGIC = 0x25609513
EXT_REQ_MAGIC = 0x21e41c71
OPT_GO, OPT_LIST, OPT_EXTENDED_HEADERS = 7, 3, 11


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed")
        b += c
    return b


def closed_by_server(s, timeout):
    """Whether the server closed S: it ends (EOF or reset) within TIMEOUT, what came before it read and
    dropped. Closes S either way."""
    s.setblocking(True)
    s.settimeout(timeout)
    try:
        while s.recv(1 << 20):
            pass
        return True
    except ConnectionError:
        return True
    except socket.timeout:
        return False
    finally:
        s.close()


def connect(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def greet(s):
    recv_exact(s, 18)
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES


def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)


def final_reply(s):
    while True:
        _, _, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
        data = recv_exact(s, length)
        if rtype == 1 or rtype & 0x80000000:
            return rtype, data


def go(s, export, extended=False):
    greet(s)
    if extended:
        option(s, OPT_EXTENDED_HEADERS)
        rtype, _ = final_reply(s)
        if rtype != 1:
            raise RuntimeError("no extended headers")
    name = export.encode()
    option(s, OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    size = None
    while True:
        _, _, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
        data = recv_exact(s, length)
        if rtype == 3 and struct.unpack(">H", data[:2])[0] == 0:
            size = struct.unpack(">Q", data[2:10])[0]
        if rtype == 1:
            return size
        if rtype & 0x80000000:
            raise RuntimeError("GO refused: %x" % rtype)


def request(cmd, cookie, offset, length, flags=0):
    return struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, cookie, offset, length)


def ext_request(cmd, cookie, offset, length, flags=0):
    return struct.pack(">IHHQQQ", EXT_REQ_MAGIC, flags, cmd, cookie, offset, length)


def unread_reads(host, port, export, n, length, seconds):
    s = connect(host, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    go(s, export)
    s.sendall(b"".join(request(0, i, 0, length) for i in range(n)))
    time.sleep(seconds)
    s.close()
    print("unread-reads sent %d length %d held %d s" % (n, length, seconds))


def option_flood(host, port, conns, n, seconds):
    socks = []
    closed = 0
    for _ in range(conns):
        s = connect(host, port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greet(s)
        socks.append(s)
    payload = struct.pack(">QII", IHAVEOPT, OPT_LIST, 0) * n
    for s in socks:
        s.setblocking(False)
    sent = [0] * conns
    deadline = time.time() + seconds
    while time.time() < deadline:
        progress = False
        for i, s in enumerate(socks):
            if s is None or sent[i] >= len(payload):
                continue
            try:
                k = s.send(payload[sent[i]:sent[i] + 65536])
                sent[i] += k
                progress = progress or k > 0
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
                socks[i] = None
        if not progress:
            time.sleep(0.05)
    # Then read what the server answered: a connection it closed ends within the timeout.
    closed += sum(closed_by_server(s, 5) for s in socks if s is not None)
    print("option-flood conns %d options-each %d closed-by-server %d options-sent %d"
          % (conns, n, closed, sum(sent) // 16))


def hold(host, port, n, seconds, export=None):
    socks = []
    failed = 0
    for _ in range(n):
        try:
            s = connect(host, port)
            if export is None:
                recv_exact(s, 18)
            else:
                go(s, export)
            socks.append(s)
        except (OSError, EOFError, RuntimeError):
            failed += 1
    time.sleep(seconds)
    for s in socks:
        s.close()
    print("%s held %d failed %d" % ("stalled-handshakes" if export is None else "idle-flood", len(socks), failed))


def range_flood(host, port, export, n, stride):
    s = connect(host, port)
    size = go(s, export, extended=True)
    # One written page every STRIDE bytes: every part of the store is allocated, so zeroing visits it all.
    page = b"\x5a" * 4096
    offsets = list(range(0, size, stride))
    for i in range(0, len(offsets), 1024):
        batch = offsets[i:i + 1024]
        s.sendall(b"".join(ext_request(1, j, o, 4096, 0x20) + page for j, o in enumerate(batch)))
        for _ in batch:
            recv_exact(s, struct.unpack(">IHHQQQ", recv_exact(s, 32))[5])
    start = time.time()
    reqs = []
    for i in range(n):
        reqs.append(ext_request(4, 2 * i, 0, size))       # TRIM
        reqs.append(ext_request(6, 2 * i + 1, 0, size))   # WRITE_ZEROES
    s.sendall(b"".join(reqs))
    errors = 0
    for _ in range(2 * n):
        magic, flags, rtype, cookie, offset, length = struct.unpack(">IHHQQQ", recv_exact(s, 32))
        data = recv_exact(s, length)
        if rtype != 0:
            errors += 1
    print("range-flood requests %d size %d seconds %.2f errors %d" % (2 * n, size, time.time() - start, errors))
    s.close()


def disc_junk(host, port, export):
    s = connect(host, port)
    go(s, export)
    payload = bytes(range(256)) * 16
    s.sendall(request(1, 77, 0, len(payload)) + payload + request(2, 78, 0, 0) + b"\xde\xad" * 16)
    answered = False
    try:
        magic, error, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
        answered = magic == 0x67446698 and error == 0 and cookie == 77
    except (EOFError, OSError):
        pass
    print("disc-junk write-answered %s" % answered)


def partial_writes(host, port, export, n, length, sent, seconds):
    socks = []
    failed = blocked = 0
    chunk = b"w" * (1 << 20)
    for i in range(n):
        try:
            s = connect(host, port)
            go(s, export)
            s.sendall(request(1, i, 0, length))
            s.settimeout(1)
            left = sent
            try:
                while left > 0:
                    left -= s.send(chunk[:min(left, len(chunk))])
            except socket.timeout:
                blocked += 1  # the server does not read this payload (yet): go on with the next
            socks.append(s)
        except (OSError, EOFError, RuntimeError):
            failed += 1
    time.sleep(seconds)
    # A connection the server closed ends at once; one it kept sends nothing while it waits for the payload.
    closed = sum(closed_by_server(s, 0.5) for s in socks)
    print("partial-writes held %d failed %d blocked %d closed-by-server %d"
          % (len(socks), failed, blocked, closed + failed))


def slow_writes(host, port, export, conns, n, length, seconds):
    payload = b"s" * length
    sent = [0] * conns
    socks = []

    def pump(i, s):
        try:
            for j in range(n):
                s.sendall(request(1, j, (j * length) % (1 << 30), length))
                view = memoryview(payload)
                while view:
                    k = s.send(view)
                    view = view[k:]
                    sent[i] += k
        except OSError:
            pass

    for i in range(conns):
        s = connect(host, port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        go(s, export)
        socks.append(s)
        threading.Thread(target=pump, args=(i, s), daemon=True).start()
    time.sleep(seconds)
    total = sum(sent)
    for s in socks:
        s.close()
    print("slow-writes conns %d sent-mib %d" % (conns, total >> 20))


def one_write_each(host, port, export, conns, length, seconds):
    payload = b"o" * length
    socks = []
    sent = 0
    for i in range(conns):
        s = connect(host, port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        go(s, export)
        socks.append(s)
        s.settimeout(1)
        try:
            s.sendall(request(1, i, (i * length) % (1 << 30), length))
            view = memoryview(payload)
            while view:
                k = s.send(view)
                view = view[k:]
                sent += k
        except OSError:
            pass  # the server stopped reading this one: go on with the next
    time.sleep(seconds)
    for s in socks:
        s.close()
    print("one-write-each conns %d sent-mib %d" % (conns, sent >> 20))


def slow_reads(host, port, export, conns, n, length, seconds):
    socks = []
    for _ in range(conns):
        s = connect(host, port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        go(s, export)
        s.sendall(b"".join(request(0, i, (i * length) % (1 << 30), length) for i in range(n)))
        socks.append(s)
    time.sleep(seconds)
    for s in socks:
        s.close()
    print("slow-reads conns %d sent %d length %d held %d s" % (conns, n, length, seconds))


def slow_reader(host, port, export, seconds):
    """Pipelines 16 READs of 1 MiB, reads the replies at about 2 MiB/s, checks each header; until SECONDS."""
    s = connect(host, port)
    go(s, export)
    deadline = time.time() + seconds
    rounds = bad = 0
    while time.time() < deadline:
        s.sendall(b"".join(request(0, i, i << 20, 1 << 20) for i in range(16)))
        for _ in range(16):
            magic, error, cookie = struct.unpack(">IIQ", recv_exact(s, 16))
            if magic != 0x67446698 or error != 0 or cookie >= 16:
                bad += 1
            left = 1 << 20
            while left:
                left -= len(recv_exact(s, min(left, 65536)))
                time.sleep(0.03)
        rounds += 1
    s.close()
    print("slow-reader rounds %d bad %d" % (rounds, bad))


def main():
    host, port, attack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    a = sys.argv[4:]
    if attack == "unread-reads":
        unread_reads(host, port, a[0], int(a[1]), int(a[2]), float(a[3]))
    elif attack == "option-flood":
        option_flood(host, port, int(a[0]), int(a[1]), float(a[2]))
    elif attack == "stalled-handshakes":
        hold(host, port, int(a[0]), float(a[1]))
    elif attack == "idle-flood":
        hold(host, port, int(a[1]), float(a[2]), export=a[0])
    elif attack == "range-flood":
        range_flood(host, port, a[0], int(a[1]), int(a[2]) if len(a) > 2 else 4 << 20)
    elif attack == "slow-reader":
        slow_reader(host, port, a[0], float(a[1]))
    elif attack == "partial-writes":
        partial_writes(host, port, a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif attack == "slow-writes":
        slow_writes(host, port, a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif attack == "one-write-each":
        one_write_each(host, port, a[0], int(a[1]), int(a[2]), float(a[3]))
    elif attack == "slow-reads":
        slow_reads(host, port, a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif attack == "disc-junk":
        disc_junk(host, port, a[0])
    else:
        sys.exit("unknown attack " + attack)


if __name__ == "__main__":
    main()
