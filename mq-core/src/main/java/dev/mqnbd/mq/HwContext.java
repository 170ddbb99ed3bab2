package dev.mqnbd.mq;

import java.util.ArrayDeque;
import org.jspecify.annotations.Nullable;

/**
 * One hardware queue of a {@link BlockQueue}: its index, the driver's data {@code H} and the executor
 * its dispatch runs on, the kernel's {@code struct blk_mq_hw_ctx}.
 *
 * <p><b>Threading:</b> {@link #hwData()} is used by mq-core only on {@link #executor()}; a driver that
 * touches it elsewhere brings its own synchronisation. The counters are written on the executor and
 * may be read, slightly stale, from anywhere.
 */
public final class HwContext<H> {
    final int index;
    final H hwData;
    final HctxExecutor executor;

    /** Requests the driver answered BUSY, in the order they are retried. Bounded by the queue depth. */
    final ArrayDeque<Request<?>> requeue;

    /** Requests dispatched with {@code isLast == false} since the last batch boundary. */
    int uncommitted;

    boolean rerunScheduled;

    /** Retries the requeued requests; set once by the queue, so a retry allocates nothing. */
    @Nullable
    Runnable rerunTask;

    /** Retries the requeued requests after a completion, without touching the retry timer; set once. */
    @Nullable
    Runnable restartTask;

    /** Scans for overdue requests; set once by the queue when the tag set has a timeout. */
    @Nullable
    Runnable timeoutTask;

    volatile long dispatched;
    volatile long completed;
    volatile long busy;

    HwContext(int index, H hwData, HctxExecutor executor, int depth) {
        this.index = index;
        this.hwData = hwData;
        this.executor = executor;
        this.requeue = new ArrayDeque<>(depth);
    }

    /** Returns the index of this context in its queue. */
    public int index() {
        return index;
    }

    /** Returns the driver's data of this context. */
    public H hwData() {
        return hwData;
    }

    /** Returns the executor this context's dispatch runs on. */
    public HctxExecutor executor() {
        return executor;
    }

    /** Returns how many requests were handed to {@code queueRq}, retries included. */
    public long dispatched() {
        return dispatched;
    }

    /** Returns how many requests ended. */
    public long completed() {
        return completed;
    }

    /** Returns how many times {@code queueRq} answered BUSY. */
    public long busy() {
        return busy;
    }
}
