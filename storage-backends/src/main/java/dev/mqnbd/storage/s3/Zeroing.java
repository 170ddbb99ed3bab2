package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.util.Arrays;
import org.jspecify.annotations.Nullable;

/**
 * DISCARD and WRITE_ZEROES on an S3 export's {@link BlockCache}: whole blocks in the range become zero
 * without being read, the partial ends are zeroed by read-modify-write under their block's lock. Blocks
 * known not to exist and not in memory are skipped without a pin, so trimming a mostly empty terabyte
 * costs a walk of the bitmap.
 *
 * <p>Whole blocks that may exist: in a small trim (fewer than {@link Trims#MIN_BLOCKS} of them) they
 * become dirty zero blocks whose objects the writeback deletes, batched. A larger trim is recorded in a
 * {@link Tombstone} written before the request ends, and its objects are deleted in the background
 * ({@link Trims}), so its time does not grow with the objects to delete; FLUSH does not wait for them.
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
     * Makes {@code [offset, offset + length)} read as zeroes. When at least {@link Trims#MIN_BLOCKS} whole
     * blocks of the range may exist, the trim is recorded in a tombstone (written before this returns) and
     * their objects are deleted in the background.
     *
     * @param trims the export's recorded trims
     * @param touched where to record what a FUA must wait for; {@code null} without FUA
     */
    static void zero(
            BlockCache cache, Trims trims, long offset, long length, long deadline, Barrier.@Nullable Builder touched)
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
        Tombstone t =
                atLeast(cache.map, firstWhole, endWhole, Trims.MIN_BLOCKS) ? trims.begin(firstWhole, endWhole) : null;
        try {
            zeroWholes(cache, trims, t, firstWhole, endWhole, deadline, touched);
        } finally {
            if (t != null) {
                t.ready = true;
            }
        }
        if (t != null) {
            trims.commit(
                    t,
                    BlockCache.remaining(deadline, "recording the trim of blocks " + firstWhole + " to " + endWhole));
        }
        zeroPart(cache, Math.min(end, endWhole * bs), end, deadline, touched);
    }

    /** Returns whether at least {@code n} blocks of {@code [from, to)} may exist. */
    private static boolean atLeast(BlockMap map, long from, long to, int n) {
        long i = map.nextSet(from, to);
        for (int found = 0; i < to; i = map.nextSet(i + 1, to)) {
            if (++found >= n) {
                return true;
            }
        }
        return false;
    }

    /** Zeroes the whole blocks {@code [from, to)}: only those that may exist or are in memory need anything. */
    private static void zeroWholes(
            BlockCache cache,
            Trims trims,
            @Nullable Tombstone t,
            long from,
            long to,
            long deadline,
            Barrier.@Nullable Builder touched)
            throws IOException {
        long[] liveIndexes = cache.liveIndexes(from, to);
        int next = 0;
        long index = from;
        while (index < to) {
            long fromMap = cache.map.nextSet(index, to);
            while (next < liveIndexes.length && liveIndexes[next] < index) {
                next++;
            }
            long fromLive = next < liveIndexes.length ? liveIndexes[next] : to;
            index = Math.min(fromMap, fromLive);
            if (index >= to) {
                break;
            }
            zeroWhole(cache, t == null ? null : trims, index, deadline, touched);
            index++;
        }
    }

    /**
     * Zeroes one whole block. With {@code trims} (a recorded trim), a block with nothing unsaved and no
     * upload in flight becomes a clean zero block at once, its object left to the background deleter;
     * otherwise it becomes a dirty zero block the writeback deletes, after any upload in flight.
     */
    private static void zeroWhole(
            BlockCache cache, @Nullable Trims trims, long index, long deadline, Barrier.@Nullable Builder touched)
            throws IOException {
        if (trims == null || cache.live(index) != null) {
            cache.dirty.awaitRoom(deadline);
        }
        Block b = cache.pin(index);
        try {
            BlockCache.lock(b, deadline);
            try {
                boolean alreadyZero = cache.isZero(b);
                b.data = null;
                b.loaded = true;
                if (trims != null && !b.dirty && !b.uploading) {
                    // No PUT of it can be in flight: the stale object is the deleter's.
                    if (cache.map.mayExist(index)) {
                        cache.map.clear(index);
                        trims.mark(index);
                    }
                } else if (!alreadyZero) {
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
