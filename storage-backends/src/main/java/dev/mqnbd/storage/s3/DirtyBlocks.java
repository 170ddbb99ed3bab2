package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.Collection;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * The dirty blocks of one S3 export: which blocks hold changes not yet stored, how many bytes of data
 * they hold, the bound on those bytes that makes writers wait, and the start and end of each upload.
 *
 * <p><b>The bound.</b> A dirty block holding data (a partial block included) counts {@code blockSize}
 * bytes; a dirty block of
 * zeroes (an object to delete) counts none. A writer about to add data to a block that does not count
 * yet waits while the total is at {@code s3.max-dirty}, so the bound may be passed by one block per
 * writer running at once. Dirty blocks of any kind are also bounded in number ({@link
 * #MAX_DIRTY_BLOCKS}), which bounds the memory of a huge trim's pending deletes.
 *
 * <p><b>The streaming window.</b> A writer that streams whole blocks (a copy, a sequential write) would
 * otherwise run up to {@code s3.max-dirty} ahead of the store: as fast as the network brings data, each
 * block in a new array that the JVM's young collections copy again and again while it waits for its
 * upload. So a writer about to dirty a block also waits while {@link #streamWindow} blocks written whole
 * wait for an upload slot ({@link #fullBacklog}), as long as uploads make progress: once none has ended
 * for {@link #STALL_NANOS} while blocks waited (a store that stopped answering) writers stop waiting for
 * the window, and the dirty bound alone absorbs the outage as before. A writer never waits for the window longer than that
 * either, so a block miscounted in the backlog can slow writers but never stop them. Random writes fill
 * few blocks whole and are not held back.
 *
 * <p><b>Progress.</b> {@link #progress} is notified whenever an upload ends or the dirty bytes drop:
 * writers waiting for room and barriers waiting for uploads wait on it (with a timeout, so a missed
 * notification costs at most a tick).
 *
 * <p><b>Threading:</b> safe for concurrent use; {@link #changed}, {@link #recharge} and the upload
 * bookkeeping run under the block's lock, as their callers document.
 */
final class DirtyBlocks {
    /** Most dirty blocks at once, zero blocks included. */
    static final int MAX_DIRTY_BLOCKS = 1 << 16;

    /** How long uploads may make no progress before writers stop waiting for the streaming window. */
    static final long STALL_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final String exportName;
    private final int blockSize;
    private final long maxDirty;
    private final S3Stats stats;
    private final ConcurrentHashMap<Long, Block> blocks = new ConcurrentHashMap<>();
    private final AtomicLong bytes = new AtomicLong();
    private final int streamWindow;
    /** Dirty blocks written whole that no upload has begun on: what {@link #awaitStream} waits on. */
    private final AtomicInteger fullBacklog = new AtomicInteger();
    /**
     * When an upload last ended well, or the {@link #fullBacklog} last went from empty to not empty: the
     * start of the wait that tells a stalled store from an idle one ({@link System#nanoTime()}).
     */
    private volatile long progressNanos = System.nanoTime();

    /** Notified whenever an upload ends or dirty bytes drop. */
    final Object progress = new Object();

    // Guarded by progress.
    private int roomWaiters;

    private volatile Runnable wakeWriteback = () -> {};

    /**
     * @param streamWindow blocks written whole that may wait for an upload slot before a writer about to
     *     dirty another block waits (the number of uploads in flight keeps the store busy)
     */
    DirtyBlocks(String exportName, int blockSize, long maxDirty, int streamWindow, S3Stats stats) {
        this.exportName = exportName;
        this.blockSize = blockSize;
        this.maxDirty = maxDirty;
        this.streamWindow = Math.max(1, streamWindow);
        this.stats = stats;
    }

    /** Sets what wakes the writeback when dirty data piles up or a writer waits. */
    void wakeWritebackWith(Runnable wake) {
        this.wakeWriteback = wake;
    }

    /** Returns the dirty blocks, live view (weakly consistent). */
    Collection<Block> blocks() {
        return blocks.values();
    }

    /** Returns the number of dirty blocks, zero blocks included. */
    int count() {
        return blocks.size();
    }

    /** Returns the bytes of dirty blocks that hold data. */
    long bytes() {
        return bytes.get();
    }

    /** Returns the bound on {@link #bytes()}: {@code s3.max-dirty}. */
    long max() {
        return maxDirty;
    }

    /** Returns the dirty bytes past which the writeback uploads blocks before they are old: 3/4 of the bound. */
    long pressure() {
        return maxDirty / 4 * 3;
    }

    /** Returns the number of dirty blocks written whole that wait for an upload to begin. */
    int fullBacklog() {
        return fullBacklog.get();
    }

    /** Returns the number of writers waiting for room. */
    int roomWaiters() {
        synchronized (progress) {
            return roomWaiters;
        }
    }

    /** Records a change of {@code b}'s contents: a new version, dirty from now on. Under {@code b}'s lock. */
    void changed(Block b) {
        b.version++;
        if (!b.dirty) {
            b.dirtySinceNanos = System.nanoTime();
            b.dirty = true;
            blocks.put(b.index, b);
        }
        recharge(b);
    }

    /**
     * Brings {@code b}'s place in the {@link #fullBacklog} up to date: it counts while dirty, written whole
     * and not being uploaded. Under {@code b}'s lock, after {@link Block#wrote} and wherever those change.
     */
    void recountFull(Block b) {
        boolean counts = b.dirty && b.full && !b.uploading;
        if (counts != b.countedFull) {
            b.countedFull = counts;
            int backlog = fullBacklog.addAndGet(counts ? 1 : -1);
            if (counts && backlog == 1) {
                progressNanos = System.nanoTime();
            } else if (!counts && backlog < streamWindow) {
                signalProgress();
            }
        }
    }

    /** Brings {@code b}'s share of the dirty bytes up to date. Under {@code b}'s lock. */
    private void recharge(Block b) {
        long charge = b.dirty && b.data != null ? blockSize : 0;
        long delta = charge - b.charged;
        if (delta == 0) {
            return;
        }
        b.charged = charge;
        long now = bytes.addAndGet(delta);
        if (delta > 0) {
            stats.maxDirtyBytes.accumulateAndGet(now, Math::max);
            if (now > pressure() && now - delta <= pressure()) {
                wakeWriteback.run();
            }
        } else {
            signalProgress();
        }
    }

    /**
     * Starts an upload of {@code b}: marks it uploading and returns the snapshot to store, or {@code null}
     * when it is clean, already being uploaded, or partial (the caller completes it first, {@link
     * BlockCache#complete}). The caller holds a pin.
     */
    @Nullable
    Snapshot beginUpload(Block b) {
        b.lock.lock();
        try {
            if (!b.dirty || b.uploading || b.partial()) {
                return null;
            }
            // The bytes written from now on are what the next upload's coverage counts.
            b.uploadBegins();
            b.uploading = true;
            recountFull(b);
            if (b.data != null) {
                // OWNERSHIP: the upload borrows the array until finishUpload; writers copy it meanwhile.
                b.shared = true;
            }
            return new Snapshot(b.version, b.data);
        } finally {
            b.lock.unlock();
        }
    }

    /**
     * Ends an upload begun with {@link #beginUpload}: on success the stored version rises to the
     * snapshot's, and the block is clean if nothing changed meanwhile; on failure it stays dirty and is
     * retried after a backoff.
     *
     * @param zero whether the snapshot was all zeroes (the object was deleted, or never existed)
     */
    void finishUpload(Block b, Snapshot snap, boolean zero, @Nullable StoreException failure) {
        b.lock.lock();
        try {
            b.uploading = false;
            if (snap.data() != null && b.data == snap.data()) {
                b.shared = false;
            }
            if (failure == null) {
                if (snap.version() > b.storedVersion) {
                    b.storedVersion = snap.version();
                }
                b.failures = 0;
                b.permanentFailure = null;
                if (b.version == snap.version()) {
                    if (zero) {
                        // All zeroes: keep no array for them.
                        b.data = null;
                    }
                    b.dirty = false;
                    b.urgent = false;
                    blocks.remove(b.index, b);
                }
                progressNanos = System.nanoTime();
            } else {
                failed(b, failure);
            }
            recharge(b);
            recountFull(b);
        } finally {
            b.lock.unlock();
        }
        signalProgress();
    }

    /**
     * Records that an upload of {@code b} could not begin: the GET that completes a partial block failed.
     * The block stays dirty and partial, its bytes written kept, and is retried after a backoff.
     */
    void completionFailed(Block b, StoreException failure) {
        b.lock.lock();
        try {
            failed(b, failure);
        } finally {
            b.lock.unlock();
        }
        signalProgress();
    }

    /** Counts a failure of {@code b}'s upload for the backoff and the barriers. Under {@code b}'s lock. */
    private static void failed(Block b, StoreException failure) {
        b.failures++;
        b.retryAtNanos = System.nanoTime() + backoffNanos(b.failures);
        if (failure.retryable()) {
            b.permanentFailure = null;
        } else {
            b.permanentFailureNanos = System.nanoTime();
            b.permanentFailure = failure;
        }
    }

    /** 50 ms doubling per failure in a row, at most 1 s; a new FLUSH or FUA tries again at once regardless. */
    private static long backoffNanos(int failures) {
        return TimeUnit.MILLISECONDS.toNanos(Math.min(1000, 50L << Math.min(5, failures - 1)));
    }

    /** What an upload stores: the block's version and bytes ({@code null}: zeroes) when it began. */
    record Snapshot(long version, byte @Nullable [] data) {}

    void signalProgress() {
        synchronized (progress) {
            progress.notifyAll();
        }
    }

    /** Waits while the dirty bound is reached, waking the writeback; throws at the deadline. */
    void awaitRoom(long deadline) throws IOException {
        if (roomLeft()) {
            return;
        }
        stats.dirtyWaits.increment();
        synchronized (progress) {
            roomWaiters++;
            try {
                while (!roomLeft()) {
                    wakeWriteback.run();
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        throw new IOException("s3 export " + exportName + ": timed out waiting for dirty blocks to be"
                                + " uploaded (" + bytes.get() + " bytes dirty, s3.max-dirty " + maxDirty + ")");
                    }
                    waitForProgress(left);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted waiting for room under s3.max-dirty");
            } finally {
                roomWaiters--;
            }
        }
    }

    /**
     * Waits while the streaming window is full and uploads make progress (see the class), waking the
     * writeback; returns at once when uploads have stalled, and after {@link #STALL_NANOS} or at the
     * deadline in any case (the dirty bound and its timeout are {@link #awaitRoom}'s).
     */
    void awaitStream(long deadline) throws InterruptedIOException {
        if (fullBacklog.get() < streamWindow) {
            return;
        }
        long start = System.nanoTime();
        stats.streamWaits.increment();
        synchronized (progress) {
            try {
                while (fullBacklog.get() >= streamWindow) {
                    long now = System.nanoTime();
                    if (now - progressNanos > STALL_NANOS || now - start > STALL_NANOS || deadline - now <= 0) {
                        return;
                    }
                    wakeWriteback.run();
                    waitForProgress(deadline - now);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted waiting for the streaming window");
            }
        }
    }

    /** Waits on {@link #progress}, whose monitor the caller holds, for at most a tick or {@code nanosLeft}. */
    private void waitForProgress(long nanosLeft) throws InterruptedException {
        progress.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(nanosLeft), 100)));
    }

    private boolean roomLeft() {
        return bytes.get() < maxDirty && blocks.size() < MAX_DIRTY_BLOCKS;
    }

    @Override
    public String toString() {
        return "DirtyBlocks[" + blocks.size() + " blocks, " + bytes.get() + " bytes of " + maxDirty + "]";
    }
}
