package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import org.jspecify.annotations.Nullable;

/**
 * The write lease of one S3 export: the object {@code PREFIX/mqnbd-lease.json}, which says who may
 * write the export and until when, so that two servers never write one export at once.
 *
 * <pre>
 * {"holder": "mqnbd on host1, pid 4242, lease 9f0c2a17", "expires": 1795129200000,
 *  "expiresAt": "2026-11-21T21:00:00Z", "ttlMillis": 30000}
 * </pre>
 *
 * <p><b>The protocol.</b> Taking: a conditional PUT with {@code If-None-Match: *} creates the object. If
 * it exists and its {@code expires} has passed, a PUT with {@code If-Match: <its etag>} takes it over; if
 * it has not, the open fails with a message naming the holder. Renewing: every third of the lifetime, a
 * PUT with {@code If-Match: <our etag>} moves {@code expires} on. A 412 on renewal means another server
 * took the lease (after it expired by its clock), and a lease not renewed before its end is given up:
 * either way the lease is <em>lost</em> for good, logged as an error, and {@link #valid()} answers
 * false, so that writes and flushes end with EIO instead of clobbering the new holder's data. Releasing
 * (on close): a DELETE with {@code If-Match: <our etag>}.
 *
 * <p><b>Clocks.</b> Other servers judge expiry by their wall clock against {@code expires}; this one
 * stops trusting its lease a tenth of the lifetime before the end it announced, measured on the
 * monotonic clock from when the renewal was sent, which tolerates clock skew up to that margin.
 *
 * <p><b>Ownership:</b> the export owns its lease and releases it after the last upload on close.
 *
 * <p><b>Threading:</b> renewal runs on a virtual thread of its own; {@link #valid()} is lock-free and
 * safe from any thread.
 */
