package dev.mqnbd.mq;

import static dev.mqnbd.mq.Checks.requireArgument;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;

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
    // The submitter-facing half lives here; dispatch and completion in Dispatcher, timeouts in
    // TimeoutScanner, setting up and tearing down the hardware contexts in QueueLifecycle.
    private final TagSet<H, Q, T, R> set;
    private final Operations<H, Q, T, R> ops;
    private final Q queueData;
    private final QueueLimits limits;
    private final String name;
    private final HwContext<H>[] hctxs;
    final Dispatcher<H, Q, T, R> dispatcher;
    private final AtomicBoolean closing = new AtomicBoolean();
    private volatile boolean closed;

    private BlockQueue(Builder<H, Q, T, R> b, HwContext<H>[] hctxs) {
        this.set = b.set;
        this.ops = b.set.ops;
        this.queueData = b.queueData();
        this.limits = Objects.requireNonNull(b.limits);
        this.name = b.name;
        this.hctxs = hctxs;
        this.dispatcher = new Dispatcher<>(set, queueData, name, hctxs);
        TimeoutScanner.start(this, set, hctxs);
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
        return dispatcher.allocated();
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
    public @Nullable Request<R> tryAllocate(int hctxIndex, RequestCompletion completion) {
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
        dispatcher.onAllocate();
        if (closed) {
            dispatcher.free(rq);
            throw new IllegalStateException("queue " + name + " is closed");
        }
        return rq;
    }

    /**
     * Asks to be told when a tag of context {@code hctxIndex} frees: the back-pressure path. Waiters are
     * woken one per freed tag, in the order they registered. The waiter is called once, at or after the
     * next time a tag frees (at once if one is free now); it then tries {@link #tryAllocate} again and
     * waits again if it lost the race.
     */
    public void waitForTag(int hctxIndex, TagWaiter waiter) {
        set.tags[hctxIndex].addWaiter(Objects.requireNonNull(waiter, "waiter"));
    }

    /**
     * Wakes the next waiter of context {@code hctxIndex} if a tag is free: a woken {@link TagWaiter}
     * that took no tag calls it so the wakeup it was given is not lost. Harmless when no tag is free or
     * nobody waits.
     */
    public void wakeNextWaiter(int hctxIndex) {
        set.tags[hctxIndex].wakeNextIfFree();
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
        HctxExecutor executor = rq.executor();
        if (executor.inExecutor()) {
            dispatcher.dispatch(rq, isLast);
        } else {
            // OWNERSHIP: the executor hand-off publishes the submitter's writes to the dispatch thread.
            executor.execute(rq.dispatchTask);
        }
    }

    /**
     * Ends a batch on context {@code hctxIndex} that did not end with an {@code isLast} request: the
     * driver's {@link Operations#commitRqs} runs if any request is waiting for it.
     */
    public void commit(int hctxIndex) {
        HwContext<H> h = hctxs[hctxIndex];
        if (h.executor.inExecutor()) {
            dispatcher.commit(h);
        } else {
            h.executor.execute(() -> dispatcher.commit(h));
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
        dispatcher.free(rq);
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
        QueueLifecycle.tearDown(ops, hctxs, queueData, dispatcher::allocated, name);
    }

    /** Returns whether {@link #close()} was called. */
    public boolean isClosed() {
        return closed;
    }

    private Request<R> owned(Request<?> request) {
        if (request.queue != this) {
            throw new IllegalArgumentException(request + " was not allocated from queue " + name);
        }
        return Dispatcher.cast(request);
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("queue " + name + " is closed");
        }
    }

    /**
     * Builds a {@link BlockQueue}: {@code build()} calls {@link Operations#initHctx} for every hardware
     * context in index order and undoes them in reverse if one fails.
     */
    public static final class Builder<H, Q, T, R> {
        private final TagSet<H, Q, T, R> set;
        private @Nullable Q queueData;
        private @Nullable QueueLimits limits;
        private @Nullable IntFunction<? extends HctxExecutor> executors;
        private String name = "queue";

        private Builder(TagSet<H, Q, T, R> set) {
            this.set = Objects.requireNonNull(set, "tagSet");
        }

        // Null stands for "no queue data": the data of a driver without any is Void, whose only value is null.
        @SuppressWarnings("NullAway")
        private Q queueData() {
            return queueData;
        }

        /** Sets the per-queue driver data; the queue owns it from a successful build on. */
        public Builder<H, Q, T, R> queueData(@Nullable Q data) {
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
        public BlockQueue<H, Q, T, R> build() throws MqException {
            if (limits == null || executors == null) {
                throw new IllegalStateException("limits and executors are required");
            }
            HwContext<H>[] built = QueueLifecycle.initHctxs(set, executors, name);
            return new BlockQueue<>(this, built);
        }
    }
}
