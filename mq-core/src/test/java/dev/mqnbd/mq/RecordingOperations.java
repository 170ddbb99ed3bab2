package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executor;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.IntFunction;
import java.util.function.Predicate;

/**
 * A driver that logs every callback into one thread-safe list, nbdkit {@code tests/test-layers.c} style, and
 * does what each test tells it to.
 *
 * <p>Besides the log, it checks on every call what mq-core promises a driver, and files each breach in
 * {@link #violations()} (an assertion thrown on an executor thread would be swallowed by the executor):
 *
 * <ul>
 *   <li>{@code queueRq}, {@code commitRqs}, {@code poll}, {@code timeout} and {@code complete} run on the
 *       executor of the request's hardware context;
 *   <li>{@code queueRq}, {@code commitRqs}, {@code poll} and {@code timeout} of one context never nest;
 *   <li>{@code commitRqs} is called only when a run of {@code queueRq(..., false)} is open, and no run is left
 *       open at {@code exitHctx};
 *   <li>{@code exitHctx} runs once per context, for a context whose {@code initHctx} returned.
 * </ul>
 *
 * <p>Log entries: {@code newRequestData}, {@code initHctx i}, {@code exitHctx i}, {@code queueRq i:t
 * isLast=b}, {@code queueRq i:t returned S} (only when not OK), {@code commitRqs i}, {@code complete i:t S},
 * {@code timeout i:t}, {@code poll i}, {@code close queueData}; tests add {@code completion i:t S} from
 * their {@link RequestCompletion}.
 */
