package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * The write lease of one S3 export: the object {@code PREFIX/mqnbd-lease.json} ({@link LeaseHolder}
 * shows it), which says who may write the export and until when, so that two servers never write one
 * export at once.
 *
 * <p><b>Taking.</b> A conditional PUT with {@code If-None-Match: *} creates the object. If it exists and
 * was released, or its {@code expires} has passed, or its holder was a process on this machine that no longer runs (a
 * crash: {@link LeaseHolder#deadHere}), a PUT with {@code If-Match: <its etag>} takes it over at once;
 * otherwise the open fails with a message naming the holder.
 *
 * <p><b>Renewing.</b> A PUT with {@code If-Match: <our etag>} moves {@code expires} on, every {@link
 * #interval}: a third of the lifetime at most, less where needed so that renewal rides out a store
 * outage as long as {@code s3.timeout}. A renewal that fails is retried at once, then with backoff
 * (125 ms doubling, at most 2 s). A 412 makes the lease re-read its object: a renewal whose reply was
 * lost may have been applied, and an object that still names this lease's holder is <em>adopted</em>
 * (its etag taken) and renewed; one that names another holder means the lease is <em>lost</em> for good.
 *
 * <p><b>Lapsing.</b> A lease not renewed in time <em>lapses</em>: {@link #valid()} answers false, so
 * writes, trims and flushes fail with EIO, but renewal goes on, and once the store answers and the object
 * still names us (nobody took it meanwhile: every taker writes its own holder, conditionally) the lease
 * is valid again and the dirty data is stored. If another server took it, the lease is lost and {@link
 * #onLost} runs, so that the export saves its dirty data to a rescue file: nothing acknowledged vanishes.
 *
 * <p><b>Clocks.</b> Other servers judge expiry by their wall clock against {@code expires}; this one
 * stops trusting its lease a tenth of the lifetime before the end it announced, measured on the
 * monotonic clock from when the renewal was sent, which tolerates clock skew up to that margin.
 *
 * <p><b>Releasing.</b> On a clean close a PUT with {@code If-Match: <our etag>} marks the object released
 * ({@link #close(boolean)}): the next server takes it over at once. The object stays in the bucket.
 *
 * <p><b>Ownership:</b> the export owns its lease and releases it after the last upload on close.
 *
 * <p><b>Threading:</b> renewal runs on a virtual thread of its own; {@link #valid()} is lock-free and
 * safe from any thread; the listeners run on the renewal thread.
 *
 * <p><b>Length:</b> a little over the ~400 lines the project aims at, on purpose: renewal, its retries,
 * the lapse, the adoption of our own changed object and the loss are one state machine over the volatile
 * fields above; acquisition and the holder record already live in {@link LeaseAcquisition} and {@link
 * LeaseHolder}.
 */
final class Lease implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Lease.class.getName());

    private static final long MAX_BACKOFF_NANOS = TimeUnit.SECONDS.toNanos(2);
    private static final long FIRST_BACKOFF_NANOS = TimeUnit.MILLISECONDS.toNanos(125);
    /** Renewal slack kept beyond {@code s3.timeout}: one retry's worth. */
    private static final long SLACK_NANOS = TimeUnit.SECONDS.toNanos(2);

    private enum Outcome {
        RENEWED,
        FAILED,
        LOST
    }

    private final ObjectStore store;
    private final ObjectNames names;
    private final String exportName;
    private final LeaseHolder holder;
    private final Duration ttl;
    private final Duration timeout;
    private final long intervalNanos;
    private final Object lock = new Object();
    private final Thread renewer;

    private volatile String etag;
    private volatile long validUntilNanos;
    private volatile @Nullable String lostReason;
    private volatile @Nullable String failure;
    private volatile long renewals;
    private volatile long renewalFailures;
    private volatile long adoptions;
    private volatile Runnable onRenewed = () -> {};
    private volatile Runnable onLost = () -> {};
    // Guarded by lock.
    private boolean stopping;
    // Renewer thread only.
    private boolean warned;
    private boolean lapseLogged;

    Lease(
            ObjectStore store,
            ObjectNames names,
            String exportName,
            LeaseHolder holder,
            Duration ttl,
            Duration timeout,
            String etag,
            long sentNanos) {
        this.store = store;
        this.names = names;
        this.exportName = exportName;
        this.holder = holder;
        this.ttl = ttl;
        this.timeout = timeout;
        this.intervalNanos = interval(ttl, timeout).toNanos();
        this.etag = etag;
        this.validUntilNanos = sentNanos + trustedNanos(ttl);
        this.renewer = Thread.ofVirtual().name("mqnbd-s3-lease-" + exportName).unstarted(this::renewLoop);
    }

    /**
     * Returns how often a lease is renewed: a third of {@code ttl}, or less, so that the lease is still
     * trusted {@code timeout} plus a retry after a renewal that hangs; at least a tenth of {@code ttl}.
     */
    static Duration interval(Duration ttl, Duration timeout) {
        long third = ttl.toNanos() / 3;
        long wanted = trustedNanos(ttl) - timeout.toNanos() - SLACK_NANOS;
        return Duration.ofNanos(Math.max(ttl.toNanos() / 10, Math.min(third, wanted)));
    }

    /**
     * Takes the write lease of the export at {@code names} and starts renewing it ({@link
     * LeaseAcquisition}).
     *
     * <p><b>Ownership:</b> the caller closes the returned lease.
     *
     * @throws IOException if another server holds a lease that has not expired (the message names it),
     *     or the store cannot be reached
     */
    static Lease acquire(ObjectStore store, ObjectNames names, String exportName, Duration ttl, Duration timeout)
            throws IOException {
        return LeaseAcquisition.acquire(store, names, exportName, ttl, timeout);
    }

    /** Starts renewing {@code lease}, just taken; warns if its lifetime is too short for s3.timeout. */
    static Lease started(Lease lease) {
        if (lease.trustedNanos() - lease.intervalNanos < lease.timeout.toNanos()) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + lease.exportName + ": a write lease of " + lease.ttl.toMillis() + " ms cannot"
                            + " ride out a store outage as long as s3.timeout (" + lease.timeout.toMillis()
                            + " ms): writes fail once the lease lapses; set s3.lease-ttl to at least "
                            + (lease.timeout.toSeconds() * 2 + 5) + "s");
        }
        lease.renewer.start();
        return lease;
    }

    /** Sets what runs after each successful renewal ({@code onRenewed}) and once the lease is lost. */
    void listen(Runnable onRenewed, Runnable onLost) {
        this.onRenewed = onRenewed;
        this.onLost = onLost;
    }

    /** Returns who holds this lease: host, pid and a random id. */
    String holder() {
        return holder.name();
    }

    /** Returns whether the export may write now: the lease is renewed and was not lost. */
    boolean valid() {
        return lostReason == null && System.nanoTime() - validUntilNanos < 0;
    }

    /** Returns whether another server took the lease: for good, unlike a lapse. */
    boolean lost() {
        return lostReason != null;
    }

    /** Returns why the lease is not valid, for the error of a refused write. */
    String invalidReason() {
        String reason = lostReason;
        if (reason != null) {
            return reason;
        }
        String why = failure;
        return "its write lease lapsed: it could not be renewed in time" + (why == null ? "" : " (" + why + ")")
                + "; it is renewed again as soon as the store answers";
    }

    /** Returns how many renewals succeeded. */
    long renewals() {
        return renewals;
    }

    /** Returns how many renewal attempts failed (each is retried). */
    long renewalFailures() {
        return renewalFailures;
    }

    /** Returns how many times a changed lease object still naming this holder was adopted. */
    long adoptions() {
        return adoptions;
    }

    /** Stops renewing and releases the lease object (see {@link #close(boolean)}). */
    @Override
    public void close() {
        close(true);
    }

    /**
     * Stops renewing and, if {@code release} and the lease is still ours, rewrites its object as released
     * ({@link LeaseHolder#releasedRecord}) with a conditional PUT, so that another server may open the
     * export for writing at once; unreleased, it expires by itself (a restart of this server on this
     * machine takes it over at once). The object stays: a conditional DELETE would not do, as some stores
     * (Ceph's RADOS Gateway) ignore {@code If-Match} on DELETE. A second call does nothing.
     */
    void close(boolean release) {
        synchronized (lock) {
            if (stopping) {
                return;
            }
            stopping = true;
            lock.notifyAll();
        }
        try {
            renewer.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (lostReason != null || !release) {
            return;
        }
        try {
            try {
                store.putIfMatch(names.lease(), holder.releasedRecord(), etag, timeout);
            } catch (StoreException e) {
                // A renewal whose reply was lost may have changed the object: release it if it is still ours.
                ObjectStore.StoredObject current = e.preconditionFailed() ? ours(timeout) : null;
                if (current == null) {
                    throw e;
                }
                store.putIfMatch(names.lease(), holder.releasedRecord(), current.etag(), timeout);
            }
        } catch (StoreException e) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + " (" + names + "): could not release the write lease (" + e.getMessage()
                            + "); it expires by itself within " + ttl.toSeconds() + " s");
        }
    }

    private void renewLoop() {
        long next = System.nanoTime() + intervalNanos;
        int failures = 0;
        while (sleepUntil(next)) {
            long sent = System.nanoTime();
            Outcome outcome;
            try {
                outcome = renewOnce(sent);
            } catch (RuntimeException e) {
                // A bug below us: keep trying.
                LOG.log(Level.ERROR, "s3 export " + exportName + ": renewing the write lease threw", e);
                outcome = Outcome.FAILED;
            }
            switch (outcome) {
                case RENEWED -> {
                    failures = 0;
                    next = sent + intervalNanos;
                }
                case FAILED -> {
                    failures++;
                    next = System.nanoTime() + backoffNanos(failures);
                }
                case LOST -> {
                    return;
                }
            }
        }
    }

    /** Waits until {@code next}; returns false when the lease is closing. */
    private boolean sleepUntil(long next) {
        synchronized (lock) {
            long left;
            while (!stopping && (left = next - System.nanoTime()) > 0) {
                try {
                    lock.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
                } catch (InterruptedException e) {
                    // Only close() stops renewal.
                }
            }
            return !stopping;
        }
    }

    /** The first retry at once, then 125 ms doubling up to 2 s (or the interval, if shorter). */
    private long backoffNanos(int failures) {
        if (failures <= 1) {
            return 0;
        }
        long backoff = FIRST_BACKOFF_NANOS << Math.min(failures - 2, 10);
        return Math.min(backoff, Math.min(MAX_BACKOFF_NANOS, intervalNanos));
    }

    /** Renews once: adopts our own changed object, recreates a deleted one while still valid. */
    private Outcome renewOnce(long sent) {
        Duration limit = Duration.ofNanos(Math.min(timeout.toNanos(), Math.max(intervalNanos, SLACK_NANOS)));
        try {
            etag = store.putIfMatch(names.lease(), holder.record(ttl), etag, limit);
            return renewed(sent);
        } catch (StoreException e) {
            if (!e.preconditionFailed()) {
                return failed(e);
            }
        }
        // 412: the object is not at our etag. A renewal whose reply was lost may have changed it: look.
        ObjectStore.StoredObject current;
        try {
            current = store.get(names.lease(), limit);
        } catch (StoreException e) {
            return failed(e);
        }
        if (current == null) {
            if (!valid()) {
                return lose("its write lease object was deleted after the lease lapsed, so another server may have"
                        + " written the export meanwhile");
            }
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + " (" + names + "): the write lease object was deleted while this"
                            + " server held it; creating it again");
            try {
                long again = System.nanoTime();
                etag = store.putIfAbsent(names.lease(), holder.record(ttl), limit);
                return renewed(again);
            } catch (StoreException e) {
                return failed(e);
            }
        }
        LeaseHolder.Held held = LeaseHolder.Held.parse(current.data());
        if (!held.holder().name().equals(holder.name())) {
            return lose("its write lease was taken by " + held.holder());
        }
        adoptions++;
        LOG.log(
                Level.INFO,
                "s3 export " + exportName + " (" + names + "): the write lease object changed under a renewal whose"
                        + " reply was lost; it still names this server, so it is adopted and renewed");
        try {
            long again = System.nanoTime();
            etag = store.putIfMatch(names.lease(), holder.record(ttl), current.etag(), limit);
            return renewed(again);
        } catch (StoreException e) {
            // Adopted: the next attempt renews from the object's etag (or looks again on another 412).
            etag = current.etag();
            return failed(e);
        }
    }

    private Outcome renewed(long sent) {
        boolean lapsed = lapseLogged || System.nanoTime() - validUntilNanos >= 0;
        validUntilNanos = sent + trustedNanos();
        renewals++;
        if (lapsed) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + " (" + names + "): renewed the write lease again after it lapsed;"
                            + " nobody took it meanwhile, so writes are accepted again and the dirty data is stored");
        } else if (warned) {
            LOG.log(Level.INFO, "s3 export " + exportName + " (" + names + "): renewed the write lease again");
        }
        warned = false;
        lapseLogged = false;
        failure = null;
        onRenewed.run();
        return Outcome.RENEWED;
    }

    private Outcome failed(StoreException e) {
        failure = e.getMessage();
        renewalFailures++;
        if (!warned) {
            warned = true;
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + " (" + names + "): could not renew the write lease (" + e.getMessage()
                            + "); retrying");
        }
        if (!valid() && !lapseLogged) {
            lapseLogged = true;
            LOG.log(
                    Level.ERROR,
                    "s3 export " + exportName + " (" + names + "): " + invalidReason() + "; until then every write,"
                            + " trim and flush fails with EIO, and the dirty data is kept");
        }
        return Outcome.FAILED;
    }

    private Outcome lose(String reason) {
        lostReason = reason;
        LOG.log(
                Level.ERROR,
                "s3 export " + exportName + " (" + names + "): " + reason + "; from now on every write,"
                        + " trim and flush fails with EIO (reopen the export to serve it again)");
        onLost.run();
        return Outcome.LOST;
    }

    /** Returns the lease object if it still names this holder, else {@code null}. */
    private ObjectStore.@Nullable StoredObject ours(Duration limit) {
        try {
            ObjectStore.StoredObject current = store.get(names.lease(), limit);
            return current != null
                            && LeaseHolder.Held.parse(current.data())
                                    .holder()
                                    .name()
                                    .equals(holder.name())
                    ? current
                    : null;
        } catch (StoreException e) {
            return null;
        }
    }

    private long trustedNanos() {
        return trustedNanos(ttl);
    }

    private static long trustedNanos(Duration ttl) {
        return ttl.toNanos() - ttl.toNanos() / 10;
    }

    @Override
    public String toString() {
        return "Lease[" + names.lease() + ", " + holder + (lostReason != null ? ", lost" : "") + "]";
    }
}
