package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * WRITE on an S3 export's {@link BlockCache}: a whole block is replaced without being read; part of a
 * block in memory is changed in place; part of a stored block that is not in memory makes it partial
 * (see {@link Block}): the bytes land in a block-size array that records which of them were written,
 * and the store's other bytes are fetched (one GET) only when something needs them, at its upload or a
 * read of a byte not written. So a block filled by writes that straddle its ends (the kernel client's
 * 128 KiB writes over 1 MiB blocks, at any alignment) costs no GET at all, and 4 KiB random writes cost
 * at most one GET per block uploaded rather than one per block they first touch.
 *
 * <p><b>Threading:</b> stateless; called from request threads, each change under the block's lock.
 */
final class Writing {
    private Writing() {}

    /**
     * Copies {@code src[srcIndex, srcIndex + length)} to {@code offset} under each block's lock. Part of a
     * block that is in memory is changed in place; part of a stored block that is not makes it partial
     * (see {@link Block}), without a GET. Zeroes written where the block is known to be zero change
     * nothing.
     *
     * @param touched where to record the blocks and versions a FUA must wait for; {@code null} without FUA
     */
    static void write(
            BlockCache cache,
            long offset,
            ByteBuffer src,
            int srcIndex,
            int length,
            long deadline,
            Barrier.@Nullable Builder touched)
            throws IOException {
        int bs = cache.blockSize;
        while (length > 0) {
            long index = offset / bs;
            int in = (int) (offset % bs);
            int n = Math.min(length, bs - in);
            boolean whole = in == 0 && (n == bs || offset + n == cache.capacity);
            boolean zeroes = Bytes.isZero(src, srcIndex, n);
            if (!(zeroes && cache.knownZero(index))) {
                Block current = cache.live(index);
                if (!zeroes && (current == null || current.charged == 0)) {
                    // Only a block that is not yet dirty with data adds to the dirty bytes: a writer filling
                    // a dirty block does not stop half way, so the writeback never catches it half written.
                    cache.dirty.awaitRoom(deadline);
                    cache.dirty.awaitStream(deadline);
                }
                Block b = cache.pin(index);
                try {
                    BlockCache.lock(b, deadline);
                    try {
                        if (whole) {
                            replace(cache, b, src, srcIndex, n, zeroes);
                        } else {
                            modify(cache, b, in, src, srcIndex, n, zeroes, deadline);
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
            offset += n;
            srcIndex += n;
            length -= n;
        }
    }

    /** Replaces the whole block without reading it; under its lock. */
    private static void replace(BlockCache cache, Block b, ByteBuffer src, int srcIndex, int n, boolean zeroes) {
        if (zeroes) {
            if (cache.isZero(b)) {
                b.loaded = true;
                b.data = null;
                return;
            }
            b.data = null;
            b.shared = false;
        } else {
            if (b.data == null || b.shared) {
                // A whole block overwrites every byte of a reused array; a short last block's tail past the
                // capacity must stay zero, so it gets a new one.
                b.data = n == cache.blockSize ? cache.buffers.take() : new byte[cache.blockSize];
                b.shared = false;
            }
            src.get(srcIndex, b.data, 0, n);
        }
        b.loaded = true;
        cache.dirty.changed(b);
        b.wrote(0, n, n);
        cache.dirty.recountFull(b);
    }

    /** Changes part of the block; under its lock. A stored block not in memory becomes partial: no GET. */
    private static void modify(
            BlockCache cache, Block b, int in, ByteBuffer src, int srcIndex, int n, boolean zeroes, long deadline)
            throws IOException {
        if (!b.loaded && b.data == null && cache.map.mayExist(b.index)) {
            // The other bytes stay in the store until something needs them.
            b.data = new byte[cache.blockSize];
        } else if (!b.partial()) {
            // Loaded, or known absent: no GET.
            cache.load(b, deadline);
            if (b.data == null) {
                if (zeroes) {
                    return;
                }
                b.data = new byte[cache.blockSize];
            } else if (b.shared) {
                b.data = b.data.clone();
                b.shared = false;
            }
        }
        byte[] data = Objects.requireNonNull(b.data);
        if (zeroes) {
            Arrays.fill(data, in, in + n, (byte) 0);
        } else {
            src.get(srcIndex, data, in, n);
        }
        cache.dirty.changed(b);
        b.wrote(in, in + n, cache.limit(b));
        cache.dirty.recountFull(b);
    }
}
