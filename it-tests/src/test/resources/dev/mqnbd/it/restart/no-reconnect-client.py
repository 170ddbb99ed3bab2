# A client without reconnection (libnbd, as nbdcopy and nbdinfo use it) on a server being replaced.
# Usage: python3 no-reconnect-client.py URI
# Writes 16 regions of 1 MiB, region i filled with byte i + 1, flushes, prints "written", then reads
# regions round robin and checks every byte until the connection ends. Exit 0: the connection ended with
# an error from libnbd and every read before it returned the right bytes; 3: a read returned wrong bytes;
# 4: the connection never ended.
import sys
import time

import nbd

MIB = 1 << 20
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for i in range(16):
    h.pwrite(bytes([i + 1]) * MIB, i * MIB)
h.flush()
print("written", flush=True)
reads = 0
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    region = reads % 16
    try:
        data = h.pread(MIB, region * MIB)
    except nbd.Error as e:
        print("closed after %d verified reads: %s" % (reads, e), flush=True)
        sys.exit(0)
    if data != bytes([region + 1]) * MIB:
        print("MISMATCH in region %d after %d reads" % (region, reads), flush=True)
        sys.exit(3)
    reads += 1
print("the connection never ended (%d reads)" % reads, flush=True)
sys.exit(4)
