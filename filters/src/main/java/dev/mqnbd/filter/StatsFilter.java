package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import org.jspecify.annotations.Nullable;

/**
 * The layer that counts an export's requests for {@link ExportStats}: on top of the stack, it notes when
 * each request is first offered and, when it ends, its operation, status, bytes and latency. It passes
 * every request on unchanged and advertises the limits of the layer below.
 *
 * <p>Cost: per request two {@link System#nanoTime} calls and a handful of plain stores into the context's
 * preallocated {@link StatsCells}; no allocation, no lock, no label lookup.
 *
 * <p><b>Threading:</b> each context writes only its own cells, on its executor.
 */
final class StatsFilter<N, Q, T, R> extends Filter<StatsFilter.Context<N>, N, Q, T, R> {
    private final ExportStats stats;

    StatsFilter(Operations<N, Q, T, R> next, QueueLimits limits, ExportStats stats) {
        super(next, limits);
        this.stats = stats;
    }

    /** A context of the filter: the next layer's data and this context's counters. */
    static final class Context<N> extends FilterContext<N> {
        final StatsCells cells;

        Context(N next, int index, StatsCells cells) {
            super(next, index);
            this.cells = cells;
        }
    }

    @Override
    protected Context<N> newContext(N next, int index) {
        return new Context<>(next, index, stats.cells(index));
    }

    @Override
    public Status queueRq(Context<N> hw, Q queue, Request<R> rq, boolean isLast) {
        hw.cells.offered(rq.tag(), System.nanoTime());
        return pass(hw, queue, rq, isLast);
    }

    @Override
    protected void ended(@Nullable Context<N> hw, Request<R> rq, boolean wasPassed) {
        if (hw != null) {
            hw.cells.ended(rq.tag(), rq.op(), rq.status(), rq.length(), rq.hasFlag(ReqFlags.FUA), System.nanoTime());
        }
    }

    @Override
    public String toString() {
        return "stats";
    }
}
