package dev.mqnbd.server;

import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * Logs at most one line per interval, and says how many it held back: for events a client can cause at
 * will (refused connections, expired handshakes), so that a flood of them does not flood the log.
 *
 * <p><b>Threading:</b> thread-safe.
 */
final class RateLimitedLog {
    private final System.Logger log;
    private final long intervalNanos;
    private final AtomicLong next = new AtomicLong(System.nanoTime());
    private final AtomicInteger suppressed = new AtomicInteger();

    RateLimitedLog(System.Logger log, long interval, TimeUnit unit) {
        this.log = log;
        this.intervalNanos = unit.toNanos(interval);
    }

    /** Logs {@code message} unless a line went out less than an interval ago; returns whether it logged. */
    boolean log(Level level, Supplier<String> message) {
        long now = System.nanoTime();
        long due = next.get();
        if (now - due < 0 || !next.compareAndSet(due, now + intervalNanos)) {
            suppressed.incrementAndGet();
            return false;
        }
        int held = suppressed.getAndSet(0);
        log.log(level, () -> message.get() + (held == 0 ? "" : " (" + held + " similar messages suppressed)"));
        return true;
    }
}
