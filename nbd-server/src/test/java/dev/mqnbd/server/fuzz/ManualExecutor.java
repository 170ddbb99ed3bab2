package dev.mqnbd.server.fuzz;

import dev.mqnbd.mq.HctxExecutor;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.PriorityQueue;
import java.util.concurrent.TimeUnit;

/**
 * A hardware-context executor on a clock that only the fuzz harness moves, for the {@link SlowDisk}: its
 * delayed and timed tasks run when {@link #advance} reaches them, so a fuzz input replays the same way
 * every time. (The embedded channel's own loop will not do: closing the channel cancels its scheduled
 * tasks, where a real event loop outlives its channels and still completes their requests.)
 *
 * <p><b>Threading:</b> single-threaded, on the test thread, like the embedded channel; it reports itself
 * as the current executor, as the channel's event loop does.
 */
final class ManualExecutor implements HctxExecutor {
    private record Timer(long deadline, long order, Runnable task) {}

    private final ArrayDeque<Runnable> ready = new ArrayDeque<>();
    private final PriorityQueue<Timer> timers =
            new PriorityQueue<>(Comparator.comparingLong(Timer::deadline).thenComparingLong(Timer::order));
    private long now;
    private long order;

    @Override
    public boolean inExecutor() {
        return true;
    }

    @Override
    public void execute(Runnable task) {
        ready.add(task);
    }

    @Override
    public void schedule(Runnable task, long delay, TimeUnit unit) {
        timers.add(new Timer(now + unit.toNanos(delay), order++, task));
    }

    /** Moves the clock on by {@code millis}, running every task that becomes due, in deadline order. */
    void advance(long millis) {
        now += TimeUnit.MILLISECONDS.toNanos(millis);
        runReady();
        while (!timers.isEmpty() && timers.peek().deadline() <= now) {
            timers.poll().task().run();
            runReady();
        }
    }

    private void runReady() {
        for (Runnable task; (task = ready.poll()) != null; ) {
            task.run();
        }
    }
}
