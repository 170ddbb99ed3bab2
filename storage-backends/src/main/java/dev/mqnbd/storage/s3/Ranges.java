package dev.mqnbd.storage.s3;

import java.util.Arrays;

/**
 * Byte ranges of one block, disjoint and sorted, with ranges that touch merged: the bytes of a {@link
 * Block} written since its last upload began. A block's many small writes (4 KiB random writes into a 1
 * MiB block: at most 256 ranges) cost a binary search and a shift each.
 *
 * <p><b>Threading:</b> not thread-safe; used under the block's lock.
 */
final class Ranges {
    private int[] starts = new int[4];
    private int[] ends = new int[4];
    private int n;

    /** Forgets every range. */
    void clear() {
        n = 0;
    }

    /** Returns the number of ranges. */
    int count() {
        return n;
    }

    /** Returns where range {@code i} starts. */
    int start(int i) {
        return starts[i];
    }

    /** Returns where range {@code i} ends (exclusive). */
    int end(int i) {
        return ends[i];
    }

    /** Adds {@code [from, to)}, merged with the ranges it overlaps or touches. */
    void add(int from, int to) {
        if (from >= to) {
            return;
        }
        int lo = firstEndingAtOrAfter(from);
        int hi = lo;
        while (hi < n && starts[hi] <= to) {
            hi++;
        }
        if (lo < hi) {
            // Ranges [lo, hi) overlap or touch the new one: they become one range at lo.
            starts[lo] = Math.min(from, starts[lo]);
            ends[lo] = Math.max(to, ends[hi - 1]);
            int removed = hi - lo - 1;
            if (removed > 0) {
                System.arraycopy(starts, hi, starts, lo + 1, n - hi);
                System.arraycopy(ends, hi, ends, lo + 1, n - hi);
                n -= removed;
            }
            return;
        }
        if (n == starts.length) {
            starts = Arrays.copyOf(starts, n * 2);
            ends = Arrays.copyOf(ends, n * 2);
        }
        System.arraycopy(starts, lo, starts, lo + 1, n - lo);
        System.arraycopy(ends, lo, ends, lo + 1, n - lo);
        starts[lo] = from;
        ends[lo] = to;
        n++;
    }

    /** Returns whether every byte of {@code [from, to)} is in a range. */
    boolean covers(int from, int to) {
        if (from >= to) {
            return true;
        }
        int i = firstEndingAtOrAfter(from + 1);
        return i < n && starts[i] <= from && ends[i] >= to;
    }

    /** Copies the bytes of {@code src} that lie outside every range into {@code dst} (same length). */
    void copyGaps(byte[] src, byte[] dst) {
        int pos = 0;
        for (int i = 0; i < n; i++) {
            System.arraycopy(src, pos, dst, pos, starts[i] - pos);
            pos = ends[i];
        }
        System.arraycopy(src, pos, dst, pos, src.length - pos);
    }

    /** Returns the index of the first range that ends at or after {@code pos}, or {@code n} if none. */
    private int firstEndingAtOrAfter(int pos) {
        int lo = 0;
        int hi = n;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (ends[mid] < pos) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("[");
        for (int i = 0; i < n; i++) {
            s.append(i == 0 ? "" : ", ").append(starts[i]).append('-').append(ends[i]);
        }
        return s.append(']').toString();
    }
}
