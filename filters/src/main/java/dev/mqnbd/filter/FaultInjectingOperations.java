package dev.mqnbd.filter;

import static dev.mqnbd.filter.Checks.requireArgument;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TimeoutAction;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * A filter that injects faults into the requests of the layer it wraps: nbdkit's error and delay filters
 * as a blk-mq driver. The command line's {@code error} and {@code delay} filters are this filter with
 * rules made from their settings; tests build rules of their own.
 *
 * <p>Each request is offered to the {@link FaultRule}s in the order they were added; the first rule that
 * picks it acts on it (fail, delay, drop or answer BUSY), and a request no rule picks goes to the next
 * layer untouched. Rules can be added, removed and switched off while requests flow, so a test can break
 * a device, watch what the front end does, and mend it again.
 *
 * <pre>{@code
 * FaultInjectingOperations<H, Q, T, R> faulty = FaultInjectingOperations.wrap(driver, limits);
 * FaultRule eio = faulty.add(FaultRule.on(ReqOp.WRITE).range(0, 1 << 20).everyNth(3).fail(Status.IO_ERROR));
 * FaultRule lost = faulty.add(FaultRule.on(ReqOp.FLUSH).firstN(1).drop()); // needs a tag-set timeout
 * }</pre>
 *
 * <p>What the next layer sees stays within the {@link Operations} contract (the {@link Filter} base
 * keeps it): it never sees a request a rule failed or dropped, nor its completion; a delayed request
 * reaches it later, alone (with {@code isLast = true}), on its hardware context's executor; a run of
 * {@code queueRq(..., false)} it has open is closed when a rule takes the request that would have closed it.
 *
 * <p>A dropped request stays in flight until the tag set's timeout hands it to {@link #timeout}, which
 * ends it with the rule's status (default {@link Status#TIMEOUT}, which the NBD front end answers with
 * {@code EIO}). Without a timeout nothing ends it: call {@link #endDropped} before closing the queue, or
 * the close waits for it.
 *
 * <p><b>Ownership:</b> a request a rule picked belongs to the filter until it ends (fail, drop) or is
 * handed on (delay, from which point the next layer owns it as usual); BUSY hands it back to mq-core.
 * The filter keeps a reference to each request it holds, and none after that.
 *
 * <p><b>Threading:</b> the driver callbacks run where mq-core calls them; rules are read from a
 * copy-on-write array, so the path of a request no rule selects takes one volatile read, a few compares
 * per rule, and allocates nothing. {@link #add}, {@link #remove}, {@link #clear} and {@link #endDropped}
 * may be called from any thread.
 */
public final class FaultInjectingOperations<N, Q, T, R> extends Filter<FilterContext<N>, N, Q, T, R> {
    private static final System.Logger LOG = System.getLogger(FaultInjectingOperations.class.getName());

    private static final FaultRule[] NO_RULES = {};

    /** How soon a delayed request the next layer answered BUSY is offered again (mq-core's own delay). */
    private static final long BUSY_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(3);

    /** The state of a request the filter holds: failed (its completion must not reach the driver)... */
    private static final Object FAILED = new Object();

    /** ...or waiting out a delay. A dropped request maps to the status its timeout ends it with. */
    private static final Object DELAYED = new Object();

    private final String label;
    /** Whether toString lists the rules: for a filter built in code, not for a kind's, whose label says it all. */
    private final boolean listsRules;

    private volatile FaultRule[] rules = NO_RULES;
    private final Map<Request<?>, Object> held = new ConcurrentHashMap<>();

    private FaultInjectingOperations(
            Operations<N, Q, T, R> next, QueueLimits limits, String label, boolean listsRules) {
        super(next, limits);
        this.label = label;
        this.listsRules = listsRules;
    }

    /**
     * Wraps {@code next}, whose limits are {@code limits}; the filter changes none of them. It has no
     * rules yet, so it passes every request on.
     */
    public static <N, Q, T, R> FaultInjectingOperations<N, Q, T, R> wrap(
            Operations<N, Q, T, R> next, QueueLimits limits) {
        return new FaultInjectingOperations<>(next, limits, "faults", true);
    }

    /** Like {@link #wrap(Operations, QueueLimits)}, shown in the export's stack as {@code label}. */
    static <N, Q, T, R> FaultInjectingOperations<N, Q, T, R> wrap(
            Operations<N, Q, T, R> next, QueueLimits limits, String label) {
        return new FaultInjectingOperations<>(next, limits, label, false);
    }

    /** Adds {@code rule} after the rules already there; returns it. */
    public synchronized FaultRule add(FaultRule rule) {
        Objects.requireNonNull(rule, "rule");
        FaultRule[] now = Arrays.copyOf(rules, rules.length + 1);
        now[now.length - 1] = rule;
        rules = now;
        return rule;
    }

    /** Removes {@code rule}; returns whether it was there. Requests it already holds stay held. */
    public synchronized boolean remove(FaultRule rule) {
        List<FaultRule> now = new ArrayList<>(Arrays.asList(rules));
        boolean removed = now.remove(rule);
        rules = now.toArray(NO_RULES);
        return removed;
    }

    /** Removes every rule: from now on every request goes to the next layer. */
    public synchronized void clear() {
        rules = NO_RULES;
    }

    @Override
    public Map<String, Long> counters() {
        long injected = 0;
        for (FaultRule rule : rules) {
            injected += rule.injected();
        }
        return Map.of("injected", injected);
    }

    /** Returns the rules, in the order they are tried. */
    public List<FaultRule> rules() {
        return List.of(rules);
    }

    /** Returns how many dropped requests are still in flight. */
    public int droppedInFlight() {
        int n = 0;
        for (Object state : held.values()) {
            if (state instanceof Status) {
                n++;
            }
        }
        return n;
    }

    /**
     * Ends every dropped request still in flight with {@code status}, as a driver aborting lost commands;
     * returns how many it ended. Safe against a timeout ending the same request at the same time: each
     * ends once.
     *
     * @throws IllegalArgumentException if {@code status} is not an error
     */
    public int endDropped(Status status) {
        requireArgument(status.isError(), "status: %s (expected: an error status)", status);
        int n = 0;
        for (Map.Entry<Request<?>, Object> e : held.entrySet()) {
            Request<?> rq = e.getKey();
            Object state = e.getValue();
            // OWNERSHIP: whoever moves a dropped request to FAILED ends it; ended() forgets it.
            if (state instanceof Status && held.replace(rq, state, FAILED)) {
                rq.end(status);
                n++;
            }
        }
        return n;
    }

    // ----------------------------------------------------------------------------------------------
    // The driver.

    @Override
    protected FilterContext<N> newContext(N next, int index) {
        return new FilterContext<>(next, index);
    }

    @Override
    public Status queueRq(FilterContext<N> hw, Q queue, Request<R> rq, boolean isLast) {
        FaultRule[] now = rules;
        for (FaultRule rule : now) {
            if (rule.picks(rq)) {
                return inject(rule, hw, queue, rq, isLast);
            }
        }
        return pass(hw, queue, rq, isLast);
    }

    @Override
    protected void ended(@Nullable FilterContext<N> hw, Request<R> rq, boolean wasPassed) {
        if (!wasPassed && !held.isEmpty()) {
            held.remove(rq, FAILED);
        }
    }

    @Override
    public TimeoutAction timeout(Request<R> rq) {
        Object state = held.isEmpty() ? null : held.get(rq);
        if (state == null) {
            return super.timeout(rq);
        }
        if (state instanceof Status status && held.replace(rq, state, FAILED)) {
            // The device lost the command: abort it, as a driver's timeout handler does.
            rq.end(status);
            return TimeoutAction.DONE;
        }
        // Still waiting out a delay (or being ended by endDropped right now): give it another period.
        return TimeoutAction.RESET_TIMER;
    }

    // ----------------------------------------------------------------------------------------------

    private Status inject(FaultRule rule, FilterContext<N> hw, Q queue, Request<R> rq, boolean isLast) {
        if (LOG.isLoggable(Level.DEBUG)) {
            LOG.log(Level.DEBUG, rule + " picked " + rq);
        }
        switch (rule.action()) {
            case BUSY -> {
                // mq-core requeues it and closes an open run itself (commitRqs, which reaches next if open).
                return Status.BUSY;
            }
            case FAIL -> {
                // OWNERSHIP: mq-core ends the request with the returned status; ended() forgets it.
                held.put(rq, FAILED);
                took(hw, queue, isLast);
                return Objects.requireNonNull(rule.status()); // a FAIL rule always has one
            }
            case DROP -> {
                // OWNERSHIP: the filter keeps the request until timeout() or endDropped() ends it.
                held.put(rq, rule.status());
                took(hw, queue, isLast);
                return Status.OK;
            }
            case DELAY -> {
                // OWNERSHIP: the filter keeps the request until the delay is over, then hands it to next.
                held.put(rq, DELAYED);
                took(hw, queue, isLast);
                int generation = rq.generation();
                rq.executor()
                        .schedule(
                                () -> passDelayed(hw, queue, rq, generation), rule.delayNanos(), TimeUnit.NANOSECONDS);
                return Status.OK;
            }
        }
        throw new AssertionError(rule.action());
    }

    /** Runs on the request's hardware context when its delay is over. */
    private void passDelayed(FilterContext<N> hw, Q queue, Request<R> rq, int generation) {
        // INVARIANT: only the dispatch that was delayed is handed on, once; a stale timer finds nothing.
        if (rq.generation() != generation || !held.remove(rq, DELAYED)) {
            return;
        }
        Status status;
        try {
            status = pass(hw, queue, rq, true);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queueRq threw for delayed " + rq + "; ending it with IO_ERROR", e);
            status = Status.IO_ERROR;
        }
        if (status == Status.BUSY) {
            held.put(rq, DELAYED);
            // A BUSY isLast request leaves an open run open, as mq-core treats it: close it.
            commitRqs(hw, queue);
            rq.executor()
                    .schedule(() -> passDelayed(hw, queue, rq, generation), BUSY_RETRY_NANOS, TimeUnit.NANOSECONDS);
        } else if (status != Status.OK) {
            try {
                rq.end(generation, status);
            } catch (IllegalStateException alreadyEnded) {
                // The next layer ended it before it threw: it ended once, which is all that matters.
            }
        }
    }

    @Override
    public String toString() {
        return !listsRules || rules.length == 0 ? label : label + Arrays.toString(rules);
    }
}
