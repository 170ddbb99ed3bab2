package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.util.Arrays;
import org.jspecify.annotations.Nullable;

/**
 * DISCARD and WRITE_ZEROES on an S3 export's {@link BlockCache}: whole blocks in the range become zero
 * without being read (their objects are deleted by the writeback, batched), the partial ends are zeroed
 * by read-modify-write under their block's lock. Blocks known not to exist and not in memory are
 * skipped without a pin, so trimming a mostly empty terabyte costs a walk of the bitmap.
 *
 * <p><b>Threading:</b> stateless; called from request threads.
 */
final class Zeroing {
    private Zeroing() {}

    /**
     * Returns whether zeroing the range needs no block read from the store: its partial ends, if any, fall
     * in blocks known not to exist and not in memory. A {@code FAST_ZERO} request needs this.
     */
    static boolean canZeroFast(BlockCache cache, long offset, long length) {
        int bs = cache.blockSize;
        long end = offset + length;
        if (offset % bs != 0 && !cache.knownZero(offset / bs)) {
            return false;
        }
        return end % bs == 0 || end == cache.capacity || cache.knownZero(end / bs);
    }

    /**
     * Makes {@code [offset, offset + length)} read as zeroes.
     *
     * @param touched where to record what a FUA must wait for; {@code null} without FUA
     */
    static void zero(BlockCache cache, long offset, long length, long deadline, Barrier.@Nullable Builder touched)
            throws IOException {
        int bs = cache.blockSize;
        long end = offset + length;
        long firstWhole = (offset + bs - 1) / bs;
        // The last block counts as whole when the range reaches the capacity: past it is always zero.
        long endWhole = end == cache.capacity ? cache.blockCount : end / bs;
        if (firstWhole >= endWhole) {
            // No whole block: one partial piece, or a partial tail and a partial head.
            zeroPart(cache, offset, end, deadline, touched);
            return;
        }
        zeroPart(cache, offset, firstWhole * bs, deadline, touched);
        // Whole blocks: only those that may exist or are in memory need anything.
        long[] liveIndexes = cache.liveIndexes(firstWhole, endWhole);
        int next = 0;
        long index = firstWhole;
        while (index < endWhole) {
            long fromMap = cache.map.nextSet(index, endWhole);
            while (next < liveIndexes.length && liveIndexes[next] < index) {
                next++;
            }
            long fromLive = next < liveIndexes.length ? liveIndexes[next] : endWhole;
            index = Math.min(fromMap, fromLive);
            if (index >= endWhole) {
                break;
            }
            zeroWhole(cache, index, deadline, touched);
            index++;
        }
        zeroPart(cache, Math.min(end, endWhole * bs), end, deadline, touched);
    }

    private static void zeroWhole(BlockCache cache, long index, long deadline, Barrier.@Nullable Builder touched)
            throws IOException {
        cache.dirty.awaitRoom(deadline);
        Block b = cache.pin(index);
        try {
            BlockCache.lock(b, deadline);
            try {
                boolean alreadyZero = cache.isZero(b);
                b.data = null;
                b.loaded = true;
                if (!alreadyZero) {
                    b.shared = false;
                    cache.dirty.changed(b);
                }
                if (touched != null) {
                    touched.add(b, b.version);
                }
            } finally {
                b.lock.unlock();
            }
        } finally {
            cache.unpin(b);
        }
    }

    /** Zeroes {@code [from, to)}, which lies within one block or spans a partial head and tail. */
    private static void zeroPart(BlockCache cache, long from, long to, long deadline, Barrier.@Nullable Builder touched)
            throws IOException {
        int bs = cache.blockSize;
        while (from < to) {
            long index = from / bs;
            int in = (int) (from % bs);
            int n = (int) Math.min(to - from, bs - in);
            if (!cache.knownZero(index)) {
                Block b = cache.pin(index);
                try {
                    BlockCache.lock(b, deadline);
                    try {
                        cache.load(b, deadline);
                        if (b.data != null) {
                            if (b.shared) {
                                b.data = b.data.clone();
                                b.shared = false;
                            }
                            Arrays.fill(b.data, in, in + n, (byte) 0);
                            cache.dirty.changed(b);
                        }
                        if (touched != null) {
                            touched.add(b, b.version);
                        }
                    } finally {
                        b.lock.unlock();
                    }
                } finally {
                    cache.unpin(b);
                }
            }
            from += n;
        }
    }
}
