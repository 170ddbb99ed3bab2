# Reads the region crash_writer.py wrote back from a restarted server and checks every block against the
# journal: a block whose last durable write (covered by a FLUSH reply, or acknowledged with FUA) is d holds
# d's data or that of a write sent after d; a block without one holds its data from before the run or
# that of any write sent to it. Prints "blocks N sent S acked A durable D bad B first [...]".
# argv: URI JOURNAL SEED BLOCKS
import hashlib, sys, nbd

uri, journal, seed, blocks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
BS = 4096
ZERO = hashlib.sha256(bytes(BS)).hexdigest()

def digest(seq, kind):
    if kind == 'z':
        return ZERO
    return hashlib.sha256(hashlib.sha256(('%s:%d' % (seed, seq)).encode()).digest() * (BS // 32)).hexdigest()

baseline, sent, acks, durable = None, {}, [], set()
for line in open(journal).read().splitlines():
    p = line.split(' ')
    try:
        if p[0] == 'B':
            baseline = p[1:]
        elif p[0] == 'S':
            sent[int(p[1])] = (int(p[2]), p[3], p[4] == '1')
        elif p[0] == 'A':
            acks.append(int(p[1]))
        elif p[0] == 'F':
            durable.update(acks[:int(p[1])])
    except (IndexError, ValueError):
        pass  # a line cut short: the journal is written line by line, so only the last one can be
if baseline is None:
    print('blocks %d sent 0 acked 0 durable 0 bad 0 first [] (no baseline)' % blocks)
    sys.exit(0)
durable.update(s for s in acks if sent[s][2])

by_block = {}
for s in sorted(sent):
    by_block.setdefault(sent[s][0], []).append(s)
h = nbd.NBD()
h.connect_uri(uri)
data = h.pread(blocks * BS, 0)
bad = []
for b in range(blocks):
    actual = hashlib.sha256(data[b * BS:(b + 1) * BS]).hexdigest()
    writes = by_block.get(b, [])
    landed = [s for s in writes if s in durable]
    if landed:
        last = max(landed)
        allowed = {digest(s, sent[s][1]) for s in writes if s >= last}
    else:
        allowed = {baseline[b]} | {digest(s, sent[s][1]) for s in writes}
    if actual not in allowed:
        bad.append(b)
h.shutdown()
print('blocks %d sent %d acked %d durable %d bad %d first %s' % (blocks, len(sent), len(acks), len(durable), len(bad), bad[:5]))
