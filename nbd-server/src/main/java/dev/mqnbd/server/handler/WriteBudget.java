package dev.mqnbd.server.handler;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A server-wide bound on the bytes of WRITE payloads in flight: handed to a backend and not yet completed.
 *
 * <p>A whole payload stays in the server's direct memory until its WRITE completes. Each connection keeps
 * at most {@link TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT} of them in flight ({@link BackPressure}),
 * but behind a slow backend (a rate limit, a store that stalls) many connections together could still
 * hold more than the memory every other client's buffers come from. A connection with WRITEs in flight
 * whose next WRITE would take the total past the bound waits, reading nothing more, until its own or
 * another connection's WRITEs complete. A connection with none in flight may go on up to twice the bound,
 * so that clients whose WRITEs are stuck behind a slow export cannot make every other client wait for
 * them; past twice the bound every connection waits. A WRITE always goes when none is in flight anywhere,
 * so a payload of any allowed size proceeds. The check and the take are not one step, so the total may
 * pass either mark by one payload per event loop.
 *
 * <p>Only WRITEs of {@link #COUNTED_FROM} bytes or more count: smaller ones hold at most the queue depth
 * times that per connection, and the 4 KiB WRITEs of a busy server pass no shared counter.
 *
 * <p><b>Threading:</b> thread-safe. Connections take and give on their event loops; a waiting connection
 * is woken by the thread that gives bytes back, through the task it registered ({@link #await}).
 */
public final class WriteBudget {
    /** No bound: every WRITE goes. */
    public static final WriteBudget UNLIMITED = new WriteBudget(Long.MAX_VALUE);

    /** The smallest WRITE that counts against the budget: 64 KiB. */
    public static final int COUNTED_FROM = 64 << 10;

    private final long limit;
    private final AtomicLong held = new AtomicLong();
    private final ConcurrentLinkedQueue<Runnable> waiters = new ConcurrentLinkedQueue<>();

    /**
     * Creates a budget of {@code limit} bytes.
     *
     * @throws IllegalArgumentException if {@code limit} is not positive
     */
    public WriteBudget(long limit) {
        if (limit <= 0) {
            throw new IllegalArgumentException("limit: " + limit + " (expected: > 0)");
        }
        this.limit = limit;
    }

    /** Returns the bound in bytes. */
    public long limit() {
        return limit;
    }

    /** Returns the bytes of WRITE payloads in flight now, on all connections. */
    public long held() {
        return held.get();
    }

    /**
     * Returns whether a WRITE of {@code bytes} may go now: nothing is in flight, or it fits under the bound,
     * or under twice the bound for a connection with no WRITE in flight ({@code first}).
     */
    boolean fits(long bytes, boolean first) {
        if (bytes < COUNTED_FROM) {
            return true;
        }
        long now = held.get();
        return now == 0 || now + bytes <= (first ? 2 * limit : limit);
    }

    /** Records a WRITE of {@code bytes} handed to a backend. */
    void take(long bytes) {
        if (limit != Long.MAX_VALUE && bytes >= COUNTED_FROM) {
            held.addAndGet(bytes);
        }
    }

    /** Records that a WRITE of {@code bytes} completed, and wakes the connections that wait for room. */
    void give(long bytes) {
        if (limit == Long.MAX_VALUE || bytes < COUNTED_FROM) {
            return;
        }
        held.addAndGet(-bytes);
        Runnable waiter;
        while ((waiter = waiters.poll()) != null) {
            waiter.run();
        }
    }

    /**
     * Registers {@code wake} to run once when bytes are next given back; runs it at once if a WRITE of
     * {@code bytes} fits by then ({@link #fits}; bytes given back between the caller's check and this call
     * would otherwise wake nobody). {@code wake} must be cheap and may run on any thread.
     */
    void await(long bytes, boolean first, Runnable wake) {
        waiters.add(wake);
        if (fits(bytes, first) && waiters.remove(wake)) {
            wake.run();
        }
    }
}
