package dev.mqnbd.storage.s3;

import java.util.concurrent.locks.ReentrantLock;
import org.jspecify.annotations.Nullable;

/**
 * The in-memory state of one block of an S3 export while something uses it: requests that read or
 * write it, its upload, or unsaved data. {@link BlockCache} keeps at most one {@code Block} per index.
 *
 * <p><b>Versions.</b> Every change of the contents increments {@link #version}. An upload snapshots the
 * bytes and the version under the lock, stores the snapshot, then raises {@link #storedVersion} to the
 * snapshot's version. A block is dirty while {@code storedVersion < version}; a FLUSH or FUA waits until
 * {@code storedVersion} reaches the version it must cover.
 *
 * <p><b>Partial blocks.</b> A write to part of a block that is stored but not in memory does not read it
 * first: the block's {@link #data} takes the bytes written, {@link #written} says which, and the block
 * is <em>partial</em> ({@link #partial()}: not {@link #loaded}, with data). Its other bytes are still
 * the store's; they are read (one GET) and copied under the written ones when something needs them: a
 * read of a byte not written, an upload, a zeroing of part of it. A partial block written whole is
 * loaded without a GET. Partial blocks are always dirty, and never being uploaded.
 *
 * <p><b>Copy on write.</b> An upload reads its snapshot without the lock, so while {@link #shared} is set
 * a writer replaces {@link #data} by a copy before changing it; the snapshot stays as it was.
 *
 * <p><b>Threading:</b> the contents ({@code data}, {@code loaded}, {@code written}, {@code shared},
 * {@code version}) change
 * only under {@link #lock} and only by a thread holding a pin; {@code pins} is guarded by the cache's map
 * (it changes inside {@code compute}); the volatile fields are read without the lock by barriers and the
 * writeback, as hints or for monotonic progress.
 */
final class Block {
    final long index;
    final ReentrantLock lock = new ReentrantLock();

    /** The bytes ({@code blockSize} of them), or {@code null} for all zeroes. Valid when {@link #loaded}. */
    byte @Nullable [] data;

    /**
     * Whether {@link #data} holds the block's contents; if not, they are in the store (or nowhere: zeroes),
     * apart from the bytes {@link #written} of a partial block.
     */
    boolean loaded;

    /**
     * The bytes written since the block's last upload began, or since it came into memory. For a partial
     * block, exactly the bytes of {@link #data} that are valid.
     */
    final Ranges written = new Ranges();

    /**
     * Whether {@link #written} covers the whole block: it was written whole since its last upload began,
     * e.g. by a sequential writer that has moved on, so the writeback uploads it without waiting for it to
     * age. Set under the lock; read by the writeback as a hint.
     */
    volatile boolean full;

    /** Whether the block counts in {@link DirtyBlocks#fullBacklog()}. Under the lock. */
    boolean countedFull;

    /** Whether an upload in progress reads {@link #data}: writers copy it first. */
    boolean shared;

    /** Incremented by every change of the contents. */
    volatile long version;

    /** The highest version known to be stored. */
    volatile long storedVersion;

    /** Whether the block holds changes not yet stored; only set or cleared under the lock. */
    volatile boolean dirty;

    /** Whether an upload (PUT or DELETE) of this block is in flight; at most one at a time. */
    volatile boolean uploading;

    /** Whether the writeback started an upload task for this block that has not begun the upload yet. */
    volatile boolean queued;

    /** Whether a FLUSH or FUA waits for this block: upload it now rather than when it is old enough. */
    volatile boolean urgent;

    /** When the block last went from clean to dirty ({@link System#nanoTime()}). */
    volatile long dirtySinceNanos;

    /** Bytes the block counts for in the dirty total: {@code blockSize} with data, 0 for zeroes, 0 when clean. */
    volatile long charged;

    /** Uploads that failed in a row, for the retry backoff. Under the lock. */
    int failures;

    /** Not before this {@link System#nanoTime()} is a failed block retried. */
    volatile long retryAtNanos;

    /** The last upload failure, if it cannot succeed by retrying (e.g. access denied); cleared by success. */
    volatile @Nullable StoreException permanentFailure;

    /** When {@link #permanentFailure} happened ({@link System#nanoTime()}). */
    volatile long permanentFailureNanos;

    /** Pins: requests and uploads using the block. Guarded by the cache map's compute on this index. */
    int pins;

    Block(long index) {
        this.index = index;
        this.retryAtNanos = System.nanoTime();
    }

    /** Returns whether only the bytes {@link #written} of {@link #data} are valid, the rest in the store. Under the lock. */
    boolean partial() {
        return !loaded && data != null;
    }

    /**
     * Records that {@code [from, to)} was written; a partial block written whole becomes loaded. Under the
     * lock, after the bytes were copied.
     *
     * @param limit the block's bytes inside the export (less than the block size for a short last block)
     */
    void wrote(int from, int to, int limit) {
        written.add(from, to);
        if (!full && written.covers(0, limit)) {
            full = true;
            if (data != null) {
                // Bytes past the limit (a short last block's tail) are zeroes in the array, as in the store.
                loaded = true;
            }
        }
    }

    /** Forgets what was written: an upload of the block begins (it is loaded). Under the lock. */
    void uploadBegins() {
        written.clear();
        full = false;
    }

    @Override
    public String toString() {
        return "Block[" + index + " v" + version + " stored v" + storedVersion + (dirty ? " dirty" : "")
                + (uploading ? " uploading" : "")
                + (loaded ? (data == null ? " zero" : " data") : data == null ? " unloaded" : " partial " + written)
                + "]";
    }
}
