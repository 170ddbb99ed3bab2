# Opens and closes connections in a loop for SECONDS: each connection writes one seeded 4 KiB block at a
# random place in [BASE, BASE + SPAN), reads it back, and sometimes flushes; every fourth connection ends
# with NBD_CMD_DISC, the others just close the socket, as a crashed client would.
# At most RATE connections a second, so the other clients of a soak get their share of two cores.
# Prints "connections C writes W bad B errors E first ERROR". argv: URI SECONDS SEED BASE SPAN RATE
import hashlib, random, sys, time, nbd

uri, seconds, seed = sys.argv[1], float(sys.argv[2]), sys.argv[3]
base, span, rate = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
BS = 4096
rng = random.Random(seed)
connections = writes = bad = errors = 0
first = ''
start = time.monotonic()
while time.monotonic() - start < seconds:
    pace = start + connections / rate - time.monotonic()
    if pace > 0:
        time.sleep(pace)
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
        connections += 1
        offset = base + rng.randrange(span // BS) * BS
        data = hashlib.sha256(('%s:%d' % (seed, connections)).encode()).digest() * (BS // 32)
        h.pwrite(data, offset)
        writes += 1
        if h.pread(BS, offset) != data:
            bad += 1
        if connections % 3 == 0:
            h.flush()
        if connections % 4 == 0:
            h.shutdown()
        del h  # frees the handle: closes the socket
    except Exception as e:
        errors += 1
        if not first:
            first = str(e).replace('\n', ' ')
print('connections %d writes %d bad %d errors %d first %s' % (connections, writes, bad, errors, first))
