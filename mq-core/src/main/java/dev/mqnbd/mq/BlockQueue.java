package dev.mqnbd.mq;

import static dev.mqnbd.mq.QueueLimits.requireArgument;

import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;

/**
 * A block device's request queue: its {@link QueueLimits}, its per-queue data {@code Q}, one {@link
 * HwContext} per hardware queue of its {@link TagSet}, and the dispatch path. The kernel's {@code struct
 * request_queue} with its gendisk.
 *
 * <p>The submitter's path: {@link #tryAllocate} a request on the hardware context that serves the
 * submitter ({@link #hctxIndexFor}); when it returns {@code null} every tag is in use, so stop taking
 * work and {@link #waitForTag}. Fill the request with {@link Request#prepare}, then {@link #submit} it,
 * with {@code isLast} on the last request of a batch; a batch that ends otherwise is closed with {@link
 * #commit}. The {@link RequestCompletion} given at allocation runs once when the request ends.
 *
 * <p><b>Ownership:</b> the queue owns {@code Q} and closes it last, when it is {@link AutoCloseable}; it
 * owns every {@code H} from {@code initHctx} to {@code exitHctx}.
 *
 * <p><b>Threading:</b> {@code tryAllocate}, {@code waitForTag}, {@code submit} and {@code commit} are
 * safe from any thread; dispatch to the driver and completions run on each context's executor.
 */
