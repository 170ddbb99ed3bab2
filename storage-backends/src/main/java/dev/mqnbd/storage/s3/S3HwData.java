package dev.mqnbd.storage.s3;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.LongAdder;

/**
 * The per-hardware-context data {@code H} of {@link S3BlockDevice}: the context's handle on the store
 * (the export's shared SDK client), its batch of staged requests, its read-ahead state and its counters.
 *
 * <p><b>The batch.</b> {@code queueRq}, on the context's event loop, only stages a request. At the end of
 * the batch ({@code isLast} or {@code commitRqs}) {@link #kick} starts every staged READ, WRITE, DISCARD,
 * WRITE_ZEROES, CACHE and BLOCK_STATUS on a virtual thread of its own, and all the batch's FLUSH requests
 * together on one more, so they share one barrier. The data of the writes becomes dirty blocks in the
 * export's cache, the pending uploads of this and every other context.
 *
 * <p><b>Read-ahead.</b> A READ that starts where the previous one on this context ended is sequential:
 * the next {@code s3.read-ahead} blocks after it are fetched in the background.
 *
 * <p><b>Ownership:</b> created by {@code initHctx}; the hardware context owns it until {@code exitHctx}.
 * A staged request belongs to the driver until its thread ends it.
 *
 * <p><b>Threading:</b> {@link #stage} and {@link #kick} on the context's executor; the counters from the
 * request threads (adders), read from anywhere.
 */
public final class S3HwData {
    private final int index;
    private final S3Export export;
    private final int depth;

    /** Requests of the batch being built. Executor only. */
    private final ArrayDeque<Request<S3RequestData>> staged;

    // Executor only.
    private long lastReadEnd;
    private long readAheadEnd;

    private final LongAdder reads = new LongAdder();
    private final LongAdder writes = new LongAdder();
    private final LongAdder fuaWrites = new LongAdder();
    private final LongAdder flushes = new LongAdder();
    private final LongAdder zeroings = new LongAdder();
    private final LongAdder errors = new LongAdder();

    S3HwData(S3Export export, int index, int depth) {
        this.export = export;
        this.index = index;
        this.depth = depth;
        this.staged = new ArrayDeque<>(depth);
    }

    /** Returns the index of the hardware context. */
    public int index() {
        return index;
    }

    /** Returns the context's handle on the store: the export's shared SDK client. */
    ObjectStore store() {
        return export.store();
    }

    /** Returns the number of READ requests served. */
    public long reads() {
        return reads.sum();
    }

    /** Returns the number of WRITE requests served, FUA ones included. */
    public long writes() {
        return writes.sum();
    }

    /** Returns the number of WRITE requests with FUA. */
    public long fuaWrites() {
        return fuaWrites.sum();
    }

    /** Returns the number of FLUSH requests taken. */
    public long flushes() {
        return flushes.sum();
    }

    /** Returns the number of DISCARD and WRITE_ZEROES requests served. */
    public long zeroings() {
        return zeroings.sum();
    }

    /** Returns the number of requests that ended with an error. */
    public long errors() {
        return errors.sum();
    }

    /** Adds {@code rq} to the batch, noting sequential reads for the read-ahead. */
    void stage(Request<S3RequestData> rq, int readAhead, int blockSize, long blockCount) {
        // OWNERSHIP: the driver owns rq until its thread ends it.
        staged.addLast(rq);
        if (rq.op() != ReqOp.READ || readAhead == 0) {
            return;
        }
        long end = rq.offset() + rq.length();
        if (rq.offset() == lastReadEnd && rq.length() > 0) {
            long next = Math.max((end - 1) / blockSize + 1, readAheadEnd);
            long until = Math.min(blockCount, (end - 1) / blockSize + 1 + readAhead);
            if (next < until) {
                export.prefetch(next, until);
                readAheadEnd = until;
            }
        } else {
            readAheadEnd = 0;
        }
        lastReadEnd = end;
    }

    /** Starts the staged batch: each request on its own thread, the FLUSH requests together. */
    void kick(S3BlockDevice device) {
        if (staged.isEmpty()) {
            return;
        }
        long deadline = System.nanoTime() + export.settings().timeout().toNanos();
        List<Request<S3RequestData>> flushBatch = null;
        int[] flushGenerations = null;
        Request<S3RequestData> rq;
        while ((rq = staged.pollFirst()) != null) {
            if (rq.op() == ReqOp.FLUSH) {
                if (flushBatch == null) {
                    flushBatch = new ArrayList<>(depth);
                    flushGenerations = new int[depth];
                }
                Objects.requireNonNull(flushGenerations)[flushBatch.size()] = rq.generation();
                flushBatch.add(rq);
            } else {
                rq.pdu().bind(device, this, rq, deadline);
                // OWNERSHIP: the request's thread ends it.
                export.start(rq.pdu());
            }
        }
        if (flushBatch != null) {
            List<Request<S3RequestData>> batch = flushBatch;
            int[] generations = Objects.requireNonNull(flushGenerations);
            // OWNERSHIP: the flush thread ends every FLUSH of the batch, all with one status.
            export.start(() -> device.flush(this, batch, generations, deadline));
        }
    }

    void read() {
        reads.increment();
    }

    void wrote(boolean fua) {
        writes.increment();
        if (fua) {
            fuaWrites.increment();
        }
    }

    void flushed(int n) {
        flushes.add(n);
    }

    void zeroed() {
        zeroings.increment();
    }

    /** Counts a failed request; returns whether it is the context's first, worth a warning. */
    boolean failed() {
        errors.increment();
        return errors.sum() == 1;
    }

    @Override
    public String toString() {
        return "S3HwData[" + index + ": reads=" + reads + ", writes=" + writes + ", fua=" + fuaWrites + ", flushes="
                + flushes + ", zeroings=" + zeroings + ", errors=" + errors + "]";
    }
}
