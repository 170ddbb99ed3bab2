package dev.mqnbd.bench;

import dev.mqnbd.mq.HctxExecutor;
import java.util.concurrent.TimeUnit;

/**
 * A hardware-context executor that is every thread's own: {@code submit} dispatches on the caller and
 * {@code end} completes on it, so a benchmark measures the dispatch path without a thread hand-off, as
 * the server does when a request is submitted on the event loop that serves its context.
 *
 * <p><b>Threading:</b> sound only while one thread at a time uses each hardware context; the benchmarks
 * run single-threaded.
 */
final class CallerHctxExecutor implements HctxExecutor {
    static final CallerHctxExecutor INSTANCE = new CallerHctxExecutor();

    private CallerHctxExecutor() {}

    @Override
    public boolean inExecutor() {
        return true;
    }

    @Override
    public void execute(Runnable task) {
        task.run();
    }

    @Override
    public void schedule(Runnable task, long delay, TimeUnit unit) {
        // Timers only serve request timeouts and BUSY retries, which no benchmark configures.
        throw new UnsupportedOperationException(
                "schedule: no timers in benchmarks (delay: " + delay + " " + unit + ")");
    }
}
