# Writes seeded 4 KiB blocks (and some zeroed blocks, some with FUA) to an NBD export with several
# commands in flight and a FLUSH every few writes, until it is told to stop or the server dies, and keeps
# a journal of what the server promised (CrashSafetyIT, docs/hardening.md):
#   B h0 h1 ...        sha256 of every block of the region before the first write
#   S seq block kind fua   write seq was sent (kind d: data of seq, z: zeroes)
#   A seq              write seq was acknowledged
#   F n                a FLUSH reply: the first n acknowledgements (A lines) are durable (proto.md: every
#                      write completed before a FLUSH is processed is on stable storage when it is answered)
#   E message          how the run ended, when it ended with an error
# Two writes to one block are never in flight at once, so a block ends up with the data of its last write
# that landed. argv: URI JOURNAL SEED BLOCKS DEPTH FLUSH_EVERY SECONDS
import hashlib, random, sys, time, nbd

uri, journal, seed = sys.argv[1], sys.argv[2], sys.argv[3]
blocks, depth, flush_every, seconds = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
BS = 4096

def content(seq):
    return hashlib.sha256(('%s:%d' % (seed, seq)).encode()).digest() * (BS // 32)

j = open(journal, 'w', buffering=1)
h = nbd.NBD()
h.connect_uri(uri)
region = h.pread(blocks * BS, 0)
j.write('B ' + ' '.join(hashlib.sha256(region[i * BS:(i + 1) * BS]).hexdigest() for i in range(blocks)) + '\n')

rng = random.Random(seed)
inflight = {}
busy = set()
acked = 0
seq = 0
since_flush = 0
flush = None
start = time.monotonic()
try:
    while time.monotonic() - start < seconds:
        while len(inflight) < depth:
            if flush is None and since_flush >= flush_every:
                flush = (h.aio_flush(), acked)
                since_flush = 0
                continue
            b = rng.randrange(blocks)
            if b in busy:
                continue
            kind = 'z' if rng.random() < 0.1 else 'd'
            fua = rng.random() < 0.05
            flags = nbd.CMD_FLAG_FUA if fua else 0
            j.write('S %d %d %s %d\n' % (seq, b, kind, fua))
            if kind == 'd':
                buf = nbd.Buffer.from_bytearray(bytearray(content(seq)))
                cookie = h.aio_pwrite(buf, b * BS, flags=flags)
            else:
                buf = None
                cookie = h.aio_zero(BS, b * BS, flags=flags)
            inflight[cookie] = (seq, b, buf)
            busy.add(b)
            seq += 1
            since_flush += 1
        h.poll(-1)
        for cookie in list(inflight):
            if h.aio_command_completed(cookie):
                s, b, _ = inflight.pop(cookie)
                busy.discard(b)
                acked += 1
                j.write('A %d\n' % s)
        if flush is not None and h.aio_command_completed(flush[0]):
            j.write('F %d\n' % flush[1])
            flush = None
    j.write('E stopped after %.1f s\n' % seconds)
except Exception as e:
    j.write('E %s\n' % str(e).replace('\n', ' '))
j.close()
print('sent %d acked %d' % (seq, acked))
