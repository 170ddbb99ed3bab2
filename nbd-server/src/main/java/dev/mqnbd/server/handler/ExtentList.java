package dev.mqnbd.server.handler;

import dev.mqnbd.mq.Extents;
import java.util.Objects;

/**
 * A fixed-capacity {@link Extents} sink, preallocated per request slot: the runs a backend reports for a
 * READ or a BLOCK_STATUS, merged when adjacent runs have the same flags.
 *
 * <p><b>Threading:</b> filled by the backend while it owns the request, read on the event loop after
 * completion.
 */
final class ExtentList implements Extents {
    final long[] lengths;
    final int[] flags;
    private int count;
    private long total;
    private int limit;

    ExtentList(int capacity) {
        this.lengths = new long[capacity];
        this.flags = new int[capacity];
        this.limit = capacity;
    }

    /** Clears the list and accepts at most {@code max} runs (at most the capacity). */
    ExtentList reset(int max) {
        count = 0;
        total = 0;
        limit = Math.min(max, lengths.length);
        return this;
    }

    @Override
    public boolean add(long length, int runFlags) {
        if (length <= 0) {
            throw new IllegalArgumentException("length: " + length + " (expected: > 0)");
        }
        if (count > 0 && flags[count - 1] == runFlags) {
            lengths[count - 1] += length;
        } else {
            if (count == limit) {
                return false;
            }
            lengths[count] = length;
            flags[count] = runFlags;
            count++;
        }
        total += length;
        return true;
    }

    @Override
    public void clear() {
        reset(lengths.length);
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public long total() {
        return total;
    }

    @Override
    public long runLength(int i) {
        Objects.checkIndex(i, count);
        return lengths[i];
    }

    @Override
    public int runFlags(int i) {
        Objects.checkIndex(i, count);
        return flags[i];
    }

    /** Cuts the runs so that they cover at most {@code length} bytes; returns the new count. */
    int clamp(long length) {
        long covered = 0;
        for (int i = 0; i < count; i++) {
            if (covered + lengths[i] >= length) {
                lengths[i] = length - covered;
                count = lengths[i] > 0 ? i + 1 : i;
                total = length;
                break;
            }
            covered += lengths[i];
        }
        return count;
    }

    /** Returns whether any run reads as zeroes, so that a READ reply could skip sending it. */
    boolean hasZeroRun() {
        for (int i = 0; i < count; i++) {
            if ((flags[i] & ZERO) != 0) {
                return true;
            }
        }
        return false;
    }
}
