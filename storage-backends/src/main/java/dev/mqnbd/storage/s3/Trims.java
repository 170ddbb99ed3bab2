package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * Large trims of an S3 export, answered before their objects are deleted: a DISCARD or WRITE_ZEROES that
 * covers at least {@link #MIN_BLOCKS} whole blocks that may exist writes a {@link Tombstone} (one small
 * object) before it is answered, and this class deletes the covered objects in the background. Smaller
 * trims keep the plain path: their blocks become dirty zero blocks the {@link Writeback} deletes.
 *
 * <p><b>Reads.</b> A tombstoned block's {@link BlockMap} bit is cleared when it is trimmed, so it reads
 * as zeroes without a GET while its stale object waits for deletion; its bit in {@code pending} says
 * the object is to be deleted.
 *
 * <p><b>Newer data wins.</b> Before an upload PUTs a block ({@link #beforePut}), the block is recorded
 * as kept in every tombstone that covers it (the tombstone object is rewritten first, so a restart does
 * not delete it), and its pending delete is claimed: the background deleter only deletes the blocks it
 * claimed itself, under the same lock, and a PUT of a block in a DELETE in flight waits for that DELETE
 * to end. So no DELETE of a trim ever reaches the store after a later PUT of its block. Blocks in memory
 * with changes not yet stored, or with an upload in flight, take the plain path instead, ordered after
 * their upload by the writeback.
 *
 * <p><b>Restart.</b> {@link #load} reads the tombstones left by an earlier server, treats the blocks
 * they cover (except those they keep) as zeroes and, when writable, resumes their deletes; a tombstone
 * is deleted once every block of its range is.
 *
 * <p><b>Lease.</b> Only the lease holder deletes: the deleter does nothing while the lease is not valid.
 *
 * <p><b>Threading:</b> one deleter thread (virtual); the other methods from request and upload threads.
 */
final class Trims implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Trims.class.getName());

    /** Whole blocks that may exist from which a trim is recorded and its deletes run in the background. */
    static final int MIN_BLOCKS = 64;

    private static final int MAX_BATCH = 1000;
    private static final long[] NONE = new long[0];

    private final String exportName;
    private final ObjectNames names;
    private final ObjectStore store;
    private final S3Stats stats;
    private final Duration timeout;
    private final BlockMap pending;
    private final List<Tombstone> active = new CopyOnWriteArrayList<>();
    private final AtomicLong nextSeq = new AtomicLong();
    private final Object claims = new Object();
    private final Wakeup wakeup = new Wakeup();

    // Guarded by claims: the sorted blocks of the DELETE in flight.
    private long[] inFlight = NONE;

    private @Nullable Thread deleter;
    private boolean failing;

    private Trims(
            String exportName, ObjectNames names, ObjectStore store, S3Stats stats, long blocks, Duration timeout) {
        this.exportName = exportName;
        this.names = names;
        this.store = store;
        this.stats = stats;
        this.timeout = timeout;
        this.pending = new BlockMap(blocks);
    }

    /** Returns the trims of a new export: none. */
    static Trims none(
            String exportName, ObjectNames names, ObjectStore store, S3Stats stats, long blocks, Duration timeout) {
        return new Trims(exportName, names, store, stats, blocks, timeout);
    }

    /**
     * Reads the export's tombstones and applies them to {@code map}: the blocks they cover and do not keep
     * read as zeroes from now on, and their objects are to be deleted once {@link #start} runs.
     *
     * @throws IOException if a tombstone cannot be read or is damaged
     */
    static Trims load(
            String exportName,
            ObjectNames names,
            ObjectStore store,
            S3Stats stats,
            ExportMetadata meta,
            BlockMap map,
            Duration timeout)
            throws IOException {
        Trims trims = new Trims(exportName, names, store, stats, meta.blockCount(), timeout);
        List<String> keys = new ArrayList<>();
        store.list(names.trims(), keys::add, timeout);
        long maxSeq = -1;
        for (String key : keys) {
            long seq = names.trimSeq(key);
            ObjectStore.StoredObject object = seq < 0 ? null : store.get(key, timeout);
            if (object == null) {
                continue;
            }
            Tombstone t = Tombstone.parse("s3://" + names.bucket() + "/" + key, object.data(), meta.blockCount());
            t.stored();
            for (long i = map.nextSet(t.first, t.end); i < t.end; i = map.nextSet(i + 1, t.end)) {
                if (!t.keeps(i)) {
                    map.clear(i);
                    trims.pending.set(i);
                }
            }
            trims.active.add(t);
            maxSeq = Math.max(maxSeq, t.seq);
        }
        trims.nextSeq.set(maxSeq + 1);
        if (!trims.active.isEmpty()) {
            LOG.log(
                    Level.INFO,
                    "s3 export " + exportName + ": " + trims.active.size() + " trims recorded in " + names.trims()
                            + " still have " + trims.pending.count() + " block objects to delete; they read as"
                            + " zeroes");
        }
        return trims;
    }

    /** Starts deleting in the background while {@code lease} is valid (a writable export). */
    void start(Lease lease) {
        deleter = Thread.ofVirtual().name("mqnbd-s3-trims-" + exportName).start(() -> run(lease));
    }

    /** Returns the number of block objects still to delete, those of the DELETE in flight included. */
    long pendingBlocks() {
        synchronized (claims) {
            return pending.count() + inFlight.length;
        }
    }

    /** Returns the number of tombstones not yet removed. */
    int tombstones() {
        return active.size();
    }

    /* --------------- the trim --------------- */

    /** Begins a recorded trim of blocks {@code [first, end)}; blocks are then {@link #mark}ed, then {@link #commit}. */
    Tombstone begin(long first, long end) {
        Tombstone t = new Tombstone(nextSeq.getAndIncrement(), first, end, Instant.now());
        // INVARIANT: active before any block is marked, so every later upload of a marked block keeps it.
        active.add(t);
        return t;
    }

    /** Records that block {@code index}'s object is stale and to be deleted; its map bit is already clear. */
    void mark(long index) {
        pending.set(index);
    }

    /** Writes the tombstone (before the trim is answered) and lets the deleter finish it. */
    void commit(Tombstone t, Duration timeout) throws StoreException {
        t.ready = true;
        try {
            t.persist(store, names, t.changes(), timeout);
        } finally {
            wake();
        }
    }

    /* --------------- uploads --------------- */

    /**
     * Makes a PUT of block {@code index} safe: records it as kept in every tombstone covering it (durably),
     * and claims its pending delete, or waits for the DELETE in flight that covers it.
     *
     * @throws StoreException if a tombstone could not be rewritten or the DELETE did not end in time
     */
    void beforePut(long index, Duration timeout) throws StoreException {
        long deadline = System.nanoTime() + timeout.toNanos();
        for (Tombstone t : active) {
            if (t.covers(index) && !t.removed()) {
                t.persist(store, names, t.keep(index), left(deadline, index));
            }
        }
        synchronized (claims) {
            for (; ; ) {
                if (pending.mayExist(index)) {
                    pending.clear(index);
                    return;
                }
                if (Arrays.binarySearch(inFlight, index) < 0) {
                    return;
                }
                try {
                    claims.wait(Math.max(
                            1,
                            TimeUnit.NANOSECONDS.toMillis(left(deadline, index).toNanos())));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new StoreException("interrupted waiting for the trim of block " + index, 0, true);
                }
            }
        }
    }

    private static Duration left(long deadline, long index) throws StoreException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new StoreException(
                    "timed out waiting for the background delete of trimmed block " + index + " to end", 0, true);
        }
        return Duration.ofNanos(left);
    }

    /* --------------- the deleter --------------- */

    void wake() {
        wakeup.wake();
    }

    private void run(Lease lease) {
        while (wakeup.await()) {
            try {
                for (Tombstone t : active) {
                    if (!lease.valid() || !finish(t, lease)) {
                        break;
                    }
                }
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "s3 export " + exportName + ": background delete of trimmed blocks failed", e);
            }
        }
    }

    /** Deletes what is left of {@code t}, then the tombstone; returns false after a failure or when stopping. */
    private boolean finish(Tombstone t, Lease lease) {
        for (; ; ) {
            if (stopping() || !lease.valid()) {
                return false;
            }
            long[] batch = claim(t);
            if (batch.length == 0) {
                break;
            }
            if (!delete(batch)) {
                return false;
            }
        }
        if (!t.ready) {
            return true;
        }
        try {
            t.remove(store, names, timeout);
            active.remove(t);
            LOG.log(Level.DEBUG, () -> "s3 export " + exportName + ": trim " + t.seq + " done; its record is deleted");
            return true;
        } catch (StoreException e) {
            failed(e);
            return false;
        }
    }

    /** Claims up to {@link #MAX_BATCH} pending blocks of {@code t}: from here only this DELETE removes them. */
    private long[] claim(Tombstone t) {
        synchronized (claims) {
            long[] batch = new long[MAX_BATCH];
            int n = 0;
            for (long i = pending.nextSet(t.first, t.end);
                    i < t.end && n < MAX_BATCH;
                    i = pending.nextSet(i + 1, t.end)) {
                pending.clear(i);
                batch[n++] = i;
            }
            inFlight = n == 0 ? NONE : Arrays.copyOf(batch, n);
            return inFlight;
        }
    }

    /** Deletes the claimed {@code batch}; on failure its blocks are pending again. Ends the claim either way. */
    private boolean delete(long[] batch) {
        StoreException failure = null;
        stats.deleteRequests.increment();
        stats.deletes.add(batch.length);
        try {
            if (batch.length == 1) {
                store.delete(names.block(batch[0]), timeout);
            } else {
                List<String> keys = new ArrayList<>(batch.length);
                for (long i : batch) {
                    keys.add(names.block(i));
                }
                store.deleteAll(keys, timeout);
            }
        } catch (StoreException e) {
            failure = e;
        } catch (RuntimeException e) {
            failure = new StoreException("DELETE of " + batch.length + " trimmed blocks threw " + e, 0, true, e);
        }
        synchronized (claims) {
            if (failure != null) {
                for (long i : batch) {
                    pending.set(i);
                }
            }
            inFlight = NONE;
            claims.notifyAll();
        }
        if (failure != null) {
            stats.uploadFailures.increment();
            failed(failure);
            return false;
        }
        if (failing) {
            failing = false;
            LOG.log(Level.INFO, "s3 export " + exportName + ": deletes of trimmed blocks succeed again");
        }
        return true;
    }

    private void failed(StoreException e) {
        if (!failing) {
            failing = true;
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + ": background delete of trimmed blocks failed (" + e.getMessage()
                            + "); retried; the blocks read as zeroes meanwhile");
        }
    }

    private boolean stopping() {
        return wakeup.stopped();
    }

    /** Stops the deleter, waiting (up to {@code s3.timeout}) for its DELETE in flight; tombstones stay for the next open. */
    @Override
    public void close() {
        wakeup.stop();
        Thread t = deleter;
        if (t != null) {
            try {
                if (!t.join(timeout.plusSeconds(1))) {
                    LOG.log(
                            Level.WARNING,
                            "s3 export " + exportName + ": a delete of trimmed blocks was still in flight at close");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        long left = pendingBlocks();
        if (left > 0) {
            LOG.log(
                    Level.INFO,
                    "s3 export " + exportName + ": " + left + " trimmed block objects are not deleted yet; the trim"
                            + " records in " + names.trims()
                            + " have the next server that opens the export delete them");
        }
    }
}
