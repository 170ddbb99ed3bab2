package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * What a FLUSH or a FUA write waits for: a set of blocks, each with the version that must be stored.
 * A FLUSH takes every dirty block at the moment its batch starts, with its version then: every write
 * that completed before the FLUSH was sent is covered, on whichever hardware context it ran, since the
 * dirty set is the export's. A FUA write takes the blocks it changed, with the versions it left them at.
 *
 * <p>{@link #await} marks the blocks urgent, so the writeback uploads them at once rather than when
 * they are old enough (a block in its retry backoff is tried again at once, once per barrier), and
 * returns when each block's stored version has reached its target. It fails (the requests end with EIO)
 * when the deadline ({@code s3.timeout} after the batch started) passes first, when the write lease is
 * lost to another server (a lapsed lease is waited for: renewal may succeed in time), or when an upload made for it failed in a way retrying cannot fix (e.g. access denied).
 * Transient upload failures (after the SDK's own retries) are retried by the writeback meanwhile, so a
 * store that recovers within the deadline costs no error; a failed barrier leaves the blocks dirty, and
 * the next FLUSH tries again.
 *
 * <p><b>Threading:</b> built and awaited by one request thread; reads the blocks' volatile versions.
 */
final class Barrier {
    private final Block[] blocks;
    private final long[] versions;

    private Barrier(Block[] blocks, long[] versions) {
        this.blocks = blocks;
        this.versions = versions;
    }

    /** Returns the number of blocks the barrier waits for. */
    int size() {
        return blocks.length;
    }

    /** Returns a barrier over every block dirty now, at its current version. */
    static Barrier ofDirty(BlockCache cache) {
        Builder b = new Builder();
        for (Block block : cache.dirty.blocks()) {
            b.add(block, block.version);
        }
        return b.build();
    }

    /**
     * Waits until every block is stored at its target version.
     *
     * @throws IOException if the deadline passed, the lease was lost, or an upload failed for good; the
     *     message says which
     */
    void await(BlockCache cache, Writeback writeback, Lease lease, long deadline) throws IOException {
        if (blocks.length == 0) {
            return;
        }
        long start = System.nanoTime();
        for (Block b : blocks) {
            b.urgent = true;
            // Each barrier gets one attempt at once, even for a block in its retry backoff.
            b.retryAtNanos = start;
        }
        writeback.wake();
        for (; ; ) {
            int pending = 0;
            for (int i = 0; i < blocks.length; i++) {
                Block b = blocks[i];
                if (b.storedVersion >= versions[i]) {
                    continue;
                }
                pending++;
                StoreException failure = b.permanentFailure;
                if (failure != null && b.permanentFailureNanos - start >= 0) {
                    // An attempt made for this barrier failed in a way retrying cannot fix.
                    throw new IOException("block " + b.index + " cannot be stored: " + failure.getMessage(), failure);
                }
                // Set again: a newer write may have cleaned and re-dirtied the block since.
                b.urgent = true;
            }
            if (pending == 0) {
                return;
            }
            if (lease.lost()) {
                throw new IOException(pending + " blocks are not stored and cannot be: " + lease.invalidReason());
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new IOException(pending + " of " + blocks.length + " blocks still not stored when the request's"
                        + " time (s3.timeout) ran out"
                        + (lease.valid() ? writeback.lastFailureHint() : ": " + lease.invalidReason()));
            }
            writeback.wake();
            synchronized (cache.dirty.progress) {
                try {
                    cache.dirty.progress.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 50)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted waiting for uploads");
                }
            }
        }
    }

    /**
     * Collects blocks and target versions; a block added twice keeps its highest version.
     *
     * <p><b>Threading:</b> one thread.
     */
    static final class Builder {
        private Block[] blocks = new Block[8];
        private long[] versions = new long[8];
        private int n;

        /** Adds {@code block}, which must be stored at {@code version} or later. */
        Builder add(Block block, long version) {
            if (n > 0 && blocks[n - 1] == block) {
                versions[n - 1] = Math.max(versions[n - 1], version);
                return this;
            }
            if (n == blocks.length) {
                blocks = Arrays.copyOf(blocks, n * 2);
                versions = Arrays.copyOf(versions, n * 2);
            }
            blocks[n] = block;
            versions[n] = version;
            n++;
            return this;
        }

        Barrier build() {
            return new Barrier(Arrays.copyOf(blocks, n), Arrays.copyOf(versions, n));
        }
    }
}
