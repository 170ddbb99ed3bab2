package dev.mqnbd.mq;

import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Dispatch, requeue and completion for one {@link BlockQueue}: hands requests to the driver's {@code
 * queueRq}, keeps the ones it answered BUSY in order and retries them, closes open batches with {@code
 * commitRqs}, and runs the completion path of an ended request, the kernel's {@code blk-mq.c} dispatch
 * and {@code blk_mq_end_request}.
 *
 * <p><b>Threading:</b> everything here runs on the request's hardware-context executor, except {@link
 * #allocated()} and {@link #free}, which are safe from any thread.
 */
final class Dispatcher<H, Q, T, R> {
    private static final System.Logger LOG = System.getLogger(BlockQueue.class.getName());

    /** How soon a request the driver answered BUSY is retried, after the kernel's BLK_MQ_RESOURCE_DELAY. */
    private static final long BUSY_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(3);

    private final TagSet<H, Q, T, R> set;
    private final Operations<H, Q, T, R> ops;
    private final Q queueData;
    private final String name;
    private final HwContext<H>[] hctxs;

    /** Requests allocated and not yet freed, in flight or being filled. */
    private final AtomicInteger allocated = new AtomicInteger();

    Dispatcher(TagSet<H, Q, T, R> set, Q queueData, String name, HwContext<H>[] hctxs) {
        this.set = set;
        this.ops = set.ops;
        this.queueData = queueData;
        this.name = name;
        this.hctxs = hctxs;
        for (HwContext<H> h : hctxs) {
            h.rerunTask = () -> {
                h.rerunScheduled = false;
                runRequeue(h);
            };
            h.restartTask = () -> runRequeue(h);
        }
    }

    /** Returns the number of requests allocated and not yet freed. */
    int allocated() {
        return allocated.get();
    }

    /** Counts a request the submitter just took; {@link #free} counts it back. */
    void onAllocate() {
        allocated.incrementAndGet();
    }

    void dispatch(Request<R> rq, boolean isLast) {
        HwContext<H> h = hctxs[rq.hwIndex()];
        if (!h.requeue.isEmpty()) {
            // Stay behind the requests the driver answered BUSY; they are retried first.
            h.requeue.addLast(rq);
            if (isLast) {
                runRequeue(h);
            }
            return;
        }
        if (!issue(h, rq, isLast)) {
            h.requeue.addLast(rq);
            scheduleRetry(h);
        }
    }

    /** Hands one request to the driver; returns {@code false} when the driver answered BUSY. */
    private boolean issue(HwContext<H> h, Request<R> rq, boolean isLast) {
        boolean started = rq.casState(Request.ALLOCATED, Request.IN_FLIGHT);
        // INVARIANT: only allocated (or requeued, which is allocated again) requests are issued.
        assert started : rq;
        if (set.timeoutNanos > 0) {
            rq.deadlineNanos = System.nanoTime() + set.timeoutNanos;
        }
        h.dispatched++;
        Status status;
        try {
            status = ops.queueRq(h.hwData, queueData, rq, isLast);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queue " + name + ": queueRq threw for " + rq + "; ending it with IO_ERROR", e);
            status = rq.state() == Request.IN_FLIGHT ? Status.IO_ERROR : Status.OK;
        }
        if (status == Status.BUSY) {
            if (!rq.casState(Request.IN_FLIGHT, Request.ALLOCATED)) {
                throw new IllegalStateException("queueRq answered BUSY for a request it ended: " + rq);
            }
            h.busy++;
            // The request that would have closed the run with isLast is not going to the driver now.
            commitIfOpen(h);
            return false;
        }
        if (isLast) {
            h.uncommitted = 0;
        } else {
            h.uncommitted++;
        }
        if (status != Status.OK) {
            rq.end(status);
        }
        return true;
    }

    private void runRequeue(HwContext<H> h) {
        while (!h.requeue.isEmpty()) {
            Request<R> rq = cast(h.requeue.pollFirst());
            if (!issue(h, rq, h.requeue.isEmpty())) {
                h.requeue.addFirst(rq);
                scheduleRetry(h);
                return;
            }
        }
    }

    private void scheduleRetry(HwContext<H> h) {
        if (!h.rerunScheduled) {
            h.rerunScheduled = true;
            h.executor.schedule(Objects.requireNonNull(h.rerunTask), BUSY_RETRY_NANOS, TimeUnit.NANOSECONDS);
        }
    }

    /** Ends a batch on {@code h}: retries what waits for a retry, then closes an open run with commitRqs. */
    void commit(HwContext<H> h) {
        if (!h.requeue.isEmpty()) {
            runRequeue(h);
        }
        commitIfOpen(h);
    }

    private void commitIfOpen(HwContext<H> h) {
        if (h.uncommitted > 0) {
            h.uncommitted = 0;
            try {
                ops.commitRqs(h.hwData, queueData);
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "queue " + name + ": commitRqs threw on hardware context " + h.index, e);
            }
        }
    }

    /** The completion path of an ended request: the driver's complete, the submitter's, then the tag frees. */
    void complete(Request<R> rq) {
        HwContext<H> h = hctxs[rq.hwIndex()];
        h.completed++;
        try {
            ops.complete(rq);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queue " + name + ": complete threw for " + rq, e);
        }
        try {
            Objects.requireNonNull(rq.completion).completed(rq);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queue " + name + ": the submitter's completion threw for " + rq, e);
        }
        free(rq);
        if (!h.requeue.isEmpty()) {
            // A completion may have freed what the driver was short of (the kernel's SCHED_RESTART). Rerun
            // as a task of its own, as the kernel reruns the queue asynchronously: this completion may run
            // inside queueRq, commitRqs, poll or timeout (a driver that ends a request inline), and driver
            // callbacks of one context never nest.
            h.executor.execute(Objects.requireNonNull(h.restartTask));
        }
    }

    /** Recycles {@code rq} and returns its tag; the request object is reused from here. */
    void free(Request<R> rq) {
        int hw = rq.hwIndex();
        int tag = rq.tag();
        rq.recycle();
        allocated.decrementAndGet();
        set.tags[hw].put(tag);
    }

    @SuppressWarnings("unchecked")
    static <R> Request<R> cast(Request<?> request) {
        // Safe: every request of a queue was allocated from the queue's tag set, whose type is R.
        return (Request<R>) request;
    }
}
