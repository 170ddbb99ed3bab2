package dev.mqnbd.filter;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Device;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * What an export's clients asked of it and how it answered: requests by operation and status, bytes read
 * and written, requests in flight, FUA requests and a latency histogram per operation. Counted by a layer
 * put on top of the export's stack with {@link #on}, so every export counts the same way whatever its
 * backend and filters.
 *
 * <p>Latency is measured from when the request is first offered to the top layer (after the front end
 * decoded it and took a tag; BUSY retries included) to when it ends, before its reply is encoded.
 *
 * <p><b>Threading:</b> the counters are written per hardware context without locks and summed when read;
 * readings are safe from any thread and are a moment's snapshot. Counters never go down.
 */
public final class ExportStats {
    /** The upper bounds of the latency buckets, in nanoseconds: 25 µs to 10 s; one more bucket is +Inf. */
    static final long[] LATENCY_BOUNDS_NANOS = {
        25_000,
        50_000,
        100_000,
        250_000,
        500_000,
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        2_500_000_000L,
        5_000_000_000L,
        10_000_000_000L
    };

    private volatile StatsCells[] cells = new StatsCells[0];

    /** Creates the counters of one export, all zero. */
    public ExportStats() {}

    /**
     * Returns {@code below} with the layer that counts into {@code stats} on top of it, advertising the same
     * limits.
     *
     * <p><b>Ownership:</b> as with every filter, {@code below}'s data moves to the returned device.
     */
    public static <H, Q, T, R> Device<?, Q, T, R> on(Device<H, Q, T, R> below, ExportStats stats) {
        return Filters.on(new StatsFilter<>(below.driver(), below.limits(), stats), below);
    }

    /** Returns the counters of context {@code index}, created on first use; kept when the context is torn down. */
    synchronized StatsCells cells(int index) {
        StatsCells[] now = cells;
        if (index >= now.length) {
            int from = now.length;
            now = Arrays.copyOf(now, index + 1);
            // INVARIANT: no slot of the published array is null, so readers need no check.
            for (int i = from; i < now.length; i++) {
                now[i] = new StatsCells();
            }
            cells = now;
        }
        return now[index];
    }

    /** Returns the upper bounds of the latency buckets in seconds, ascending; the +Inf bucket is not listed. */
    public static double[] latencyBoundsSeconds() {
        double[] seconds = new double[LATENCY_BOUNDS_NANOS.length];
        for (int i = 0; i < seconds.length; i++) {
            seconds[i] = LATENCY_BOUNDS_NANOS[i] / (double) TimeUnit.SECONDS.toNanos(1);
        }
        return seconds;
    }

    /** Returns how many {@code op} requests ended with {@code status}. */
    public long requests(ReqOp op, Status status) {
        long n = 0;
        for (StatsCells c : live()) {
            n += c.requests.getAcquire(op.ordinal() * StatsCells.STATUSES + status.ordinal());
        }
        return n;
    }

    /** Returns the bytes of the {@code op} requests (READ or WRITE) that ended OK; 0 for other operations. */
    public long bytes(ReqOp op) {
        long n = 0;
        for (StatsCells c : live()) {
            n += c.bytes.getAcquire(op.ordinal());
        }
        return n;
    }

    /** Returns how many requests with the FUA flag ended. */
    public long fuaRequests() {
        return total(2);
    }

    /** Returns how many requests were offered and have not ended yet. */
    public long inFlight() {
        return Math.max(0, total(0) - total(1));
    }

    /**
     * Returns the latency histogram of {@code op}: how many requests fell in each bucket of {@link
     * #latencyBoundsSeconds()}, then the +Inf bucket (not cumulative).
     */
    public long[] latencyBuckets(ReqOp op) {
        long[] counts = new long[StatsCells.BUCKETS];
        for (StatsCells c : live()) {
            for (int b = 0; b < counts.length; b++) {
                counts[b] += c.latency.getAcquire(op.ordinal() * StatsCells.BUCKETS + b);
            }
        }
        return counts;
    }

    /** Returns the sum of the latencies of {@code op} requests, in seconds. */
    public double latencySumSeconds(ReqOp op) {
        long nanos = 0;
        for (StatsCells c : live()) {
            nanos += c.latencyNanos.getAcquire(op.ordinal());
        }
        return nanos / 1e9;
    }

    private long total(int index) {
        long n = 0;
        for (StatsCells c : live()) {
            n += c.totals.getAcquire(index);
        }
        return n;
    }

    private StatsCells[] live() {
        return cells;
    }
}