final class Lease implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(Lease.class.getName());

    private static final int TAKE_ATTEMPTS = 3;

    private final ObjectStore store;
    private final ObjectNames names;
    private final String exportName;
    private final String holder;
    private final Duration ttl;
    private final Duration timeout;
    private final Object lock = new Object();
    private final Thread renewer;

    private volatile String etag;
    private volatile long validUntilNanos;
    private volatile @Nullable String lostReason;
    private volatile long renewals;
    // Guarded by lock.
    private boolean stopping;
    // Renewer thread only.
    private boolean warned;

    private Lease(
            ObjectStore store,
            ObjectNames names,
            String exportName,
            String holder,
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
        this.etag = etag;
        this.validUntilNanos = sentNanos + trustedNanos();
        this.renewer = Thread.ofVirtual().name("mqnbd-s3-lease-" + exportName).unstarted(this::renewLoop);
    }

    /**
     * Takes the write lease of the export at {@code names} and starts renewing it.
     *
     * <p><b>Ownership:</b> the caller closes the returned lease.
     *
     * @throws IOException if another server holds a lease that has not expired (the message names it),
     *     or the store cannot be reached
     */
    static Lease acquire(ObjectStore store, ObjectNames names, String exportName, Duration ttl, Duration timeout)
            throws IOException {
        String holder = newHolder();
        String key = names.lease();
        for (int attempt = 0; attempt < TAKE_ATTEMPTS; attempt++) {
            long sent = System.nanoTime();
            try {
                String etag = store.putIfAbsent(key, record(holder, ttl), timeout);
                return started(new Lease(store, names, exportName, holder, ttl, timeout, etag, sent));
            } catch (StoreException e) {
                if (!e.preconditionFailed()) {
                    throw new IOException(
                            "s3 export " + names + ": cannot take the write lease " + key + ": " + e.getMessage(), e);
                }
            }
            ObjectStore.StoredObject current = store.get(key, timeout);
            if (current == null) {
                continue; // Released meanwhile: try to create it again.
            }
            Held held = Held.parse(current.data());
            if (held.expires.isAfter(Instant.now())) {
                throw new IOException("s3 export " + names + " is being served for writing by " + held.holder
                        + " (its lease " + key + " runs until " + held.expires + "); stop that server, or serve the"
                        + " export read-only; a lease that is not renewed expires by itself");
            }
            sent = System.nanoTime();
            try {
                String etag = store.putIfMatch(key, record(holder, ttl), current.etag(), timeout);
                LOG.log(
                        Level.WARNING,
                        "s3 export " + exportName + " (" + names + "): took over the expired write"
                                + " lease of " + held.holder + " (it expired at " + held.expires
                                + "; that server stopped"
                                + " without releasing it)");
                return started(new Lease(store, names, exportName, holder, ttl, timeout, etag, sent));
            } catch (StoreException e) {
                if (!e.preconditionFailed()) {
                    throw new IOException(
                            "s3 export " + names + ": cannot take over the expired write lease " + key + ": "
                                    + e.getMessage(),
                            e);
                }
                // Someone else took it over first: look again.
            }
        }
        ObjectStore.StoredObject current = store.get(key, timeout);
        String who = current == null ? "another server" : Held.parse(current.data()).holder;
        throw new IOException("s3 export " + names + ": the write lease " + key + " is contended; last held by " + who);
    }

    private static Lease started(Lease lease) {
        lease.renewer.start();
        return lease;
    }

    /** Returns who holds this lease: host, pid and a random id. */
    String holder() {
        return holder;
    }

    /** Returns whether the export may still write: the lease is renewed and was not lost. */
    boolean valid() {
        return lostReason == null && System.nanoTime() - validUntilNanos < 0;
    }

    /** Returns why the lease is not valid, for the error of a refused write. */
    String invalidReason() {
        String reason = lostReason;
        return reason != null ? reason : "its write lease expired before it could be renewed";
    }

    /** Returns how many renewals succeeded. */
    long renewals() {
        return renewals;
    }

    /**
     * Stops renewing and deletes the lease object if it is still ours, so that another server may open
     * the export for writing at once. A second call does nothing.
     */
    @Override
    public void close() {
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
        if (lostReason != null) {
            return;
        }
        try {
            store.deleteIfMatch(names.lease(), etag, timeout);
        } catch (StoreException e) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + exportName + " (" + names + "): could not release the write lease (" + e.getMessage()
                            + "); it expires by itself within " + ttl.toSeconds() + " s");
        }
    }

    private void renewLoop() {
        long interval = ttl.toNanos() / 3;
        for (; ; ) {
            synchronized (lock) {
                long end = System.nanoTime() + interval;
                long left;
                while (!stopping && (left = end - System.nanoTime()) > 0) {
                    try {
                        lock.wait(Math.max(1, left / 1_000_000));
                    } catch (InterruptedException e) {
                        // Only close() stops renewal.
                    }
                }
                if (stopping) {
                    return;
                }
            }
            try {
                if (!renewOnce()) {
                    return;
                }
            } catch (RuntimeException e) {
                // A bug below us: keep trying; if renewal never succeeds the lease runs out and is given up.
                LOG.log(Level.ERROR, "s3 export " + exportName + ": renewing the write lease threw", e);
            }
        }
    }

    /** Renews once; returns false when the lease is lost. */
    private boolean renewOnce() {
        long sent = System.nanoTime();
        Duration limit = timeout.compareTo(ttl.dividedBy(3)) < 0 ? timeout : ttl.dividedBy(3);
        try {
            etag = store.putIfMatch(names.lease(), record(holder, ttl), etag, limit);
            validUntilNanos = sent + trustedNanos();
            renewals++;
            warned = false;
            return true;
        } catch (StoreException e) {
            if (e.preconditionFailed()) {
                lose("its write lease was taken by " + currentHolder());
                return false;
            }
            if (System.nanoTime() - validUntilNanos >= 0) {
                lose("its write lease expired: it could not be renewed in time (" + e.getMessage() + ")");
                return false;
            }
            if (!warned) {
                warned = true;
                LOG.log(
                        Level.WARNING,
                        "s3 export " + exportName + " (" + names + "): could not renew the write lease" + " ("
                                + e.getMessage() + "); retrying");
            }
            return true;
        }
    }

    private void lose(String reason) {
        lostReason = reason;
        LOG.log(
                Level.ERROR,
                "s3 export " + exportName + " (" + names + "): " + reason + "; from now on every write,"
                        + " trim and flush fails with EIO (reopen the export to serve it again)");
    }

    private String currentHolder() {
        try {
            ObjectStore.StoredObject current = store.get(names.lease(), timeout);
            return current == null ? "nobody (the lease object was deleted)" : Held.parse(current.data()).holder;
        } catch (IOException e) {
            return "another server (" + e.getMessage() + ")";
        }
    }

    private long trustedNanos() {
        return ttl.toNanos() - ttl.toNanos() / 10;
    }

    private static byte[] record(String holder, Duration ttl) {
        Instant expires = Instant.now().plus(ttl);
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("holder", holder);
        fields.put("expires", expires.toEpochMilli());
        fields.put("expiresAt", expires.toString());
        fields.put("ttlMillis", ttl.toMillis());
        return FlatJson.write(fields).getBytes(StandardCharsets.UTF_8);
    }

    private static String newHolder() {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            host = "unknown-host";
        }
        byte[] id = new byte[4];
        ThreadLocalRandom.current().nextBytes(id);
        return "mqnbd on " + host + ", pid " + ProcessHandle.current().pid() + ", lease "
                + HexFormat.of().formatHex(id);
    }

    /** What a lease object says. An unreadable one names itself and counts as unexpired. */
    private record Held(String holder, Instant expires) {
        static Held parse(byte[] json) {
            try {
                Map<String, String> fields = FlatJson.read(new String(json, StandardCharsets.UTF_8));
                return new Held(
                        fields.getOrDefault("holder", "an unnamed holder"),
                        Instant.ofEpochMilli(Long.parseLong(fields.get("expires"))));
            } catch (RuntimeException e) {
                return new Held(
                        "an unreadable lease object (delete it by hand if no server uses the export)", Instant.MAX);
            }
        }
    }

    @Override
    public String toString() {
        return "Lease[" + names.lease() + ", " + holder + (lostReason != null ? ", lost" : "") + "]";
    }
}
