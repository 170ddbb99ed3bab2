package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TimeoutAction;
import java.util.Arrays;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * A layer between the front end and a backend: a blk-mq driver that wraps the next driver of its export,
 * as nbdkit's filters wrap {@code next}. It sees every request of its export and may pass it on ({@link
 * #pass}), answer it itself ({@link Request#end} after {@link #took}), fail it (return an error status),
 * hold it and pass it on later, or answer {@code BUSY} so that mq-core retries it.
 *
 * <p>Typed data: {@code C} is the filter's per-context data, built around the next layer's {@code N}
 * ({@link #newContext}); the queue data {@code Q}, tag-set data {@code T} and request data {@code R} are the
 * backend's, passed through unchanged. State shared by every context of the export lives in the filter
 * object itself (one per export), set up by {@link #start} and released by {@link #stop}.
 *
 * <p>What the base class guarantees the next layer, so that a whole stack keeps the {@link Operations}
 * contract:
 *
 * <ul>
 *   <li>{@code initHctx} builds the next layer's context first, then this one's; if this one's fails, the
 *       next layer's is torn down before the failure propagates. {@code exitHctx} tears down this layer's
 *       part, then the next layer's, even when the first fails.
 *   <li>A run of {@code queueRq(..., false)} the next layer saw is always closed: when the filter takes the
 *       request that would have closed it ({@link #took}), or by {@link #commitRqs}, which reaches the next
 *       layer only while it has such a run open.
 *   <li>{@link #complete} reaches the next layer only for requests it was handed in their current
 *       dispatch; a request the filter answered or failed itself is not the next layer's to complete.
 * </ul>
 *
 * <p>{@link #complete} runs after the request ended and before the submitter's completion, on the
 * request's context executor: a filter that needs to see the outcome of what it passed on (a log line, data
 * to merge into a READ) overrides {@link #ended} and finds the status in {@link Request#status()}.
 *
 * <p>The limits the filter advertises ({@link #limits()}) are computed from the next layer's at
 * construction: a filter declares there what it changes of the export's features and limits.
 *
 * <p>A stack over a {@link dev.mqnbd.mq.PollingOperations} driver does not poll; no backend polls.
 *
 * @param <C> this filter's per-context data
 * @param <N> the next layer's per-context data
 */
public abstract class Filter<C extends FilterContext<N>, N, Q, T, R> implements Operations<C, Q, T, R> {
    /** The next layer: another filter or the backend's driver. */
    protected final Operations<N, Q, T, R> next;

    private final QueueLimits limits;

    // Written while contexts are built and torn down (never during I/O); read by complete() and timeout().
    private volatile @Nullable FilterContext<?>[] contexts = new FilterContext<?>[0];
    private int live;

    /**
     * Creates the filter over {@code next}, whose limits are {@code below}.
     *
     * @param limits what this filter advertises: {@code below} with the filter's changes
     */
    protected Filter(Operations<N, Q, T, R> next, QueueLimits limits) {
        this.next = Objects.requireNonNull(next, "next");
        this.limits = Objects.requireNonNull(limits, "limits");
    }

    /** Returns the limits of the stack from this layer down: what the handshake advertises when it is on top. */
    public final QueueLimits limits() {
        return limits;
    }

    /** Returns the next layer. */
    public final Operations<N, Q, T, R> next() {
        return next;
    }

    /**
     * Builds this filter's data of context {@code index} around the next layer's.
     *
     * @throws Exception if it cannot; the next layer's context is then torn down
     */
    protected abstract C newContext(N next, int index) throws Exception;

    /** Releases this filter's part of a context; the default does nothing. */
    protected void closeContext(C context) throws Exception {}

    /**
     * Sets up the state the filter shares between its contexts; runs before the first context is built
     * (also after a {@link #stop}, if contexts are built again). The default does nothing.
     *
     * @throws Exception if it cannot; no context is built then
     */
    protected void start() throws Exception {}

    /** Releases what {@link #start} set up; runs after the last context was torn down. */
    protected void stop() throws Exception {}

    @Override
    public final C initHctx(T tagSetData, int hctxIndex) throws Exception {
        synchronized (this) {
            if (live == 0) {
                start();
            }
            live++;
        }
        C context;
        try {
            N below = next.initHctx(tagSetData, hctxIndex);
            try {
                context = newContext(below, hctxIndex);
            } catch (Exception | Error e) {
                try {
                    next.exitHctx(below, hctxIndex);
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        } catch (Exception | Error e) {
            release(e);
            throw e;
        }
        synchronized (this) {
            @Nullable FilterContext<?>[] now = Arrays.copyOf(contexts, Math.max(contexts.length, hctxIndex + 1));
            now[hctxIndex] = context;
            contexts = now;
        }
        return context;
    }

    @Override
    public final void exitHctx(C context, int hctxIndex) throws Exception {
        Throwable failure = null;
        try {
            closeContext(context);
        } catch (Exception e) {
            failure = e;
        }
        try {
            next.exitHctx(context.next(), hctxIndex);
        } catch (Exception e) {
            if (failure == null) {
                failure = e;
            } else {
                failure.addSuppressed(e);
            }
        }
        synchronized (this) {
            if (hctxIndex < contexts.length && contexts[hctxIndex] == context) {
                @Nullable FilterContext<?>[] now = contexts.clone();
                now[hctxIndex] = null;
                contexts = now;
            }
        }
        failure = release(failure);
        if (failure instanceof Exception e) {
            throw e;
        } else if (failure instanceof Error e) {
            throw e;
        }
    }

    /** One context fewer; stops the filter after the last. Returns {@code failure} with a stop failure added. */
    private @Nullable Throwable release(@Nullable Throwable failure) {
        synchronized (this) {
            if (--live > 0) {
                return failure;
            }
            try {
                stop();
            } catch (Exception e) {
                if (failure == null) {
                    return e;
                }
                failure.addSuppressed(e);
            }
            return failure;
        }
    }

    @Override
    public R newRequestData() {
        return next.newRequestData();
    }

    /** Passes every request on; filters override it and call {@link #pass} for what they let through. */
    @Override
    public Status queueRq(C hw, Q queue, Request<R> rq, boolean isLast) {
        return pass(hw, queue, rq, isLast);
    }

    /**
     * Hands {@code rq} to the next layer; returns what it answered. Must run on the request's context
     * executor (in {@code queueRq}, or in a task on {@link Request#executor()}).
     *
     * <p><b>Ownership:</b> on {@code OK} the next layer owns the request; {@code BUSY} or an error hands
     * it back to the caller, as {@link #queueRq} does to mq-core.
     */
    protected final Status pass(C hw, Q queue, Request<R> rq, boolean isLast) {
        hw.passed(rq.tag(), true);
        Status status = next.queueRq(hw.next(), queue, rq, isLast);
        if (status == Status.BUSY) {
            hw.passed(rq.tag(), false);
        } else {
            if (status != Status.OK) {
                // Handed back with an error: mq-core ends it, and its completion is not the next layer's.
                hw.passed(rq.tag(), false);
            }
            hw.runOpen = !isLast;
        }
        return status;
    }

    /**
     * Records that the filter keeps {@code rq} (to answer, fail, or pass on later) instead of passing it
     * now: if it was to close a run the next layer has open, the run is closed here with {@code commitRqs}.
     */
    protected final void took(C hw, Q queue, boolean isLast) {
        if (isLast && hw.runOpen) {
            hw.runOpen = false;
            next.commitRqs(hw.next(), queue);
        }
    }

    @Override
    public void commitRqs(C hw, Q queue) {
        if (hw.runOpen) {
            hw.runOpen = false;
            next.commitRqs(hw.next(), queue);
        }
    }

    /**
     * Runs where the request ended: lets the filter see the outcome ({@link #ended}), then hands the
     * completion to the next layer when it was given the request.
     */
    @Override
    public final void complete(Request<R> rq) {
        C hw = context(rq);
        boolean wasPassed = hw != null && hw.passed(rq.tag());
        if (hw != null && wasPassed) {
            hw.passed(rq.tag(), false);
        }
        try {
            ended(hw, rq, wasPassed);
        } finally {
            if (wasPassed) {
                next.complete(rq);
            }
        }
    }

    /**
     * Sees a request of this export end, before the submitter does; the default does nothing.
     *
     * @param hw the request's context
     * @param wasPassed whether the next layer served it (otherwise this filter answered or failed it)
     */
    protected void ended(@Nullable C hw, Request<R> rq, boolean wasPassed) {}

    /** Hands a timed-out request to the next layer when it holds it; otherwise gives it another period. */
    @Override
    public TimeoutAction timeout(Request<R> rq) {
        C hw = context(rq);
        if (hw != null && hw.passed(rq.tag())) {
            return next.timeout(rq);
        }
        return TimeoutAction.RESET_TIMER;
    }

    /** Returns the context {@code rq} was dispatched on, or {@code null} after it was torn down. */
    @SuppressWarnings("unchecked")
    protected final @Nullable C context(Request<R> rq) {
        @Nullable FilterContext<?>[] now = contexts;
        int index = rq.hwIndex();
        return index < now.length ? (C) now[index] : null;
    }

    /**
     * Returns what the filter counted of its own work since it was built, by event name ({@code deferred},
     * {@code injected}), for the metrics endpoint; never decreasing. Read from any thread; the default has none.
     */
    public Map<String, Long> counters() {
        return Map.of();
    }

    /** Returns the filter's current levels by name ({@code overlay_runs}), read from any thread; the default has none. */
    public Map<String, Long> gauges() {
        return Map.of();
    }

    /** Returns the filter's name and settings as the stack's description shows them, e.g. {@code rate(iops=5000)}. */
    @Override
    public abstract String toString();
}
