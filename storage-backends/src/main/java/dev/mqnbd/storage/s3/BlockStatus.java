package dev.mqnbd.storage.s3;

import dev.mqnbd.mq.Extents;

/**
 * BLOCK_STATUS on an S3 export: blocks known not to exist, or zero in memory, are holes ({@code HOLE |
 * ZERO}); every other block is data. What is known comes from the {@link BlockMap} (the listing at open,
 * kept up to date by uploads) and the blocks in memory; a run of absent blocks is skipped in one step.
 *
 * <p><b>Threading:</b> stateless; reads the cache without locks: a block changing meanwhile may be
 * reported either way, as for any request that overlaps a concurrent write.
 */
final class BlockStatus {
    private BlockStatus() {}

    /** Reports the allocation of {@code [offset, offset + length)}, clipped to the capacity; stops when {@code out} is full. */
    static void report(BlockCache cache, long offset, long length, Extents out) {
        int bs = cache.blockSize;
        long end = Math.min(cache.capacity, offset + length);
        if (offset >= end) {
            return;
        }
        long lastBlock = (end - 1) / bs + 1;
        long[] liveIndexes = cache.liveIndexes(offset / bs, lastBlock);
        int next = 0;
        long pos = offset;
        long runLength = 0;
        int runFlags = -1;
        while (pos < end) {
            long index = pos / bs;
            int flags;
            long segmentEnd;
            if (hasData(cache, index)) {
                flags = 0;
                segmentEnd = Math.min(end, (index + 1) * bs);
            } else {
                flags = Extents.HOLE | Extents.ZERO;
                // Skip to the next block that may hold data.
                while (next < liveIndexes.length && liveIndexes[next] <= index) {
                    next++;
                }
                long candidate = Math.min(
                        cache.map.nextSet(index + 1, lastBlock),
                        next < liveIndexes.length ? liveIndexes[next] : lastBlock);
                segmentEnd = Math.min(end, candidate * bs);
            }
            if (flags == runFlags) {
                runLength += segmentEnd - pos;
            } else {
                if (runFlags >= 0 && !out.add(runLength, runFlags)) {
                    return;
                }
                runFlags = flags;
                runLength = segmentEnd - pos;
            }
            pos = segmentEnd;
        }
        out.add(runLength, runFlags);
    }

    private static boolean hasData(BlockCache cache, long index) {
        Block b = cache.live(index);
        if (b != null && b.loaded) {
            return b.data != null;
        }
        return cache.map.mayExist(index);
    }
}
