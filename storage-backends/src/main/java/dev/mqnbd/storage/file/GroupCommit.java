package dev.mqnbd.storage.file;

import dev.mqnbd.storage.Histogram;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;

/**
 * Group commit for one file: every FLUSH and FUA request of every hardware context waits here for an
 * {@code fdatasync} that covers it, and all those that arrive while one {@code fdatasync} runs share the
 * next one.
 *
 * <p><b>The rule.</b> A waiter (a FLUSH, or a FUA write after its {@code pwrite} returned) is only ended
 * by an {@code fdatasync} that <em>started after</em> every write it must cover had completed, or by an
 * earlier one that is proved to cover them. Each context owns a {@link Writer} with a dirty flag that it
 * sets after each write completes (after {@code pwrite} or {@code fallocate} returned). When the syncer
 * starts an {@code fdatasync} it first clears every flag, under the lock. So at the moment a waiter
 * registers (under the lock):
 *
 * <ul>
 *   <li>if any flag is set, some completed write is not covered by any started sync: the waiter joins
 *       {@code next}, ended by the next sync, which starts after this registration;
 *   <li>else, if a sync is running, every completed write had its flag cleared by that sync before it
 *       began: the waiter joins {@code current} and ends with it;
 *   <li>else every completed write was covered by a sync that already finished: the waiter ends at once,
 *       with no system call (unless the last sync failed).
 * </ul>
 *
 * The file starts dirty: the first FLUSH after opening always syncs, in case a previous server left
 * dirty pages. A failed {@code fdatasync} is sticky: Linux may drop the dirty pages it could not write
 * and report success next time, so after one failure every later FLUSH and FUA ends with an error.
 *
 * <p><b>Ownership:</b> a waiter belongs to this object from {@link Writer#commit} until the {@link
 * Completer} is called with it, exactly once; the completer runs on the syncer thread or, for waiters
 * that need no sync, on the committing thread, never under the lock.
 *
 * <p><b>Threading:</b> one syncer thread; {@link Writer#markDirty} is lock-free and is the only thing
 * the plain write path touches; {@code commit} takes the lock once per batch of waiters.
 *
 * @param <W> the waiter type (the device's requests; tests use their own)
 */
