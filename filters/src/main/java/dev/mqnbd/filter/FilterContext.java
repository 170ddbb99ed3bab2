package dev.mqnbd.filter;

import java.util.Arrays;

/**
 * A filter's data of one hardware context, built around the next layer's: the {@code H} of a {@link
 * Filter}. Filters with state of their own per context extend it.
 *
 * <p><b>Threading:</b> touched only on its context's executor, like every {@code H}.
 *
 * @param <N> the next layer's per-context data
 */
public class FilterContext<N> {
    private final N next;
    private final int index;

    /** Whether the next layer has a run of {@code queueRq(..., false)} open on this context. */
    boolean runOpen;

    /** Per tag: whether the request holding it was handed to the next layer in its current dispatch. */
    private boolean[] passed = new boolean[0];

    /** Creates the data of context {@code index} around the next layer's {@code next}. */
    public FilterContext(N next, int index) {
        this.next = next;
        this.index = index;
    }

    /** Returns the next layer's data of this context. */
    public final N next() {
        return next;
    }

    /** Returns the index of this context. */
    public final int index() {
        return index;
    }

    final void passed(int tag, boolean value) {
        if (tag >= passed.length) {
            if (!value) {
                return;
            }
            // Grows once per context to the queue depth; tags are dense from 0.
            passed = Arrays.copyOf(passed, Math.max(tag + 1, passed.length * 2));
        }
        passed[tag] = value;
    }

    final boolean passed(int tag) {
        return tag < passed.length && passed[tag];
    }
}
