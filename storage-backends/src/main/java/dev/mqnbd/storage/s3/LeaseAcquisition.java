package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;

/**
 * Takes the write lease of an S3 export ({@link Lease}): creates its object, or takes over one that was
 * released, expired, or whose holder was a process on this machine that no longer runs ({@link
 * LeaseHolder#deadHere}, a crash), or refuses, naming the holder.
 *
 * <p><b>Threading:</b> stateless.
 */
final class LeaseAcquisition {
    private static final System.Logger LOG = System.getLogger(Lease.class.getName());

    private static final int TAKE_ATTEMPTS = 3;

    private LeaseAcquisition() {}

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
        LeaseHolder holder = LeaseHolder.local();
        String key = names.lease();
        for (int attempt = 0; attempt < TAKE_ATTEMPTS; attempt++) {
            long sent = System.nanoTime();
            try {
                String etag = store.putIfAbsent(key, holder.record(ttl), timeout);
                return Lease.started(new Lease(store, names, exportName, holder, ttl, timeout, etag, sent));
            } catch (StoreException e) {
                if (!e.preconditionFailed()) {
                    throw new IOException(
                            "s3 export " + names + ": cannot take the write lease " + key + ": " + e.getMessage(), e);
                }
            }
            ObjectStore.StoredObject current = store.get(key, timeout);
            if (current == null) {
                continue; // Deleted meanwhile: try to create it again.
            }
            LeaseHolder.Held held = LeaseHolder.Held.parse(current.data());
            boolean crashed = !held.expired() && held.holder().deadHere();
            if (!held.expired() && !crashed) {
                throw new IOException("s3 export " + names + " is being served for writing by " + held.holder()
                        + " (its lease " + key + " runs until " + held.expires() + "); stop that server, or serve"
                        + " the export read-only; a lease that is not renewed expires by itself");
            }
            sent = System.nanoTime();
            try {
                String etag = store.putIfMatch(key, holder.record(ttl), current.etag(), timeout);
                if (!held.released()) { // a released lease: the last server stopped cleanly, nothing to say
                    LOG.log(
                            Level.WARNING,
                            "s3 export " + exportName + " (" + names + "): took over the "
                                    + (crashed
                                            ? "write lease of " + held.holder() + " at once: that process (pid "
                                                    + held.holder().pid() + " on this machine) no longer runs"
                                            : "expired write lease of " + held.holder() + " (it expired at "
                                                    + held.expires() + "; that server stopped without releasing it)"));
                }
                return Lease.started(new Lease(store, names, exportName, holder, ttl, timeout, etag, sent));
            } catch (StoreException e) {
                if (!e.preconditionFailed()) {
                    throw new IOException(
                            "s3 export " + names + ": cannot take over the write lease " + key + ": " + e.getMessage(),
                            e);
                }
                // Someone else took it over first: look again.
            }
        }
        ObjectStore.StoredObject current = store.get(key, timeout);
        String who = current == null
                ? "another server"
                : LeaseHolder.Held.parse(current.data()).holder().name();
        throw new IOException("s3 export " + names + ": the write lease " + key + " is contended; last held by " + who);
    }
}
