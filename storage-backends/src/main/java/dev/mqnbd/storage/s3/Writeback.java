// Over 400 lines on purpose: the upload loop, its batching and the bookkeeping of each upload (completing a partial
// block included) read best together.
package dev.mqnbd.storage.s3;

import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * Uploads an S3 export's dirty blocks in the background, at most {@code s3.uploads} requests at once.
 *
 * <p><b>When a block is uploaded.</b> A loop wakes every 100 ms, or when woken, and starts uploads for
 * dirty blocks that are
 *
 * <ul>
 *   <li>urgent: a FLUSH or FUA waits for them, or the export is closing;
 *   <li>full: written whole since their last upload began, as a sequential writer leaves them, so a 256
 *       MiB sequential write in 1 MiB blocks costs about 256 PUTs, each as soon as its block is done;
 *   <li>old: dirty for {@code s3.writeback-age} (30 s by default, the kernel's {@code
 *       dirty_expire_centisecs}) or more. Until then a block that random writes keep hitting collects
 *       them all in one PUT;
 *   <li>zero: their object is to be deleted, which costs no upload bandwidth (batched, up to 1000 keys
 *       per request);
 *   <li>or, under pressure (dirty data past three quarters of {@code s3.max-dirty}, or a writer
 *       waiting), the oldest, until what is left is under five eighths of it. Random writes over more
 *       blocks than the bound holds cost a PUT for most blocks they add, so the bound is best as large
 *       as the blocks such a writer touches.
 * </ul>
 *
 * A partial block (see {@link Block}) is completed first: one GET of its stored object, merged under
 * the bytes written ({@link BlockCache#complete}). If that GET fails, the block stays dirty and partial
 * and is retried like a failed PUT; a FLUSH or FUA waiting for it fails with EIO when its time runs out,
 * and nothing written is lost.
 *
 * <p><b>An upload</b> pins the block, snapshots its bytes and version under its lock ({@link
 * DirtyBlocks#beginUpload}), then without the lock either PUTs the bytes (with their CRC32C as user
 * metadata; the store checks them, see {@link SdkObjectStore}), or, when they are all zeroes, DELETEs the object, or does nothing when the
 * object is known not to exist. A PUT first settles with a recorded trim that covers the block ({@link
 * Trims#beforePut}), so the trim's background delete never removes the new data. Then {@link DirtyBlocks#finishUpload} raises the block's stored version,
 * or leaves it dirty to be retried after a backoff (50 ms doubling to 1 s; a FLUSH or FUA waiting for
 * it asks for one attempt at once). No upload starts while the write lease is not valid (lapsed or lost);
 * a lapsed lease that is renewed again wakes the loop. One block is
 * never uploaded twice at once, so its PUTs reach the store in order. The first failure of a run is
 * logged as a warning, and the recovery after it.
 *
 * <p><b>Ownership:</b> the {@link S3Export} owns the writeback and closes it after {@link #drain}.
 *
 * <p><b>Threading:</b> one loop thread; each upload on a virtual thread of its own while it holds a
 * permit; {@link #wake} from anywhere.
 */
final class Writeback implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Writeback.class.getName());

    private static final long TICK_MILLIS = Wakeup.TICK_MILLIS;
    private static final int MAX_BATCH = 1000;

    private final String exportName;
    private final ObjectNames names;
    private final ObjectStore store;
    private final BlockCache cache;
    private final Trims trims;
    private final S3Stats stats;
    private final Lease lease;
    private final Duration timeout;
    private final long maxDirty;
    private final long ageNanos;
    private final int uploads;
    private final Semaphore permits;
    private final AtomicLong uploadingBytes = new AtomicLong();
    private final AtomicLong storedBlocks = new AtomicLong();
    private final AtomicBoolean failing = new AtomicBoolean();
    private final Wakeup wakeup = new Wakeup();
    private final Thread loop;

    private volatile boolean closing;
    private volatile @Nullable String lastFailure;

    Writeback(
            String exportName,
            ObjectNames names,
            ObjectStore store,
            BlockCache cache,
            Trims trims,
            S3Stats stats,
            Lease lease,
            S3Settings settings) {
        this.exportName = exportName;
        this.names = names;
        this.store = store;
        this.cache = cache;
        this.trims = trims;
        this.stats = stats;
        this.lease = lease;
        this.timeout = settings.timeout();
        this.maxDirty = settings.maxDirtyBytes();
        this.ageNanos = settings.writebackAge().toNanos();
        this.uploads = settings.uploads();
        this.permits = new Semaphore(uploads);
        cache.dirty.wakeWritebackWith(this::wake);
        this.loop = Thread.ofVirtual().name("mqnbd-s3-writeback-" + exportName).start(this::run);
    }

    /** Asks the loop to look at the dirty blocks now. */
    void wake() {
        wakeup.wake();
    }

    /** Returns the number of block uploads and deletes that succeeded. */
    long storedBlocks() {
        return storedBlocks.get();
    }

    /** Returns {@code "; last upload failure: ..."} when uploads are failing, else an empty string. */
    String lastFailureHint() {
        String failure = lastFailure;
        return failing.get() && failure != null ? "; last upload failure: " + failure : "";
    }

    /**
     * Uploads every dirty block and waits until none is left, giving up when no block was stored for
     * {@code s3.timeout} (or at once when the lease is lost). A lapsed lease is waited for like a store
     * that makes no progress: renewal goes on meanwhile, and once it succeeds the uploads resume.
     *
     * @return the number of blocks that could not be stored (the export saves them to a rescue file)
     */
    int drain() {
        closing = true;
        long lastStored = -1;
        int lastLeft = Integer.MAX_VALUE;
        long progressAt = System.nanoTime();
        for (; ; ) {
            int left = cache.dirty.count();
            if (left == 0) {
                return 0;
            }
            if (lease.lost()) {
                return left;
            }
            long stored = storedBlocks.get();
            long now = System.nanoTime();
            if (stored != lastStored || left < lastLeft) {
                lastStored = stored;
                lastLeft = left;
                progressAt = now;
            } else if (now - progressAt > timeout.toNanos() + TimeUnit.SECONDS.toNanos(1)) {
                return left;
            }
            wake();
            synchronized (cache.dirty.progress) {
                try {
                    cache.dirty.progress.wait(TICK_MILLIS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return cache.dirty.count();
                }
            }
        }
    }

    /** Stops the loop and waits (up to {@code s3.timeout}) for uploads in flight to end. */
    @Override
    public void close() {
        wakeup.stop();
        try {
            loop.join();
            if (permits.tryAcquire(uploads, timeout.toMillis() + 1000, TimeUnit.MILLISECONDS)) {
                permits.release(uploads);
            } else {
                LOG.log(Level.WARNING, "s3 export " + exportName + ": uploads still in flight at close");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void run() {
        while (wakeup.await()) {
            try {
                round();
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "s3 export " + exportName + ": writeback round failed", e);
            }
        }
    }

    /** Picks the blocks to upload now and starts their uploads while permits last. */
    private void round() {
        if (cache.dirty.count() == 0 || !lease.valid()) {
            // Without a valid lease nothing is uploaded; renewal wakes the loop once it is valid again.
            return;
        }
        long now = System.nanoTime();
        boolean pressure =
                cache.dirty.bytes() - uploadingBytes.get() > cache.dirty.pressure() || cache.dirty.roomWaiters() > 0;
        List<Block> due = new ArrayList<>();
        List<Block> zeroes = new ArrayList<>();
        List<Block> optional = new ArrayList<>();
        for (Block b : cache.dirty.blocks()) {
            if (b.uploading || b.queued || now - b.retryAtNanos < 0) {
                continue;
            }
            if (b.charged == 0) {
                zeroes.add(b);
            } else if (closing || b.urgent || b.full || now - b.dirtySinceNanos >= ageNanos) {
                due.add(b);
            } else if (pressure) {
                optional.add(b);
            }
        }
        if (pressure && !optional.isEmpty()) {
            optional.sort(Comparator.comparingLong(b -> b.dirtySinceNanos));
            long excess =
                    cache.dirty.bytes() - uploadingBytes.get() - (long) due.size() * cache.blockSize - maxDirty / 8 * 5;
            for (Block b : optional) {
                if (excess <= 0) {
                    break;
                }
                due.add(b);
                excess -= cache.blockSize;
            }
        }
        for (int i = 0; i < zeroes.size(); i += MAX_BATCH) {
            if (!start(zeroes.subList(i, Math.min(zeroes.size(), i + MAX_BATCH)), 0)) {
                return;
            }
        }
        for (Block b : due) {
            if (!start(List.of(b), cache.blockSize)) {
                return;
            }
        }
    }

    /** Starts one upload task for {@code blocks}; returns false when no permit came within a tick. */
    private boolean start(List<Block> blocks, long bytes) {
        try {
            if (!permits.tryAcquire(TICK_MILLIS, TimeUnit.MILLISECONDS)) {
                return false;
            }
        } catch (InterruptedException e) {
            return false;
        }
        List<Block> batch = List.copyOf(blocks);
        for (Block b : batch) {
            // INVARIANT: cleared by the task once the upload began (or was found unneeded), so the next
            // round does not start a second task for the block meanwhile.
            b.queued = true;
        }
        uploadingBytes.addAndGet(bytes);
        Thread.ofVirtual().name("mqnbd-s3-upload-" + exportName).start(() -> {
            try {
                upload(batch);
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "s3 export " + exportName + ": upload task failed", e);
            } finally {
                for (Block b : batch) {
                    b.queued = false;
                }
                uploadingBytes.addAndGet(-bytes);
                permits.release();
                wake();
            }
        });
        return true;
    }

    /** Uploads each block of {@code batch}; zero blocks are deleted together. */
    private void upload(List<Block> batch) {
        List<Block> deletes = new ArrayList<>();
        List<DirtyBlocks.Snapshot> deleteSnaps = new ArrayList<>();
        for (Block b : batch) {
            Block pinned = cache.pin(b.index);
            if (pinned != b) {
                // Cleaned and forgotten since it was picked; nothing to do.
                b.queued = false;
                cache.unpin(pinned);
                continue;
            }
            StoreException incomplete = complete(b);
            if (incomplete != null) {
                b.queued = false;
                cache.dirty.completionFailed(b, incomplete);
                cache.unpin(b);
                outcome(incomplete);
                continue;
            }
            DirtyBlocks.Snapshot snap = cache.dirty.beginUpload(b);
            b.queued = false;
            if (snap == null) {
                cache.unpin(b);
                continue;
            }
            boolean zero = snap.data() == null || Bytes.isZero(snap.data());
            if (zero && !cache.map.mayExist(b.index)) {
                // Zeroes where no object exists: stored as it is.
                cache.dirty.finishUpload(b, snap, true, null);
                cache.unpin(b);
            } else if (zero) {
                deletes.add(b);
                deleteSnaps.add(snap);
            } else {
                StoreException failure = put(b, Objects.requireNonNull(snap.data()));
                if (failure == null) {
                    storedBlocks.incrementAndGet();
                }
                cache.dirty.finishUpload(b, snap, false, failure);
                cache.unpin(b);
                outcome(failure);
            }
        }
        if (!deletes.isEmpty()) {
            StoreException failure = delete(deletes);
            if (failure == null) {
                storedBlocks.addAndGet(deletes.size());
            }
            for (int i = 0; i < deletes.size(); i++) {
                cache.dirty.finishUpload(deletes.get(i), deleteSnaps.get(i), true, failure);
                cache.unpin(deletes.get(i));
            }
            outcome(failure);
        }
    }

    /** Completes {@code b} if it is partial; returns why that failed, or {@code null}. */
    private @Nullable StoreException complete(Block b) {
        try {
            cache.complete(b, System.nanoTime() + timeout.toNanos());
            return null;
        } catch (StoreException e) {
            stats.uploadFailures.increment();
            return e;
        } catch (RuntimeException e) {
            return bug("completing block " + b.index, e);
        }
    }

    /** A bug below us: counted and logged as a failed upload, retried like one. */
    private StoreException bug(String what, RuntimeException e) {
        stats.uploadFailures.increment();
        LOG.log(Level.ERROR, "s3 export " + exportName + ": " + what + " threw", e);
        return new StoreException(what + " threw " + e, 0, true, e);
    }

    private @Nullable StoreException put(Block b, byte[] data) {
        if (!lease.valid()) {
            return new StoreException(lease.invalidReason(), 0, !lease.lost());
        }
        try {
            // A recorded trim's background delete of this block must not remove the new data.
            trims.beforePut(b.index, timeout);
            // INVARIANT: the bit is set before the PUT, so a PUT whose reply is lost still counts as stored.
            cache.map.set(b.index);
            stats.puts.increment();
            stats.bytesUp.add(data.length);
            store.put(names.block(b.index), data, Map.of(BlockCache.CRC_KEY, Bytes.crc32c(data)), timeout);
            return null;
        } catch (StoreException e) {
            stats.uploadFailures.increment();
            return e;
        } catch (RuntimeException e) {
            // A bug below us must not leave the block marked as uploading for ever.
            return bug("PUT of block " + b.index, e);
        }
    }

    private @Nullable StoreException delete(List<Block> blocks) {
        if (!lease.valid()) {
            return new StoreException(lease.invalidReason(), 0, !lease.lost());
        }
        stats.deleteRequests.increment();
        stats.deletes.add(blocks.size());
        try {
            if (blocks.size() == 1) {
                store.delete(names.block(blocks.getFirst().index), timeout);
            } else {
                List<String> keys = new ArrayList<>(blocks.size());
                for (Block b : blocks) {
                    keys.add(names.block(b.index));
                }
                store.deleteAll(keys, timeout);
            }
        } catch (StoreException e) {
            stats.uploadFailures.increment();
            return e;
        } catch (RuntimeException e) {
            return bug("DELETE of " + blocks.size() + " blocks", e);
        }
        for (Block b : blocks) {
            cache.map.clear(b.index);
        }
        return null;
    }

    /** Logs the first failure of a run of failures, and the recovery after it. */
    private void outcome(@Nullable StoreException failure) {
        if (failure == null) {
            if (failing.compareAndSet(true, false)) {
                LOG.log(Level.INFO, "s3 export " + exportName + ": uploads to " + store.describe() + " succeed again");
            }
            return;
        }
        lastFailure = failure.getMessage();
        if (failing.compareAndSet(false, true)) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + ": upload failed (" + failure.getMessage() + "); the"
                            + " block stays dirty and is retried; FLUSH and FUA fail with EIO if it is not stored in time");
        } else {
            LOG.log(Level.DEBUG, () -> "s3 export " + exportName + ": upload failed again: " + failure.getMessage());
        }
    }
}
