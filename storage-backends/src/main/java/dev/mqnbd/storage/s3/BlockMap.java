package dev.mqnbd.storage.s3;

import java.util.concurrent.atomic.AtomicLongArray;

/**
 * One bit per block of an export: set when its object <em>may exist</em> in the store, clear when it is
 * known not to. Filled from a listing of {@code PREFIX/blocks/} when the export is opened; set before
 * every upload (so a PUT whose reply is lost still counts as stored), cleared only after a delete
 * succeeded or a GET found nothing. A clear bit lets a read of the block return zeroes without a GET,
 * a zero block skip its DELETE, and BLOCK_STATUS report a hole.
 *
 * <p>An export of 1 TiB in 64 KiB blocks needs 16 Mi bits: 2 MiB.
 *
 * <p><b>Threading:</b> lock-free; safe for concurrent use.
 */
final class BlockMap {
    private final long blocks;
    private final AtomicLongArray words;

    /**
     * Creates an empty map of {@code blocks} bits.
     *
     * @throws IllegalArgumentException if {@code blocks} is not between 0 and {@link ExportMetadata#MAX_BLOCKS}
     */
    BlockMap(long blocks) {
        if (blocks < 0 || blocks > ExportMetadata.MAX_BLOCKS) {
            throw new IllegalArgumentException(
                    "blocks: " + blocks + " (expected: 0 to " + ExportMetadata.MAX_BLOCKS + ")");
        }
        this.blocks = blocks;
        this.words = new AtomicLongArray((int) ((blocks + 63) >>> 6));
    }

    /** Returns the number of blocks the map covers. */
    long blocks() {
        return blocks;
    }

    /** Returns whether block {@code index}'s object may exist. */
    boolean mayExist(long index) {
        return (words.get((int) (index >>> 6)) & (1L << index)) != 0;
    }

    /** Records that block {@code index}'s object may exist. */
    void set(long index) {
        long bit = 1L << index;
        int w = (int) (index >>> 6);
        long old = words.get(w);
        while ((old & bit) == 0) {
            long witness = words.compareAndExchange(w, old, old | bit);
            if (witness == old) {
                return;
            }
            old = witness;
        }
    }

    /** Records that block {@code index}'s object does not exist. */
    void clear(long index) {
        long bit = 1L << index;
        int w = (int) (index >>> 6);
        long old = words.get(w);
        while ((old & bit) != 0) {
            long witness = words.compareAndExchange(w, old, old & ~bit);
            if (witness == old) {
                return;
            }
            old = witness;
        }
    }

    /** Returns the first index in {@code [from, to)} whose bit is set, or {@code to} if none is. */
    long nextSet(long from, long to) {
        long i = from;
        while (i < to) {
            int w = (int) (i >>> 6);
            long word = words.get(w) & (-1L << i);
            if (word != 0) {
                return Math.min(to, ((long) w << 6) + Long.numberOfTrailingZeros(word));
            }
            i = ((long) w + 1) << 6;
        }
        return to;
    }

    /** Returns the number of set bits: blocks that may exist. */
    long count() {
        long n = 0;
        for (int i = 0; i < words.length(); i++) {
            n += Long.bitCount(words.get(i));
        }
        return n;
    }
}
