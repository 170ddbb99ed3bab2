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
 * <p><b>Copy on write.</b> An upload reads its snapshot without the lock, so while {@link #shared} is set
 * a writer replaces {@link #data} by a copy before changing it; the snapshot stays as it was.
 *
 * <p><b>Threading:</b> the contents ({@code data}, {@code loaded}, {@code shared}, {@code version}) change
 * only under {@link #lock} and only by a thread holding a pin; {@code pins} is guarded by the cache's map
 * (it changes inside {@code compute}); the volatile fields are read without the lock by barriers and the
 * writeback, as hints or for monotonic progress.
 */
final class Block {
    final long index;
    final ReentrantLock lock = new ReentrantLock();

    /** The bytes ({@code blockSize} of them), or {@code null} for all zeroes. Valid when {@link #loaded}. */
    byte @Nullable [] data;

    /** Whether {@link #data} holds the block's contents; if not, they are in the store (or nowhere: zeroes). */
    boolean loaded;

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

    @Override
    public String toString() {
        return "Block[" + index + " v" + version + " stored v" + storedVersion + (dirty ? " dirty" : "")
                + (uploading ? " uploading" : "") + (loaded ? (data == null ? " zero" : " data") : " unloaded") + "]";
    }
}