class RecordingOperations
        implements Operations<RecordingOperations.Hw, RecordingOperations.QueueData, String, RecordingOperations.Pdu> {

    /** What {@code queueRq} does; {@link #hold()} unless a test says otherwise. */
    @FunctionalInterface
    interface QueueRq {
        Status apply(RecordingOperations ops, Hw hw, Request<Pdu> rq, boolean isLast);
    }

    /** The driver's per-context data. Its mutable fields are touched only on the context's executor. */
    static final class Hw {
        final int index;
        final String tagSetData;
        /** Requests taken with {@code isLast == false} and not started yet (for deferring drivers). */
        final List<Request<Pdu>> deferred = new ArrayList<>();

        int callbackDepth;
        boolean runOpen;
        boolean exited;

        Hw(int index, String tagSetData) {
            this.index = index;
            this.tagSetData = tagSetData;
        }
    }

    /** The per-request private data (the PDU); {@code serial} tells the preallocated ones apart. */
    static final class Pdu {
        final int serial;

        Pdu(int serial) {
            this.serial = serial;
        }
    }

    /** The per-queue data; closeable, so the queue closes it last. */
    final class QueueData implements AutoCloseable {
        volatile boolean failClose;

        @Override
        public void close() throws IOException {
            record("close queueData");
            if (failClose) {
                throw new IOException("close queueData failed");
            }
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Behaviours for queueRq.

    /** Takes the request and keeps it in {@link #held} until the test ends it. */
    static QueueRq hold() {
        return (ops, hw, rq, isLast) -> {
            ops.held.add(rq);
            return Status.OK;
        };
    }

    /** Ends the request inside {@code queueRq}, as the memory backend does. */
    static QueueRq endInline(Status status) {
        return (ops, hw, rq, isLast) -> {
            rq.end(status);
            return Status.OK;
        };
    }

    /** Ends the request from a thread of {@code pool}. */
    static QueueRq endOn(Executor pool, Status status) {
        return (ops, hw, rq, isLast) -> {
            pool.execute(() -> rq.end(status));
            return Status.OK;
        };
    }

    /** Returns {@code status} without taking the request. */
    static QueueRq answer(Status status) {
        return (ops, hw, rq, isLast) -> status;
    }

    /** Answers BUSY {@code times} times, then does what {@code then} does. */
    static QueueRq busyTimes(int times, QueueRq then) {
        AtomicInteger left = new AtomicInteger(times);
        return (ops, hw, rq, isLast) -> left.getAndDecrement() > 0 ? Status.BUSY : then.apply(ops, hw, rq, isLast);
    }

    // ---------------------------------------------------------------------------------------------

    private final IntFunction<? extends HctxExecutor> executors;
    private final List<String> log = Collections.synchronizedList(new ArrayList<>());
    private final List<String> violations = Collections.synchronizedList(new ArrayList<>());
    private final List<Pdu> pdus = Collections.synchronizedList(new ArrayList<>());
    private final Map<Integer, Hw> hws = new ConcurrentHashMap<>();
    private final AtomicInteger newRequestDataCalls = new AtomicInteger();

    /** Requests {@link #hold()} took, in the order queueRq saw them. */
    final LinkedBlockingDeque<Request<Pdu>> held = new LinkedBlockingDeque<>();

    final AtomicInteger queueRqCalls = new AtomicInteger();
    final AtomicInteger commitRqsCalls = new AtomicInteger();
    final AtomicInteger completeCalls = new AtomicInteger();
    final AtomicInteger timeoutCalls = new AtomicInteger();

    /** Whether per-request entries (queueRq, commitRqs, complete) go into the log; off for the stress test. */
    volatile boolean recordIo = true;

    volatile QueueRq onQueueRq = hold();
    volatile Consumer<Hw> onCommitRqs = hw -> {};
    volatile Consumer<Request<Pdu>> onComplete = rq -> {};
    volatile Function<Request<Pdu>, TimeoutAction> onTimeout = rq -> TimeoutAction.RESET_TIMER;

    /** The index whose initHctx throws {@link #initFailure}, or -1. */
    volatile int failInitAt = -1;

    final IOException initFailure = new IOException("initHctx failed");
    final Set<Integer> failExitAt = ConcurrentHashMap.newKeySet();
    final Map<Integer, Exception> exitFailures = new ConcurrentHashMap<>();

    /** The data of the queue under test; the test hands it to {@link BlockQueue.Builder#queueData}. */
    final QueueData queueData = new QueueData();

    /** A driver whose callbacks must run on {@code executors.apply(hctxIndex)}. */
    RecordingOperations(IntFunction<? extends HctxExecutor> executors) {
        this.executors = executors;
    }

    // ---------------------------------------------------------------------------------------------
    // The driver.

    @Override
    public Hw initHctx(String tagSetData, int hctxIndex) throws Exception {
        record("initHctx " + hctxIndex);
        if (hctxIndex == failInitAt) {
            throw initFailure;
        }
        Hw hw = new Hw(hctxIndex, tagSetData);
        if (hws.put(hctxIndex, hw) != null) {
            violation("initHctx " + hctxIndex + " called twice");
        }
        return hw;
    }

    @Override
    public void exitHctx(Hw hw, int hctxIndex) throws Exception {
        record("exitHctx " + hctxIndex);
        if (hw.index != hctxIndex) {
            violation("exitHctx " + hctxIndex + " got the data of context " + hw.index);
        }
        if (hw.exited) {
            violation("exitHctx " + hctxIndex + " called twice");
        }
        hw.exited = true;
        if (hw.runOpen) {
            violation("exitHctx " + hctxIndex + ": a run of queueRq(isLast=false) was never closed");
        }
        if (failExitAt.contains(hctxIndex)) {
            Exception e = new IOException("exitHctx " + hctxIndex + " failed");
            exitFailures.put(hctxIndex, e);
            throw e;
        }
    }

    @Override
    public Pdu newRequestData() {
        record("newRequestData");
        Pdu pdu = new Pdu(newRequestDataCalls.getAndIncrement());
        pdus.add(pdu);
        return pdu;
    }

    @Override
    public Status queueRq(Hw hw, QueueData queue, Request<Pdu> rq, boolean isLast) {
        enter(hw, "queueRq");
        try {
            queueRqCalls.incrementAndGet();
            String id = recordIo ? id(rq) : null;
            if (recordIo) {
                record("queueRq " + id + " isLast=" + isLast);
            }
            if (queue != queueData) {
                violation("queueRq got foreign queue data " + queue);
            }
            if (rq.hwIndex() != hw.index) {
                violation("queueRq on context " + hw.index + " got " + rq);
            }
            if (rq.state() != Request.IN_FLIGHT) {
                violation("queueRq got a request that is not in flight: " + rq);
            }
            Status status = onQueueRq.apply(this, hw, rq, isLast);
            if (status != Status.OK && recordIo) {
                record("queueRq " + id + " returned " + status);
            }
            if (status != Status.BUSY) {
                hw.runOpen = !isLast;
            }
            return status;
        } finally {
            hw.callbackDepth--;
        }
    }

    @Override
    public void commitRqs(Hw hw, QueueData queue) {
        enter(hw, "commitRqs");
        try {
            commitRqsCalls.incrementAndGet();
            if (recordIo) {
                record("commitRqs " + hw.index);
            }
            if (!hw.runOpen) {
                violation("commitRqs " + hw.index + " with no open run of queueRq(isLast=false)");
            }
            hw.runOpen = false;
            onCommitRqs.accept(hw);
        } finally {
            hw.callbackDepth--;
        }
    }

    @Override
    public void complete(Request<Pdu> rq) {
        completeCalls.incrementAndGet();
        if (!executors.apply(rq.hwIndex()).inExecutor()) {
            violation("complete " + id(rq) + " ran off the executor, on "
                    + Thread.currentThread().getName());
        }
        if (rq.state() != Request.ENDED) {
            violation("complete got a request that has not ended: " + rq);
        }
        if (recordIo) {
            record("complete " + id(rq) + " " + rq.status());
        }
        onComplete.accept(rq);
    }

    @Override
    public TimeoutAction timeout(Request<Pdu> rq) {
        Hw hw = hws.get(rq.hwIndex());
        enter(hw, "timeout");
        try {
            timeoutCalls.incrementAndGet();
            record("timeout " + id(rq));
            return onTimeout.apply(rq);
        } finally {
            hw.callbackDepth--;
        }
    }

    /** Checks a dispatch-side callback: on the context's executor, not nested in another one. */
    final void enter(Hw hw, String callback) {
        if (!executors.apply(hw.index).inExecutor()) {
            violation(callback + " " + hw.index + " ran off the executor, on "
                    + Thread.currentThread().getName());
        }
        if (hw.callbackDepth++ > 0) {
            violation(callback + " " + hw.index + " nested inside another callback of the same context");
        }
    }

    // ---------------------------------------------------------------------------------------------
    // What tests read.

    static String id(Request<?> rq) {
        return rq.hwIndex() + ":" + rq.tag();
    }

    final void record(String entry) {
        log.add(entry);
    }

    final void violation(String what) {
        violations.add(what + " [" + Thread.currentThread().getName() + "]");
    }

    /** Returns a copy of the log. */
    List<String> log() {
        synchronized (log) {
            return List.copyOf(log);
        }
    }

    /** Returns a copy of the log without the {@code newRequestData} entries of the build. */
    List<String> events() {
        return log().stream().filter(e -> !e.equals("newRequestData")).toList();
    }

    /** Returns the log entries that start with {@code prefix}. */
    List<String> entries(String prefix) {
        return log().stream().filter(e -> e.startsWith(prefix)).toList();
    }

    List<String> violations() {
        synchronized (violations) {
            return List.copyOf(violations);
        }
    }

    int newRequestDataCalls() {
        return newRequestDataCalls.get();
    }

    /** Returns every private data object newRequestData created, in order. */
    List<Pdu> pdus() {
        synchronized (pdus) {
            return List.copyOf(pdus);
        }
    }

    /** Waits for the next request the driver holds. */
    Request<Pdu> takeHeld() throws InterruptedException {
        Request<Pdu> rq = held.poll(5, TimeUnit.SECONDS);
        assertThat(rq).as("a request held by the driver within 5 s").isNotNull();
        return rq;
    }

    /** A driver that also polls: {@link BlockQueue#poll} reaches {@link #poll}. */
    static final class Polling extends RecordingOperations implements PollingOperations<Hw, QueueData, String, Pdu> {
        volatile Predicate<Hw> onPoll = hw -> true;

        Polling(IntFunction<? extends HctxExecutor> executors) {
            super(executors);
        }

        @Override
        public boolean poll(Hw hw) {
            enter(hw, "poll");
            try {
                record("poll " + hw.index);
                return onPoll.test(hw);
            } finally {
                hw.callbackDepth--;
            }
        }
    }
}
