package dev.mqnbd.server.log;

import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * Logs at most one line per interval, and says how many it held back: for events a client can cause at
 * will (refused connections, expired handshakes, lost connections, failed writes, protocol violations), so that a flood of them does not flood the log.
 *
 * <p><b>Threading:</b> thread-safe.
 */
public final class RateLimitedLog {
    private final System.Logger log;
    private final long intervalNanos;
    private final LongSupplier nanoClock;
    private final AtomicLong next;
    private final AtomicInteger suppressed = new AtomicInteger();

    /** Creates a log that writes at most one line per {@code interval} to {@code log}. */
    public RateLimitedLog(System.Logger log, long interval, TimeUnit unit) {
        this(log, interval, unit, System::nanoTime);
    }

    /** Creates a log whose time comes from {@code nanoClock}, read as {@link System#nanoTime()} is: for tests. */
    public RateLimitedLog(System.Logger log, long interval, TimeUnit unit, LongSupplier nanoClock) {
        this.log = log;
        this.intervalNanos = unit.toNanos(interval);
        this.nanoClock = nanoClock;
        this.next = new AtomicLong(nanoClock.getAsLong());
    }

    /** Logs {@code message} unless a line went out less than an interval ago; returns whether it logged. */
    public boolean log(Level level, Supplier<String> message) {
        long now = nanoClock.getAsLong();
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
