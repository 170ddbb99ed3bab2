package dev.mqnbd.storage;

import java.util.Arrays;
import java.util.concurrent.atomic.LongAdder;

/**
 * A histogram with fixed bucket bounds that a backend records into on its I/O path and a metrics
 * endpoint reads when scraped: a striped counter per bucket and one for the sum. Recording takes no lock
 * and allocates nothing (after a counter's first contention).
 *
 * <p>Values are recorded as longs in the histogram's own unit (nanoseconds, requests, ...); {@code scale}
 * turns them into the base unit the readings report (1e-9 for nanoseconds to seconds).
 *
 * <p><b>Threading:</b> safe for concurrent use; a reading is a moment's snapshot, not atomic across
 * buckets.
 */
public final class Histogram {
    private final long[] bounds;
    private final double scale;
    private final LongAdder[] counts;
    private final LongAdder sum = new LongAdder();

    /**
     * Creates a histogram whose buckets end at {@code bounds} (inclusive upper bounds, ascending, in the
     * recorded unit); one more bucket takes everything above the last.
     *
     * @throws IllegalArgumentException if {@code bounds} is empty or not strictly ascending
     */
    public Histogram(double scale, long... bounds) {
        if (bounds.length == 0) {
            throw new IllegalArgumentException("bounds: none (expected: at least one)");
        }
        for (int i = 1; i < bounds.length; i++) {
            if (bounds[i] <= bounds[i - 1]) {
                throw new IllegalArgumentException(
                        "bounds[" + i + "]: " + bounds[i] + " (expected: > " + bounds[i - 1] + ")");
            }
        }
        this.bounds = bounds.clone();
        this.scale = scale;
        this.counts = new LongAdder[bounds.length + 1];
        for (int i = 0; i < counts.length; i++) {
            counts[i] = new LongAdder();
        }
    }

    /** Records one observation of {@code value} (in the recorded unit). */
    public void record(long value) {
        int i = Arrays.binarySearch(bounds, value);
        counts[i >= 0 ? i : -i - 1].increment();
        sum.add(value);
    }

    /** Returns the buckets' upper bounds in the base unit, ascending, the last one {@code +Inf}. */
    public double[] upperBounds() {
        double[] out = new double[counts.length];
        for (int i = 0; i < bounds.length; i++) {
            out[i] = bounds[i] * scale;
        }
        out[bounds.length] = Double.POSITIVE_INFINITY;
        return out;
    }

    /** Returns how many observations fell in each bucket of {@link #upperBounds()} (not cumulative). */
    public long[] counts() {
        long[] out = new long[counts.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = counts[i].sum();
        }
        return out;
    }

    /** Returns the number of observations. */
    public long count() {
        long n = 0;
        for (LongAdder c : counts) {
            n += c.sum();
        }
        return n;
    }

    /** Returns the sum of the observations, in the base unit. */
    public double sum() {
        return sum.sum() * scale;
    }

    @Override
    public String toString() {
        return "Histogram[" + count() + " observations, sum " + sum() + "]";
    }
}
