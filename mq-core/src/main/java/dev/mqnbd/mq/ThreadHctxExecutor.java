package dev.mqnbd.mq;

import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * An {@link HctxExecutor} on one daemon thread of its own, for drivers and tests that run without an
 * event loop.
 *
 * <p><b>Threading:</b> safe for use from any thread. {@link #close()} stops the thread after the tasks
 * already queued.
 */
public final class ThreadHctxExecutor implements HctxExecutor, AutoCloseable {
    private final ScheduledThreadPoolExecutor executor;
    private volatile @Nullable Thread thread;

    /** Starts an executor whose thread is called {@code name}. */
    public ThreadHctxExecutor(String name) {
        this.executor = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            thread = t;
            return t;
        });
        executor.prestartCoreThread();
    }

    @Override
    public boolean inExecutor() {
        return Thread.currentThread() == thread;
    }

    @Override
    public void execute(Runnable task) {
        executor.execute(task);
    }

    @Override
    public void schedule(Runnable task, long delay, TimeUnit unit) {
        executor.schedule(task, delay, unit);
    }

    @Override
    public void close() {
        executor.shutdown();
        try {
            executor.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
