package dev.mqnbd.mq;

import java.lang.System.Logger.Level;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * Finds a {@link BlockQueue}'s overdue requests and hands them to the driver's {@link
 * Operations#timeout}, the kernel's {@code blk_mq_timeout_work}: each hardware context scans its own
 * tags every quarter of the timeout (at least every 5 ms).
 *
 * <p><b>Threading:</b> each scan runs on its context's executor, as a task it schedules again after
 * itself, until the queue is closed with nothing in flight.
 */
final class TimeoutScanner<H, Q, T, R> {
    private static final System.Logger LOG = System.getLogger(BlockQueue.class.getName());

    private final BlockQueue<H, Q, T, R> queue;
    private final TagSet<H, Q, T, R> set;
    private final long scanNanos;

    private TimeoutScanner(BlockQueue<H, Q, T, R> queue, TagSet<H, Q, T, R> set) {
        this.queue = queue;
        this.set = set;
        this.scanNanos = Math.max(TimeUnit.MILLISECONDS.toNanos(5), set.timeoutNanos / 4);
    }

    /** Starts scanning every context of {@code queue}, when its tag set has a timeout. */
    static <H, Q, T, R> void start(BlockQueue<H, Q, T, R> queue, TagSet<H, Q, T, R> set, HwContext<H>[] hctxs) {
        if (set.timeoutNanos <= 0) {
            return;
        }
        TimeoutScanner<H, Q, T, R> scanner = new TimeoutScanner<>(queue, set);
        for (HwContext<H> h : hctxs) {
            h.timeoutTask = () -> scanner.scan(h);
            h.executor.schedule(h.timeoutTask, scanner.scanNanos, TimeUnit.NANOSECONDS);
        }
    }

    private void scan(HwContext<H> h) {
        if (queue.isClosed() && queue.inFlight() == 0) {
            return;
        }
        long now = System.nanoTime();
        for (Request<R> rq : set.tags[h.index].requests) {
            if (rq.queue == queue && rq.state() == Request.IN_FLIGHT && now - rq.deadlineNanos > 0) {
                TimeoutAction action;
                try {
                    action = set.ops.timeout(rq);
                } catch (RuntimeException e) {
                    LOG.log(Level.ERROR, "queue " + queue.name() + ": timeout threw for " + rq, e);
                    action = TimeoutAction.RESET_TIMER;
                }
                if (action == TimeoutAction.RESET_TIMER && rq.state() == Request.IN_FLIGHT) {
                    rq.deadlineNanos = now + set.timeoutNanos;
                }
            }
        }
        h.executor.schedule(Objects.requireNonNull(h.timeoutTask), scanNanos, TimeUnit.NANOSECONDS);
    }
}
