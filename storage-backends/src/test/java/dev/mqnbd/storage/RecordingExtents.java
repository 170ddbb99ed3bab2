package dev.mqnbd.storage;

import dev.mqnbd.mq.Extents;
import java.util.ArrayList;
import java.util.List;

/**
 * An {@link Extents} sink for backend tests: keeps every run as {@code {length, flags}}, extending the
 * last run when the flags repeat (as the contract allows), and refuses runs beyond {@code max}.
 */
public final class RecordingExtents implements Extents {
    /** The runs added so far, each {@code {length, flags}}. */
    public final List<long[]> runs = new ArrayList<>();

    private final int max;

    /** A sink without a limit. */
    public RecordingExtents() {
        this(Integer.MAX_VALUE);
    }

    /** A sink that takes at most {@code max} runs. */
    public RecordingExtents(int max) {
        this.max = max;
    }

    @Override
    public boolean add(long length, int flags) {
        if (!runs.isEmpty() && runs.getLast()[1] == flags) {
            runs.getLast()[0] += length;
            return true;
        }
        if (runs.size() == max) {
            return false;
        }
        runs.add(new long[] {length, flags});
        return true;
    }

    @Override
    public void clear() {
        runs.clear();
    }

    @Override
    public int count() {
        return runs.size();
    }

    @Override
    public long total() {
        return runs.stream().mapToLong(r -> r[0]).sum();
    }

    @Override
    public long runLength(int i) {
        return runs.get(i)[0];
    }

    @Override
    public int runFlags(int i) {
        return (int) runs.get(i)[1];
    }

    /** Returns the runs as {@code "length:flags"} strings, for readable assertions. */
    public List<String> described() {
        return runs.stream().map(r -> r[0] + ":" + r[1]).toList();
    }
}