final class GroupCommit<W> implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(GroupCommit.class.getName());

    /** Upper bounds of the batch-size buckets: waiters covered by one sync, 1 to 1024 in powers of two. */
    private static final long[] BATCH_BOUNDS = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

    /** Makes the file's completed writes durable; {@code fdatasync} in production. */
    @FunctionalInterface
    interface SyncAction {
        /** Runs one sync; throws if the data may not be durable. */
        void sync() throws IOException;
    }

    /**
     * Ends a waiter, kept at {@code generation} (see {@link Held}); {@code durable} is false when the
     * covering sync failed.
     */
    @FunctionalInterface
    interface Completer<W> {
        void complete(W waiter, int generation, boolean durable);
    }

    private final String name;
    private final SyncAction action;
    private final Completer<W> completer;
    private final Object lock = new Object();
    private final List<Writer> writers = new ArrayList<>();
    private final Thread syncer;

    // Guarded by lock.
    private Held<W> current = new Held<>(16);
    private Held<W> next = new Held<>(16);
    private Held<W> finished = new Held<>(16);
    private boolean running;
    private boolean initiallyDirty = true;
    private boolean closed;
    private volatile boolean failed;

    private volatile long syncs;
    private volatile long waitersServed;
    private final Histogram batchSizes = new Histogram(1, BATCH_BOUNDS);

    /** Creates the group commit and starts its syncer thread, named after {@code name}. */
    GroupCommit(String name, SyncAction action, Completer<W> completer) {
        this.name = name;
        this.action = action;
        this.completer = completer;
        this.syncer = new Thread(this::run, "mqnbd-file-sync-" + name);
        syncer.setDaemon(true);
        syncer.start();
    }

    /** Creates the writer of one hardware context; its dirty flag is looked at by every sync. */
    Writer newWriter() {
        Writer writer = new Writer();
        synchronized (lock) {
            writers.add(writer);
        }
        return writer;
    }

    /** Returns the number of syncs run so far (failed ones included). */
    long syncs() {
        return syncs;
    }

    /** Returns the number of waiters ended by a sync (not those that needed none). */
    long waitersServed() {
        return waitersServed;
    }

    /**
     * Returns the sizes of the batches the syncer ran: one observation per sync it made, of the number of
     * waiters that sync ended, those that joined while it ran included; the observations add up to {@link
     * #waitersServed()}. The sync on close, which no waiter asked for, is not in it, nor are waiters that
     * needed no sync.
     */
    Histogram batchSizes() {
        return batchSizes;
    }

    /** Returns whether a sync failed; every later waiter then fails too. */
    boolean failed() {
        return failed;
    }

    /**
     * Runs one more sync now, on the calling thread, if any write completed since the last sync started;
     * used on close. Returns whether the data is durable.
     */
    boolean syncIfDirty() {
        synchronized (lock) {
            if (!clearDirty() || failed) {
                return !failed;
            }
        }
        return syncOnce();
    }

    /** Stops the syncer after the waiters it holds have been ended. */
    @Override
    public void close() {
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        try {
            syncer.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void run() {
        for (; ; ) {
            synchronized (lock) {
                while (next.isEmpty() && !closed) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        // Only close() stops the syncer: waiters must never be dropped.
                    }
                }
                if (next.isEmpty()) {
                    return;
                }
                // INVARIANT: current is empty here; the waiters of the previous sync were moved to finished.
                Held<W> swap = current;
                current = next;
                next = swap;
                clearDirty();
                running = true;
            }
            boolean durable = !failed && syncOnce();
            synchronized (lock) {
                running = false;
                Held<W> swap = finished;
                finished = current;
                current = swap;
                // Those that joined while the sync ran included.
                batchSizes.record(finished.size());
            }
            endAll(finished, durable);
        }
    }

    /** Clears every dirty flag; returns whether any was set. Called under the lock, just before a sync. */
    private boolean clearDirty() {
        boolean dirty = initiallyDirty;
        initiallyDirty = false;
        for (Writer w : writers) {
            if (w.dirty) {
                w.dirty = false;
                dirty = true;
            }
        }
        return dirty;
    }

    private boolean syncOnce() {
        try {
            action.sync();
            return true;
        } catch (IOException | RuntimeException e) {
            failed = true;
            LOG.log(
                    Level.ERROR,
                    "file export " + name + ": fdatasync failed; every later FLUSH and FUA write"
                            + " fails with EIO until the export is reopened",
                    e);
            return false;
        } finally {
            syncs++;
        }
    }

    private void endAll(Held<W> waiters, boolean durable) {
        while (!waiters.isEmpty()) {
            W w = waiters.first();
            int generation = waiters.firstGeneration();
            waiters.removeFirst();
            waitersServed++;
            completer.complete(w, generation, durable);
        }
    }

    /**
     * One hardware context's handle on the group commit: its dirty flag and the batch of waiters it
     * hands over at the end of each batch of requests.
     *
     * <p><b>Threading:</b> used by the context's I/O thread only.
     */
    final class Writer {
        volatile boolean dirty;
        private final Held<W> ready = new Held<>(16);

        private Writer() {}

        /** Records that a write completed: the next FLUSH must sync. Call after the write returned. */
        void markDirty() {
            if (!dirty) {
                dirty = true;
            }
        }

        /**
         * Hands {@code waiters} (drained) to the group commit; each is ended once a sync covers it,
         * perhaps before this returns when no sync is needed.
         */
        void commit(Held<W> waiters) {
            boolean fail;
            synchronized (lock) {
                fail = failed || closed;
                if (!fail) {
                    if (initiallyDirty || anyDirty()) {
                        moveAll(waiters, next);
                        lock.notifyAll();
                    } else if (running) {
                        moveAll(waiters, current);
                    } else {
                        moveAll(waiters, ready);
                    }
                }
            }
            if (fail) {
                moveAll(waiters, ready);
            }
            while (!ready.isEmpty()) {
                W w = ready.first();
                int generation = ready.firstGeneration();
                ready.removeFirst();
                completer.complete(w, generation, !fail);
            }
        }

        private boolean anyDirty() {
            for (Writer w : writers) {
                if (w.dirty) {
                    return true;
                }
            }
            return false;
        }
    }

    private static <T> void moveAll(Held<T> from, Held<T> to) {
        from.drainTo(to);
    }
}
