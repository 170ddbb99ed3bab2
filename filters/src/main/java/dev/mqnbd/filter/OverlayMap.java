package dev.mqnbd.filter;

import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Which byte ranges of a copy-on-write export live in its overlay: runs of {@link #DATA} (written there)
 * and {@link #ZERO} (trimmed or zeroed there); every other byte is {@link #BASE}, still read from the layer
 * below. Kept as disjoint runs, adjacent runs of one state merged, so zeroing a terabyte is one entry and
 * memory grows with the number of separate runs written, not with the export's size.
 *
 * <p><b>Threading:</b> safe for every hardware context at once; each call holds the map's lock for
 * {@code O(log n)} plus the runs it replaces.
 */
final class OverlayMap {
    /** Not in the overlay: read from the layer below. */
    static final int BASE = 0;

    /** Written: read from the overlay. */
    static final int DATA = 1;

    /** Trimmed or zeroed: reads as zeroes. */
    static final int ZERO = 2;

    /** Run start to {@code {end, state}}; no two runs overlap, and touching runs differ in state. */
    private final TreeMap<Long, long[]> runs = new TreeMap<>();

    /** Marks {@code [from, to)} as {@code state} ({@link #DATA} or {@link #ZERO}). */
    synchronized void set(long from, long to, int state) {
        if (from >= to) {
            return;
        }
        // Cut whatever overlaps [from, to), keeping the parts outside it.
        Map.Entry<Long, long[]> before = runs.lowerEntry(from);
        if (before != null && before.getValue()[0] > from) {
            long[] run = before.getValue();
            if (run[0] > to) {
                runs.put(to, new long[] {run[0], run[1]});
            }
            run[0] = from;
        }
        for (Map.Entry<Long, long[]> e = runs.ceilingEntry(from);
                e != null && e.getKey() < to;
                e = runs.ceilingEntry(from)) {
            long[] run = Objects.requireNonNull(runs.remove(e.getKey()));
            if (run[0] > to) {
                runs.put(to, run);
                break;
            }
        }
        long start = from;
        long end = to;
        Map.Entry<Long, long[]> left = runs.lowerEntry(from);
        if (left != null && left.getValue()[0] == from && left.getValue()[1] == state) {
            start = left.getKey();
            runs.remove(start);
        }
        long[] right = runs.get(to);
        if (right != null && right[1] == state) {
            end = right[0];
            runs.remove(to);
        }
        runs.put(start, new long[] {end, state});
    }

    /** Returns the state of the byte at {@code offset}. */
    synchronized int stateAt(long offset) {
        Map.Entry<Long, long[]> e = runs.floorEntry(offset);
        return e != null && e.getValue()[0] > offset ? (int) e.getValue()[1] : BASE;
    }

    /** Returns where the run holding {@code offset} ends (the first byte in another state), at most {@code limit}. */
    synchronized long runEnd(long offset, long limit) {
        Map.Entry<Long, long[]> e = runs.floorEntry(offset);
        if (e != null && e.getValue()[0] > offset) {
            return Math.min(e.getValue()[0], limit);
        }
        Long next = runs.higherKey(offset);
        return next == null ? limit : Math.min(next, limit);
    }

    /** Returns whether every byte of {@code [from, to)} is {@link #BASE}. */
    synchronized boolean allBase(long from, long to) {
        return stateAt(from) == BASE && runEnd(from, to) == to;
    }

    /** Returns whether no byte of {@code [from, to)} is {@link #BASE}. */
    synchronized boolean noBase(long from, long to) {
        long at = from;
        while (at < to) {
            if (stateAt(at) == BASE) {
                return false;
            }
            at = runEnd(at, to);
        }
        return true;
    }

    /** Returns the number of runs: what the map's memory grows with. */
    synchronized int size() {
        return runs.size();
    }
}
