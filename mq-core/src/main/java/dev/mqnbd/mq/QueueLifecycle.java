package dev.mqnbd.mq;

import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import java.util.function.IntSupplier;
import org.jspecify.annotations.Nullable;

/**
 * Setting up and tearing down a {@link BlockQueue}'s hardware contexts, the kernel's {@code
 * blk_mq_init_hctx} and {@code blk_mq_exit_hctx}: every {@code initHctx} that returned gets exactly one
 * {@code exitHctx}, in reverse index order, also when a later one fails.
 *
 * <p><b>Ownership:</b> each {@code H} belongs to its {@link HwContext} from {@code initHctx} to {@code
 * exitHctx}; the queue data {@code Q} is closed after the last {@code exitHctx}.
 */
final class QueueLifecycle {
    private static final long CLOSE_DRAIN_NANOS = TimeUnit.SECONDS.toNanos(30);

    private QueueLifecycle() {}

    /**
     * Calls {@code initHctx} for every context in index order.
     *
     * @throws MqException if one failed; the contexts built before it have been torn down in reverse order
     */
    @SuppressWarnings("unchecked")
    static <H, Q, T, R> HwContext<H>[] initHctxs(
            TagSet<H, Q, T, R> set, IntFunction<? extends HctxExecutor> executors, String name) throws MqException {
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
        return built;
    }

    /**
     * Waits up to 30 s for the requests in flight to end, then calls {@code exitHctx} for every context in
     * reverse order, then closes {@code queueData} when it is {@link AutoCloseable}.
     *
     * @throws IllegalStateException if called on a context's executor while requests are in flight
     * @throws MqException if requests were still in flight after the wait (the contexts are then left as
     *     they are), or if tearing down failed
     */
    static <H> void tearDown(
            Operations<H, ?, ?, ?> ops, HwContext<H>[] hctxs, Object queueData, IntSupplier inFlight, String name)
            throws MqException {
        long deadline = System.nanoTime() + CLOSE_DRAIN_NANOS;
        while (inFlight.getAsInt() > 0) {
            for (HwContext<H> h : hctxs) {
                if (h.executor.inExecutor()) {
                    throw new IllegalStateException("close: called on the executor of hardware context " + h.index
                            + " while " + inFlight.getAsInt() + " requests are in flight");
                }
            }
            if (System.nanoTime() - deadline > 0) {
                throw new MqException("queue " + name + ": " + inFlight.getAsInt()
                        + " requests still in flight after 30 s; hardware contexts not torn down");
            }
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new MqException("queue " + name + ": interrupted while draining", e);
            }
        }
        @Nullable MqException failure = null;
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

    private static MqException addFailure(@Nullable MqException failure, String message, Exception e) {
        if (failure == null) {
            return new MqException(message, e);
        }
        failure.addSuppressed(e);
        return failure;
    }
}
