package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.Sizes;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * One open S3 export: its store, metadata, write lease, block cache and writeback, shared by every
 * hardware context. It is the per-queue data {@code Q} and the tag-set data {@code T} of {@link
 * S3BlockDevice}. {@link ExportOpener} opens it.
 *
 * <p><b>Ownership:</b> the export's {@link dev.mqnbd.mq.BlockQueue} owns it and closes it last, after
 * every request ended: the close uploads every dirty block (and logs how many), stops the writeback and
 * the background deletes of recorded trims (their tombstones have the next server finish them),
 * releases the lease and the shared SDK client. Dirty blocks that cannot be stored (the lease went to
 * another server, or the store stayed down through the close) are saved to a {@link Rescue} file.
 *
 * <p><b>Threading:</b> safe for use from every hardware context and every request thread.
 */
public final class S3Export implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(S3Export.class.getName());

    private final String name;
    private final ObjectNames names;
    private final ObjectStore store;
    private final S3Settings settings;
    private final ExportMetadata metadata;
    private final boolean readOnly;
    private final @Nullable Lease lease;
    private final S3Stats stats;
    final BlockCache cache;
    final @Nullable Writeback writeback;
    final Trims trims;
    private final ThreadFactory threads;
    private final Semaphore prefetches;
    private final Object rescueLock = new Object();

    // Guarded by rescueLock.
    private Rescue.@Nullable Saved rescued;

    // Totals of the contexts that have exited; guarded by this.
    private long reads;
    private long writes;
    private long fuaWrites;
    private long flushes;
    private long zeroings;
    private long errors;
    private boolean closed;

    /**
     * Assembles an opened export and starts its writeback (when writable).
     *
     * <p><b>Ownership:</b> takes over {@code store} and {@code lease} ({@code null} when read-only);
     * {@code stats} are the counters {@code store} already counts its requests in.
     */
    S3Export(
            String name,
            ObjectNames names,
            ObjectStore store,
            S3Settings settings,
            ExportMetadata metadata,
            BlockMap map,
            Trims trims,
            @Nullable Lease lease,
            boolean readOnly,
            S3Stats stats) {
        this.name = name;
        this.names = names;
        this.store = store;
        this.settings = settings;
        this.metadata = metadata;
        this.readOnly = readOnly;
        this.lease = lease;
        this.stats = stats;
        this.cache = new BlockCache(name, names, store, stats, metadata, map, settings);
        this.trims = trims;
        this.writeback = readOnly
                ? null
                : new Writeback(name, names, store, cache, trims, stats, Objects.requireNonNull(lease), settings);
        if (!readOnly) {
            trims.start(Objects.requireNonNull(lease));
        }
        if (lease != null) {
            Writeback wb = Objects.requireNonNull(writeback);
            lease.listen(
                    () -> {
                        wb.wake();
                        trims.wake();
                    },
                    () -> rescue("its write lease went to another server (" + lease.invalidReason()
                            + "), so they can never be stored there"));
        }
        this.threads = Thread.ofVirtual().name("mqnbd-s3-" + name + "-", 0).factory();
        this.prefetches = new Semaphore(Math.max(1, Math.max(settings.readAhead(), settings.uploads())));
    }

    /** Returns the export's name, used in logs and thread names. */
    public String name() {
        return name;
    }

    /** Returns where the export is: {@code s3://BUCKET/PREFIX}. */
    public String url() {
        return names.url();
    }

    /** Returns the size in bytes, from the metadata. */
    public long capacity() {
        return metadata.size();
    }

    /** Returns the size of each block object, from the metadata. */
    public int blockSize() {
        return metadata.blockSize();
    }

    /** Returns whether the export was opened read-only (without a lease). */
    public boolean readOnly() {
        return readOnly;
    }

    /** Returns the settings it was opened with. */
    public S3Settings settings() {
        return settings;
    }

    /** Returns the store request and cache counters. */
    public S3Stats stats() {
        return stats;
    }

    /** Returns the holder string of this server's write lease; empty when read-only. */
    public Optional<String> leaseHolder() {
        return lease == null ? Optional.empty() : Optional.of(lease.holder());
    }

    /** Returns whether writes are accepted: writable, with a valid lease. */
    public boolean writable() {
        return lease != null && lease.valid();
    }

    /** Returns how many times the write lease was renewed; 0 when read-only. */
    public long leaseRenewals() {
        return lease == null ? 0 : lease.renewals();
    }

    /** Returns how many attempts to renew the write lease failed (each is retried); 0 when read-only. */
    public long leaseRenewalFailures() {
        return lease == null ? 0 : lease.renewalFailures();
    }

    /** Returns whether another server took the write lease (for good, unlike a lapse); false when read-only. */
    public boolean leaseLost() {
        return lease != null && lease.lost();
    }

    /** Returns the bytes of written data not yet stored. */
    public long dirtyBytes() {
        return cache.dirty.bytes();
    }

    /** Returns the number of blocks with changes not yet stored (zeroed blocks included). */
    public int dirtyBlocks() {
        return cache.dirty.count();
    }

    /** Returns the number of trimmed block objects not deleted yet (they read as zeroes). */
    public long pendingTrimDeletes() {
        return trims.pendingBlocks();
    }

    /** Returns the bytes of clean blocks held in the cache. */
    public long cachedBytes() {
        return cache.cachedBytes();
    }

    ObjectNames names() {
        return names;
    }

    ObjectStore store() {
        return store;
    }

    @Nullable
    Lease lease() {
        return lease;
    }

    /** Throws when this server may not write: read-only, or the lease is lost. */
    void checkWritable() throws IOException {
        if (lease == null) {
            throw new IOException("s3 export " + name + " is read-only");
        }
        if (!lease.valid()) {
            throw new IOException("s3 export " + name + " refuses writes: " + lease.invalidReason());
        }
    }

    /** Waits until every block dirty now is stored (a FLUSH), or throws at {@code deadline}. */
    void flush(long deadline) throws IOException {
        checkWritable();
        stats.flushBarriers.increment();
        Barrier.ofDirty(cache).await(cache, Objects.requireNonNull(writeback), Objects.requireNonNull(lease), deadline);
    }

    /** Waits until the blocks {@code touched} recorded are stored at their versions (a FUA), or throws. */
    void awaitStored(Barrier.Builder touched, long deadline) throws IOException {
        touched.build().await(cache, Objects.requireNonNull(writeback), Objects.requireNonNull(lease), deadline);
    }

    /** Starts a request's thread. */
    void start(Runnable task) {
        threads.newThread(task).start();
    }

    /**
     * Starts fetching blocks {@code [from, to)} that may exist and are not in memory, in the background,
     * as far as prefetch permits last; never blocks (called on the event loop).
     */
    void prefetch(long from, long to) {
        for (long i = from; i < to; i++) {
            if (!cache.map.mayExist(i) || cache.resident(i)) {
                continue;
            }
            if (!prefetches.tryAcquire()) {
                return;
            }
            long index = i;
            long deadline = System.nanoTime() + settings.timeout().toNanos();
            start(() -> {
                try {
                    cache.fetchAhead(index, deadline);
                } catch (IOException e) {
                    LOG.log(
                            Level.DEBUG,
                            () -> "s3 export " + name + ": read-ahead of block " + index + " failed: "
                                    + e.getMessage());
                } finally {
                    prefetches.release();
                }
            });
        }
    }

    /** Adds an exiting context's counters to the export's totals. */
    synchronized void addTotals(S3HwData hw) {
        reads += hw.reads();
        writes += hw.writes();
        fuaWrites += hw.fuaWrites();
        flushes += hw.flushes();
        zeroings += hw.zeroings();
        errors += hw.errors();
    }

    /**
     * Uploads every dirty block (giving up only when the store makes no progress for {@code s3.timeout}),
     * logs how many were written, stops the writeback, releases the lease and the SDK client, and logs the
     * totals. A second call does nothing.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        boolean release = true;
        try {
            if (writeback != null) {
                Lease held = Objects.requireNonNull(lease);
                int dirtyAtClose = cache.dirty.count();
                long start = System.nanoTime();
                long storedBefore = writeback.storedBlocks();
                int left = writeback.drain();
                long written = writeback.storedBlocks() - storedBefore;
                writeback.close();
                trims.close();
                if (left > 0) {
                    // Keep the lease: the store does not hold the export's last state (a restart here takes
                    // the lease over at once; another server waits for it to expire).
                    release = false;
                    rescue("closing with " + left + " of " + dirtyAtClose + " dirty blocks not stored ("
                            + (held.valid()
                                    ? "the store made no progress for s3.timeout" + writeback.lastFailureHint()
                                    : held.invalidReason())
                            + ")");
                } else {
                    LOG.log(
                            Level.INFO,
                            "s3 export " + name + ": wrote " + written + " dirty blocks to " + names
                                    + " on close (" + dirtyAtClose + " were dirty) in "
                                    + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start)
                                    + " ms; everything written"
                                    + " is stored");
                }
            }
        } finally {
            if (lease != null) {
                lease.close(release);
            }
            store.close();
        }
        LOG.log(
                Level.INFO,
                "s3 export " + name + " (" + names + "): " + writes + " writes (" + fuaWrites + " with FUA), "
                        + reads + " reads, " + flushes + " flushes, " + zeroings + " trims and zeroings, " + errors
                        + " errors; "
                        + stats);
    }

    /**
     * Saves the dirty blocks to a rescue file unless a rescue file already holds them all as they are now,
     * and logs where, or, if they cannot be saved either, that their last writes are lost. Runs on the
     * lease's thread when the lease is lost, and on close.
     */
    private void rescue(String why) {
        synchronized (rescueLock) {
            Rescue.Saved before = rescued;
            int count = cache.dirty.count();
            if (count == 0 || (before != null && Rescue.covers(before, cache))) {
                return;
            }
            try {
                Rescue.Saved saved = Rescue.save(
                        settings.rescueDir(),
                        name,
                        names,
                        cache,
                        why,
                        Objects.requireNonNull(lease).holder());
                rescued = saved;
                LOG.log(
                        Level.ERROR,
                        "s3 export " + name + ": " + why + ": saved " + saved.blocks() + " dirty blocks that are not"
                                + " stored in " + names + " to the rescue file " + saved.index() + " (with "
                                + saved.index().getFileName().toString().replace(".txt", ".blocks")
                                + "); nothing acknowledged is lost: apply them with the dd commands in it");
            } catch (IOException | RuntimeException e) {
                LOG.log(
                        Level.ERROR,
                        "s3 export " + name + ": " + why + ": " + count + " dirty blocks are not stored in " + names
                                + " and could not be saved to a rescue file either (" + e.getMessage()
                                + "): their last writes are lost");
            }
        }
    }

    @Override
    public String toString() {
        return "S3Export[" + name + ": " + names + ", " + metadata.describe() + (readOnly ? ", read-only" : "") + "]";
    }

    /** Returns the export's geometry for messages, e.g. {@code 10G in 1M blocks}. */
    String geometry() {
        return Sizes.format(metadata.size()) + " in " + Sizes.format(metadata.blockSize()) + " blocks";
    }
}