public final class BlockQueue<H, Q, T, R> implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(BlockQueue.class.getName());

    /** How soon a request the driver answered BUSY is retried, after the kernel's BLK_MQ_RESOURCE_DELAY. */
    private static final long BUSY_RETRY_NANOS = TimeUnit.MILLISECONDS.toNanos(3);

    private static final long CLOSE_DRAIN_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final TagSet<H, Q, T, R> set;
    private final Operations<H, Q, T, R> ops;
    private final Q queueData;
    private final QueueLimits limits;
    private final String name;
    private final HwContext<H>[] hctxs;
    private final AtomicInteger allocated = new AtomicInteger();
    private final java.util.concurrent.atomic.AtomicBoolean closing = new java.util.concurrent.atomic.AtomicBoolean();
    private volatile boolean closed;

    private BlockQueue(Builder<H, Q, T, R> b, HwContext<H>[] hctxs) {
        this.set = b.set;
        this.ops = b.set.ops;
        this.queueData = b.queueData;
        this.limits = b.limits;
        this.name = b.name;
        this.hctxs = hctxs;
        for (HwContext<H> h : hctxs) {
            h.rerunTask = () -> {
                h.rerunScheduled = false;
                runRequeue(h);
            };
            h.restartTask = () -> runRequeue(h);
            if (set.timeoutNanos > 0) {
                h.timeoutTask = () -> scanTimeouts(h);
                h.executor.schedule(h.timeoutTask, timeoutScanNanos(), TimeUnit.NANOSECONDS);
            }
        }
    }

    /** Starts a queue on {@code tagSet}. */
    public static <H, Q, T, R> Builder<H, Q, T, R> builder(TagSet<H, Q, T, R> tagSet) {
        return new Builder<>(tagSet);
    }

    /** Returns the queue's name, used in logs and errors. */
    public String name() {
        return name;
    }

    /** Returns the device's geometry and features. */
    public QueueLimits limits() {
        return limits;
    }

    /** Returns the per-queue driver data. */
    public Q queueData() {
        return queueData;
    }

    /** Returns the tag set this queue draws its requests from. */
    public TagSet<H, Q, T, R> tagSet() {
        return set;
    }

    /** Returns the number of hardware contexts. */
    public int hwQueues() {
        return hctxs.length;
    }

    /** Returns hardware context {@code index}. */
    public HwContext<H> hctx(int index) {
        return hctxs[index];
    }

    /**
     * Maps a submitter (an event loop, a CPU) to the hardware context that serves it, as blk-mq maps
     * CPUs to hardware queues.
     */
    public int hctxIndexFor(int submitterIndex) {
        return Math.floorMod(submitterIndex, hctxs.length);
    }

    /** Returns the number of requests allocated and not yet freed, in flight or being filled. */
    public int inFlight() {
        return allocated.get();
    }

    /**
     * Returns how many tags of hardware context {@code hctxIndex} are taken now (requests in flight or being
     * filled); a moment's reading for statistics, safe from any thread.
     */
    public int tagsInUse(int hctxIndex) {
        return set.tags[hctxIndex].inUse();
    }

    /**
     * Takes a free request of hardware context {@code hctxIndex}.
     *
     * <p><b>Ownership:</b> the caller owns the returned request until it submits it (or gives it back
     * with {@link #abandon}). Never allocates.
     *
     * @return the request, or {@code null} when every tag of the context is in use
     * @throws IllegalStateException if the queue is closed
     */
    public Request<R> tryAllocate(int hctxIndex, RequestCompletion completion) {
        requireOpen();
        Tags<R> tags = set.tags[hctxIndex];
        int tag = tags.get();
        if (tag < 0) {
            return null;
        }
        Request<R> rq = tags.requests[tag];
        boolean allocatedTag = rq.casState(Request.IDLE, Request.ALLOCATED);
        // INVARIANT: a tag taken from the bitmap belongs to an IDLE request.
        assert allocatedTag : rq;
        rq.queue = this;
        rq.hctx = hctxs[hctxIndex];
        rq.completion = Objects.requireNonNull(completion, "completion");
        allocated.incrementAndGet();
        if (closed) {
            free(rq);
            throw new IllegalStateException("queue " + name + " is closed");
        }
        return rq;
    }

    /**
     * Asks to be told when a tag of context {@code hctxIndex} frees: the back-pressure path. The waiter is
     * called once, at or after the next time a tag frees (at once if one is free now); it then tries
     * {@link #tryAllocate} again and waits again if it lost the race.
     */
    public void waitForTag(int hctxIndex, TagWaiter waiter) {
        set.tags[hctxIndex].addWaiter(Objects.requireNonNull(waiter, "waiter"));
    }

    /**
     * Hands an allocated request to the driver.
     *
     * <p><b>Ownership:</b> from this call mq-core and the driver own the request until its completion.
     *
     * @param isLast whether this is the last request of the submitter's batch
     * @throws IllegalArgumentException if the request was not allocated from this queue
     * @throws IllegalStateException if the request is not in the allocated state
     */
    public void submit(Request<?> request, boolean isLast) {
        Request<R> rq = owned(request);
        if (rq.state() != Request.ALLOCATED) {
            throw new IllegalStateException("submit: " + rq + " (expected: ALLOCATED)");
        }
        rq.isLast = isLast;
        HwContext<?> h = rq.hctx;
        if (h.executor.inExecutor()) {
            dispatch(rq, isLast);
        } else {
            // OWNERSHIP: the executor hand-off publishes the submitter's writes to the dispatch thread.
            h.executor.execute(rq.dispatchTask);
        }
    }

    /**
     * Ends a batch on context {@code hctxIndex} that did not end with an {@code isLast} request: the
     * driver's {@link Operations#commitRqs} runs if any request is waiting for it.
     */
    public void commit(int hctxIndex) {
        HwContext<H> h = hctxs[hctxIndex];
        if (h.executor.inExecutor()) {
            commitOn(h);
        } else {
            h.executor.execute(() -> commitOn(h));
        }
    }

    /**
     * Gives back a request that was allocated and will not be submitted; its completion does not run.
     *
     * @throws IllegalStateException if the request is not in the allocated state
     */
    public void abandon(Request<?> request) {
        Request<R> rq = owned(request);
        if (rq.state() != Request.ALLOCATED) {
            throw new IllegalStateException("abandon: " + rq + " (expected: ALLOCATED)");
        }
        free(rq);
    }

    /**
     * Reaps completions of context {@code hctxIndex} through the driver's {@link PollingOperations#poll}.
     *
     * @return whether anything completed; always {@code false} for a driver that does not poll
     * @throws IllegalStateException if called off the context's executor
     */
    public boolean poll(int hctxIndex) {
        HwContext<H> h = hctxs[hctxIndex];
        if (!h.executor.inExecutor()) {
            throw new IllegalStateException("poll: called off the executor of hardware context " + hctxIndex);
        }
        return set.polling && ((PollingOperations<H, Q, T, R>) ops).poll(h.hwData);
    }

    /**
     * Closes the queue: no new requests; waits up to 30 s for those in flight to end; then {@code
     * exitHctx} for every context in reverse order; then closes {@code Q}. Call it off the contexts'
     * executors, since completions run there. A second call does nothing.
     *
     * @throws MqException if requests were still in flight after the wait (the contexts are then left
     *     as they are), or if tearing down failed
     */
    @Override
    public void close() throws MqException {
        // INVARIANT: one caller tears down, however many call close at once.
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        closed = true;
        long deadline = System.nanoTime() + CLOSE_DRAIN_NANOS;
        while (allocated.get() > 0) {
            for (HwContext<H> h : hctxs) {
                if (h.executor.inExecutor()) {
                    throw new IllegalStateException("close: called on the executor of hardware context " + h.index
                            + " while " + allocated.get() + " requests are in flight");
                }
            }
            if (System.nanoTime() - deadline > 0) {
                throw new MqException("queue " + name + ": " + allocated.get()
                        + " requests still in flight after 30 s; hardware contexts not torn down");
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MqException("queue " + name + ": interrupted while draining", e);
            }
        }
        MqException failure = null;
        for (int i = hctxs.length - 1; i >= 0; i--) {
            try {
                ops.exitHctx(hctxs[i].hwData, i);
            } catch (Exception e) {
                failure = addFailure(failure, "exitHctx failed for hardware context " + i, e);
            }
        }
        if (queueData instanceof AutoCloseable closeable) {
            try {
                closeable.close();
            } catch (Exception e) {
                failure = addFailure(failure, "closing the queue data failed", e);
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Returns whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed;
    }

    // ----------------------------------------------------------------------------------------------
    // Dispatch and completion; everything below runs on the request's hardware-context executor.

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
            h.executor.schedule(h.rerunTask, BUSY_RETRY_NANOS, TimeUnit.NANOSECONDS);
        }
    }

    private void commitOn(HwContext<H> h) {
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

    void completeRequest(Request<R> rq) {
        HwContext<H> h = hctxs[rq.hwIndex()];
        h.completed++;
        try {
            ops.complete(rq);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queue " + name + ": complete threw for " + rq, e);
        }
        try {
            rq.completion.completed(rq);
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "queue " + name + ": the submitter's completion threw for " + rq, e);
        }
        free(rq);
        if (!h.requeue.isEmpty()) {
            // A completion may have freed what the driver was short of (the kernel's SCHED_RESTART). Rerun
            // as a task of its own, as the kernel reruns the queue asynchronously: this completion may run
            // inside queueRq, commitRqs, poll or timeout (a driver that ends a request inline), and driver
            // callbacks of one context never nest.
            h.executor.execute(h.restartTask);
        }
    }

    private void free(Request<R> rq) {
        int hw = rq.hwIndex();
        int tag = rq.tag();
        rq.recycle();
        allocated.decrementAndGet();
        set.tags[hw].put(tag);
    }

    private void scanTimeouts(HwContext<H> h) {
        if (closed && allocated.get() == 0) {
            return;
        }
        long now = System.nanoTime();
        for (Request<R> rq : set.tags[h.index].requests) {
            if (rq.queue == this && rq.state() == Request.IN_FLIGHT && now - rq.deadlineNanos > 0) {
                TimeoutAction action;
                try {
                    action = ops.timeout(rq);
                } catch (RuntimeException e) {
                    LOG.log(Level.ERROR, "queue " + name + ": timeout threw for " + rq, e);
                    action = TimeoutAction.RESET_TIMER;
                }
                if (action == TimeoutAction.RESET_TIMER && rq.state() == Request.IN_FLIGHT) {
                    rq.deadlineNanos = now + set.timeoutNanos;
                }
            }
        }
        h.executor.schedule(h.timeoutTask, timeoutScanNanos(), TimeUnit.NANOSECONDS);
    }

    private long timeoutScanNanos() {
        return Math.max(TimeUnit.MILLISECONDS.toNanos(5), set.timeoutNanos / 4);
    }

    private Request<R> owned(Request<?> request) {
        if (request.queue != this) {
            throw new IllegalArgumentException(request + " was not allocated from queue " + name);
        }
        return cast(request);
    }

    @SuppressWarnings("unchecked")
    private Request<R> cast(Request<?> request) {
        // Safe: every request of this queue was allocated from this queue's tag set, whose type is R.
        return (Request<R>) request;
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("queue " + name + " is closed");
        }
    }

    private static MqException addFailure(MqException failure, String message, Exception e) {
        if (failure == null) {
            return new MqException(message, e);
        }
        failure.addSuppressed(e);
        return failure;
    }

    /**
     * Builds a {@link BlockQueue}: {@code build()} calls {@link Operations#initHctx} for every hardware
     * context in index order and undoes them in reverse if one fails.
     */
    public static final class Builder<H, Q, T, R> {
        private final TagSet<H, Q, T, R> set;
        private Q queueData;
        private QueueLimits limits;
        private IntFunction<? extends HctxExecutor> executors;
        private String name = "queue";

        private Builder(TagSet<H, Q, T, R> set) {
            this.set = Objects.requireNonNull(set, "tagSet");
        }

        /** Sets the per-queue driver data; the queue owns it from a successful build on. */
        public Builder<H, Q, T, R> queueData(Q data) {
            this.queueData = data;
            return this;
        }

        /** Sets the device's geometry and features (required). */
        public Builder<H, Q, T, R> limits(QueueLimits limits) {
            this.limits = Objects.requireNonNull(limits, "limits");
            return this;
        }

        /** Sets the executor of each hardware context, by index (required). */
        public Builder<H, Q, T, R> executors(IntFunction<? extends HctxExecutor> executors) {
            this.executors = Objects.requireNonNull(executors, "executors");
            return this;
        }

        /** Sets the name used in logs and errors. */
        public Builder<H, Q, T, R> name(String name) {
            requireArgument(!name.isEmpty(), "name: \"\" (expected: non-empty)");
            this.name = name;
            return this;
        }

        /**
         * Sets up every hardware context.
         *
         * @throws MqException if an {@code initHctx} failed; the contexts built before it have been torn
         *     down in reverse order, and the queue data is still the caller's
         * @throws IllegalStateException if limits or executors were not set
         */
        @SuppressWarnings("unchecked")
        public BlockQueue<H, Q, T, R> build() throws MqException {
            if (limits == null || executors == null) {
                throw new IllegalStateException("limits and executors are required");
            }
            int n = set.hwQueues;
            HwContext<H>[] built = (HwContext<H>[]) new HwContext<?>[n];
            int i = 0;
            try {
                for (; i < n; i++) {
                    HctxExecutor executor = Objects.requireNonNull(executors.apply(i), "executor " + i);
                    H hw = set.ops.initHctx(set.tagSetData, i);
                    built[i] = new HwContext<>(i, hw, executor, set.queueDepth);
                }
            } catch (Exception e) {
                for (int j = i - 1; j >= 0; j--) {
                    try {
                        set.ops.exitHctx(built[j].hwData, j);
                    } catch (Exception suppressed) {
                        e.addSuppressed(suppressed);
                    }
                }
                throw new MqException("queue " + name + ": initHctx failed for hardware context " + i, e);
            }
            return new BlockQueue<>(this, built);
        }
    }
}
