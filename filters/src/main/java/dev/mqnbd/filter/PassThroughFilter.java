package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;

/**
 * A filter that passes every request on and changes nothing: the smallest filter there is, and the
 * measure of what a layer costs (see the benchmarks' {@code DispatchBenchmark}).
 */
public final class PassThroughFilter<N, Q, T, R> extends Filter<FilterContext<N>, N, Q, T, R> {
    /** Wraps {@code next}, whose limits are {@code limits}. */
    public PassThroughFilter(Operations<N, Q, T, R> next, QueueLimits limits) {
        super(next, limits);
    }

    @Override
    protected FilterContext<N> newContext(N next, int index) {
        return new FilterContext<>(next, index);
    }

    @Override
    public String toString() {
        return "pass";
    }
}
