package dev.mqnbd.mq;

import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * A driver filter that injects faults into the requests of the driver it wraps: nbdkit's error and delay
 * filters as a blk-mq driver, a forwarding decorator ({@code next}) like every filter in mqnbd.
 *
 * <p>Each request is offered to the {@link FaultRule}s in the order they were added; the first rule that
 * picks it acts on it (fail, delay, drop or answer BUSY), and a request no rule picks goes to the wrapped
 * driver untouched. Rules can be added, removed and switched off while requests flow, so a test can break
 * a device, watch what the front end does, and mend it again.
 *
 * <pre>{@code
 * FaultInjectingOperations<H, Q, T, R> faulty = FaultInjectingOperations.wrap(driver);
 * FaultRule eio = faulty.add(FaultRule.on(ReqOp.WRITE).range(0, 1 << 20).everyNth(3).fail(Status.IO_ERROR));
 * FaultRule lost = faulty.add(FaultRule.on(ReqOp.FLUSH).firstN(1).drop()); // needs a tag-set timeout
 * TagSet<H, Q, T, R> tags = TagSet.builder(faulty).timeout(Duration.ofSeconds(1)).build();
 * }</pre>
 *
 * <p>What the wrapped driver sees stays within the {@link Operations} contract: it never sees a request a
 * rule failed or dropped, nor its {@link #complete}; a delayed request reaches it later, alone (with
 * {@code isLast = true}), on its hardware context's executor; when a rule takes the request that would
 * have closed a run of {@code queueRq(..., false)}, the filter closes the run with {@code commitRqs}; and
 * {@code commitRqs} reaches it only while it has such a run open. (The filter finds a context from its
 * {@code H} in {@code commitRqs}; for a driver whose contexts share one {@code H} object, or use {@code
 * null}, it passes every {@code commitRqs} on, as mq-core calls it.) The wrapper is a {@link
 * PollingOperations} exactly when the wrapped driver is ({@link #wrap}), so the tag set detects polling as
 * it would without the filter.
 *
 * <p>A dropped request stays in flight until the tag set's timeout hands it to {@link #timeout}, which
 * ends it with the rule's status (default {@link Status#TIMEOUT}, which the NBD front end answers with
 * {@code EIO}). Without a timeout nothing ends it: call {@link #endDropped} before closing the queue, or
 * the close waits for it.
 *
 * <p><b>Ownership:</b> a request a rule picked belongs to the filter until it ends (fail, drop) or is
 * handed on (delay, from which point the wrapped driver owns it as usual); BUSY hands it back to mq-core.
 * The filter keeps a reference to each request it holds, and none after that.
 *
 * <p><b>Threading:</b> the driver callbacks run where mq-core calls them; rules are read from a
 * copy-on-write array, so the path of a request no rule selects takes one volatile read, a few compares
 * per rule, and allocates nothing. {@link #add}, {@link #remove}, {@link #clear} and {@link #endDropped}
 * may be called from any thread.
 */
public sealed class FaultInjectingOperations<H, Q, T, R> implements Operations<H, Q, T, R>
        permits FaultInjectingOperations.Polling {
    private static final System.Logger LOG = System.getLogger(FaultInjectingOperations.class.getName());

    private static final FaultRule[] NO_RULES = {};

    /** How soon a delayed request the wrapped driver answered BUSY is offered again (mq-core's own delay). */
    private static final long BUSY_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(3);

    /** The state of a request the filter holds: failed (its completion must not reach the driver)... */
    private static final Object FAILED = new Object();

    /** ...or waiting out a delay. A dropped request maps to the status its timeout ends it with. */
    private static final Object DELAYED = new Object();

    private final Operations<H, Q, T, R> next;
    private volatile FaultRule[] rules = NO_RULES;
    private final Map<Request<?>, Object> held = new ConcurrentHashMap<>();

    // Per hardware context, written at build time (initHctx runs on the building thread, before any I/O):
    // the driver's data, to tell which context a commitRqs is for, and whether the wrapped driver has a run
    // of queueRq(..., false) open. An element of `open` is touched only on its context's executor.
    private volatile Object[] hwData = new Object[0];
    private volatile boolean[] open = new boolean[0];
    private volatile boolean hwDataUnique = true;

    FaultInjectingOperations(Operations<H, Q, T, R> next) {
        this.next = Objects.requireNonNull(next, "next");
    }

    /**
     * Wraps {@code next}; the result implements {@link PollingOperations} when {@code next} does. It has no
     * rules yet, so it passes every request on.
     */
    public static <H, Q, T, R> FaultInjectingOperations<H, Q, T, R> wrap(Operations<H, Q, T, R> next) {
        return next instanceof PollingOperations<H, Q, T, R> polling ? new Polling<>(polling) : new FaultInjectingOperations<>(next);
    }

    /** Returns the wrapped driver. */
    public Operations<H, Q, T, R> next() {
        return next;
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

    /** Removes every rule: from now on every request goes to the wrapped driver. */
    public synchronized void clear() {
        rules = NO_RULES;
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
        QueueLimits.requireArgument(status.isError(), "status: %s (expected: an error status)", status);
        int n = 0;
        for (Map.Entry<Request<?>, Object> e : held.entrySet()) {
            Request<?> rq = e.getKey();
            Object state = e.getValue();
            // OWNERSHIP: whoever moves a dropped request to FAILED ends it; complete() forgets it.
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
    public H initHctx(T tagSetData, int hctxIndex) throws Exception {
        H hw = next.initHctx(tagSetData, hctxIndex);
        synchronized (this) {
            int n = Math.max(hwData.length, hctxIndex + 1);
            Object[] data = Arrays.copyOf(hwData, n);
            data[hctxIndex] = hw;
            boolean unique = hw != null;
            for (int i = 0; i < n && unique; i++) {
                unique = i == hctxIndex || data[i] != hw;
            }
            hwDataUnique = hwDataUnique && unique;
            open = Arrays.copyOf(open, n);
            hwData = data;
        }
        return hw;
    }

    @Override
    public void exitHctx(H hw, int hctxIndex) throws Exception {
        next.exitHctx(hw, hctxIndex);
    }

    @Override
    public R newRequestData() {
        return next.newRequestData();
    }

    @Override
    public Status queueRq(H hw, Q queue, Request<R> rq, boolean isLast) {
        FaultRule[] now = rules;
        for (FaultRule rule : now) {
            if (rule.picks(rq)) {
                return inject(rule, hw, queue, rq, isLast);
            }
        }
        return pass(hw, queue, rq, isLast);
    }

    @Override
    public void commitRqs(H hw, Q queue) {
        int index = indexOf(hw);
        if (index < 0) {
            next.commitRqs(hw, queue);
        } else if (open[index]) {
            open[index] = false;
            next.commitRqs(hw, queue);
        }
    }

    @Override
    public void complete(Request<R> rq) {
        // A request a rule failed or dropped was never the wrapped driver's: its completion is not either.
        if (!held.isEmpty() && held.remove(rq, FAILED)) {
            return;
        }
        next.complete(rq);
    }

    @Override
    public TimeoutAction timeout(Request<R> rq) {
        Object state = held.isEmpty() ? null : held.get(rq);
        if (state == null) {
            return next.timeout(rq);
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

    private Status pass(H hw, Q queue, Request<R> rq, boolean isLast) {
        Status status = next.queueRq(hw, queue, rq, isLast);
        if (status != Status.BUSY) {
            boolean[] runs = open;
            int index = rq.hwIndex();
            // Written only when it changes: the flags of all contexts share a cache line.
            if (runs[index] == isLast) {
                runs[index] = !isLast;
            }
        }
        return status;
    }

    private Status inject(FaultRule rule, H hw, Q queue, Request<R> rq, boolean isLast) {
        if (LOG.isLoggable(Level.DEBUG)) {
            LOG.log(Level.DEBUG, rule + " picked " + rq);
        }
        switch (rule.action()) {
            case BUSY -> {
                // mq-core requeues it and closes an open run itself (commitRqs, which reaches next if open).
                return Status.BUSY;
            }
            case FAIL -> {
                // OWNERSHIP: mq-core ends the request with the returned status; complete() forgets it.
                held.put(rq, FAILED);
                closeRun(hw, queue, rq, isLast);
                return rule.status();
            }
            case DROP -> {
                // OWNERSHIP: the filter keeps the request until timeout() or endDropped() ends it.
                held.put(rq, rule.status());
                closeRun(hw, queue, rq, isLast);
                return Status.OK;
            }
            case DELAY -> {
                // OWNERSHIP: the filter keeps the request until the delay is over, then hands it to next.
                held.put(rq, DELAYED);
                closeRun(hw, queue, rq, isLast);
                int generation = rq.generation();
                rq.hctx.executor.schedule(
                        () -> passDelayed(hw, queue, rq, generation), rule.delayNanos(), TimeUnit.NANOSECONDS);
                return Status.OK;
            }
        }
        throw new AssertionError(rule.action());
    }

    /** Runs on the request's hardware context when its delay is over. */
    private void passDelayed(H hw, Q queue, Request<R> rq, int generation) {
        // INVARIANT: only the dispatch that was delayed is handed on, once; a stale timer finds nothing.
        if (rq.generation() != generation || !held.remove(rq, DELAYED)) {
            return;
        }
        Status status;
        try {
            status = pass(hw, queue, rq, true);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queueRq threw for delayed " + rq + "; ending it with IO_ERROR", e);
            status = rq.state() == Request.IN_FLIGHT ? Status.IO_ERROR : Status.OK;
        }
        if (status == Status.BUSY) {
            held.put(rq, DELAYED);
            // A BUSY isLast request leaves an open run open, as mq-core treats it.
            int index = rq.hwIndex();
            if (open[index]) {
                open[index] = false;
                next.commitRqs(hw, queue);
            }
            rq.hctx.executor.schedule(
                    () -> passDelayed(hw, queue, rq, generation), BUSY_RETRY_NANOS, TimeUnit.NANOSECONDS);
        } else if (status != Status.OK) {
            rq.end(status);
        }
    }

    /** The wrapped driver will not see {@code rq}: if it was to close a run, close it with commitRqs. */
    private void closeRun(H hw, Q queue, Request<R> rq, boolean isLast) {
        int index = rq.hwIndex();
        if (isLast && open[index]) {
            open[index] = false;
            next.commitRqs(hw, queue);
        }
    }

    /** Returns the context whose data is {@code hw}, or -1 when contexts cannot be told apart by it. */
    private int indexOf(H hw) {
        if (!hwDataUnique || hw == null) {
            return -1;
        }
        Object[] data = hwData;
        for (int i = 0; i < data.length; i++) {
            if (data[i] == hw) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public String toString() {
        return "FaultInjectingOperations[" + next + ", rules: " + Arrays.toString(rules) + "]";
    }

    /** The filter over a driver that polls: {@code poll} passes straight through. */
    static final class Polling<H, Q, T, R> extends FaultInjectingOperations<H, Q, T, R>
            implements PollingOperations<H, Q, T, R> {
        private final PollingOperations<H, Q, T, R> polling;

        Polling(PollingOperations<H, Q, T, R> next) {
            super(next);
            this.polling = next;
        }

        @Override
        public boolean poll(H hw) {
            return polling.poll(hw);
        }
    }
}
