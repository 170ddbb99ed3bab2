package dev.mqnbd.storage.memory;

/**
 * The per-hardware-context data {@code H} of {@link MemoryBlockDevice}: what one context has served.
 * The memory device keeps no I/O state per context (every request completes inline), so this is only its
 * counters, for logs and tests.
 *
 * <p><b>Ownership:</b> created by {@code initHctx}; the hardware context owns it until {@code exitHctx},
 * which has nothing to release.
 *
 * <p><b>Threading:</b> written only on the context's executor, one request at a time; the getters may be
 * called from any thread and see values that are at most slightly stale.
 */
public final class MemoryHwData {
    private final int index;
    private volatile long reads;
    private volatile long writes;
    private volatile long bytesRead;
    private volatile long bytesWritten;
    private volatile long zeroings;
    private volatile long flushes;
    private volatile long errors;
    private volatile long allocationFailures;

    MemoryHwData(int index) {
        this.index = index;
    }

    /** Returns the index of the hardware context this data belongs to. */
    public int index() {
        return index;
    }

    /** Returns the number of READ requests served. */
    public long reads() {
        return reads;
    }

    /** Returns the number of WRITE requests served. */
    public long writes() {
        return writes;
    }

    /** Returns the bytes copied out by READ requests. */
    public long bytesRead() {
        return bytesRead;
    }

    /** Returns the bytes stored by WRITE requests. */
    public long bytesWritten() {
        return bytesWritten;
    }

    /** Returns the number of DISCARD and WRITE_ZEROES requests served. */
    public long zeroings() {
        return zeroings;
    }

    /** Returns the number of FLUSH requests served. */
    public long flushes() {
        return flushes;
    }

    /** Returns the number of requests ended with an error status. */
    public long errors() {
        return errors;
    }

    /** Returns the number of writes that failed because no memory was left for a page. */
    public long allocationFailures() {
        return allocationFailures;
    }

    // Single writer (the context's executor): the read-then-write increments below lose nothing.

    void read(long bytes) {
        reads++;
        bytesRead += bytes;
    }

    void wrote(long bytes) {
        writes++;
        bytesWritten += bytes;
    }

    void zeroed() {
        zeroings++;
    }

    void flushed() {
        flushes++;
    }

    void failed() {
        errors++;
    }

    /** Counts an allocation failure; returns whether it is this context's first, worth a log line. */
    boolean allocationFailed() {
        return allocationFailures++ == 0;
    }

    @Override
    public String toString() {
        return "MemoryHwData[" + index + ": reads=" + reads + ", writes=" + writes + ", zeroings=" + zeroings
                + ", flushes=" + flushes + ", errors=" + errors + "]";
    }
}
