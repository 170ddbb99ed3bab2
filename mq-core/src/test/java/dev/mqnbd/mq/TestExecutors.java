package dev.mqnbd.mq;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;

/**
 * One {@link ThreadHctxExecutor} per hardware-context index, made on first use and closed by {@link #close()}.
 *
 * <p>{@link #withoutTimers()} wraps each in an executor that drops {@code schedule}: the BUSY retry timer then
 * never fires, so a test can prove that something else (a completion) retried a request.
 */
final class TestExecutors implements IntFunction<HctxExecutor>, AutoCloseable {
    private final boolean timers;
    private final Map<Integer, HctxExecutor> executors = new ConcurrentHashMap<>();
    private final List<ThreadHctxExecutor> threads = new ArrayList<>();

    /** How many {@code schedule} calls were dropped. */
    final AtomicInteger droppedTimers = new AtomicInteger();

    TestExecutors() {
        this(true);
    }

    private TestExecutors(boolean timers) {
        this.timers = timers;
    }

    static TestExecutors withoutTimers() {
        return new TestExecutors(false);
    }

    @Override
    public HctxExecutor apply(int index) {
        return executors.computeIfAbsent(index, i -> {
            ThreadHctxExecutor thread = new ThreadHctxExecutor("hctx-" + i);
            synchronized (threads) {
                threads.add(thread);
            }
            return timers ? thread : new NoTimers(thread);
        });
    }

    HctxExecutor get(int index) {
        return apply(index);
    }

    /** Runs {@code task} on executor {@code index} and waits for it; rethrows what it threw. */
    <V> V call(int index, Callable<V> task) throws Exception {
        CompletableFuture<V> result = new CompletableFuture<>();
        get(index).execute(() -> {
            try {
                result.complete(task.call());
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        });
        try {
            return result.get(5, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception cause) {
                throw cause;
            }
            throw (Error) e.getCause();
        }
    }

    /** Runs {@code task} on executor {@code index} and waits for it. */
    void run(int index, ThrowingRunnable task) throws Exception {
        call(index, () -> {
            task.run();
            return null;
        });
    }

    /** Waits until executor {@code index} has run every task queued before this call (not the delayed ones). */
    void drain(int index) throws Exception {
        run(index, () -> {});
    }

    @Override
    public void close() {
        synchronized (threads) {
            threads.forEach(ThreadHctxExecutor::close);
        }
    }

    @FunctionalInterface
    interface ThrowingRunnable {
        void run() throws Exception;
    }

    private final class NoTimers implements HctxExecutor {
        private final ThreadHctxExecutor delegate;

        NoTimers(ThreadHctxExecutor delegate) {
            this.delegate = delegate;
        }

        @Override
        public boolean inExecutor() {
            return delegate.inExecutor();
        }

        @Override
        public void execute(Runnable task) {
            delegate.execute(task);
        }

        @Override
        public void schedule(Runnable task, long delay, TimeUnit unit) {
            droppedTimers.incrementAndGet();
        }
    }
}
