package dev.mqnbd.filter;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The counters of one hardware context of an export, written by {@link StatsFilter} and summed by {@link
 * ExportStats} when they are read.
 *
 * <p><b>Threading:</b> one writer, the context's executor (where {@code queueRq} and {@code complete} run),
 * so an increment is a plain read and a release store: no lock, no read-modify-write instruction. Readers
 * on other threads see each counter whole, a moment late.
 */
final class StatsCells {
    static final int OPS = ReqOp.values().length;
    static final int STATUSES = Status.values().length;
    static final int BUCKETS = ExportStats.LATENCY_BOUNDS_NANOS.length + 1;

    /** Requests ended, by {@code op * STATUSES + status}. */
    final AtomicLongArray requests = new AtomicLongArray(OPS * STATUSES);
    /** Bytes of the READs and WRITEs that ended OK, by op. */
    final AtomicLongArray bytes = new AtomicLongArray(OPS);
    /** Latency, by {@code op * BUCKETS + bucket}: not cumulative, the last bucket is +Inf. */
    final AtomicLongArray latency = new AtomicLongArray(OPS * BUCKETS);
    /** The latencies' sum in nanoseconds, by op. */
    final AtomicLongArray latencyNanos = new AtomicLongArray(OPS);
    /** [0] requests taken, [1] requests ended, [2] FUA requests ended. */
    final AtomicLongArray totals = new AtomicLongArray(3);

    /** Per tag: when the request holding it was first offered, 0 when none is. Only the writer reads it. */
    private long[] startNanos = new long[0];

    /** Notes that {@code tag}'s request is offered; only its first offer (not a BUSY retry) counts. */
    void offered(int tag, long now) {
        if (tag >= startNanos.length) {
            // Grows once per context to the queue depth; tags are dense from 0.
            startNanos = Arrays.copyOf(startNanos, Math.max(tag + 1, startNanos.length * 2));
        }
        if (startNanos[tag] == 0) {
            startNanos[tag] = now == 0 ? 1 : now;
            add(totals, 0, 1);
        }
    }

    /** Counts the end of the request holding {@code tag}. */
    void ended(int tag, ReqOp op, Status status, long length, boolean fua, long now) {
        int o = op.ordinal();
        add(requests, o * STATUSES + status.ordinal(), 1);
        if (status == Status.OK && (op == ReqOp.READ || op == ReqOp.WRITE)) {
            add(bytes, o, length);
        }
        if (fua) {
            add(totals, 2, 1);
        }
        add(totals, 1, 1);
        long start = tag < startNanos.length ? startNanos[tag] : 0;
        if (start != 0) {
            startNanos[tag] = 0;
            long nanos = Math.max(0, now - start);
            add(latency, o * BUCKETS + bucket(nanos), 1);
            add(latencyNanos, o, nanos);
        } else {
            // Ended without passing through queueRq (never offered): counted in flight as ended only.
            add(totals, 0, 1);
        }
    }

    private static int bucket(long nanos) {
        long[] bounds = ExportStats.LATENCY_BOUNDS_NANOS;
        int i = 0;
        while (i < bounds.length && nanos > bounds[i]) {
            i++;
        }
        return i;
    }

    private static void add(AtomicLongArray cells, int index, long delta) {
        cells.setRelease(index, cells.getPlain(index) + delta);
    }
}
