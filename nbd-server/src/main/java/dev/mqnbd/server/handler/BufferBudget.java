package dev.mqnbd.server.handler;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.jspecify.annotations.Nullable;

/**
 * A bound on the bytes of request buffers in flight: WRITE payloads, from the header that announces one
 * (room is reserved before the payload is read, {@link BackPressure#admit}) until the backend completes the
 * WRITE, and READ reply buffers the backend fills, from submit until the READ completes. The server has
 * one, and each export one of its own within it ({@link #forExport}) with half the server's bound.
 *
 * <p>Each connection keeps at most {@link TransmissionHandler#MAX_READ_BYTES_IN_FLIGHT} of READs and
 * {@link TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT} of WRITEs in flight ({@link BackPressure}), but
 * behind a slow backend (a rate limit, a store that stalls) many connections together could still hold
 * more than the direct memory every other client's buffers come from. A request whose buffer would take
 * its export's buffers in flight past the export's bound, or all exports' past the server's, waits (its
 * connection reading nothing more) until requests complete there. Clients stuck behind one slow export
 * can therefore take at most half of the server's bound, and the clients of other exports go on in the
 * rest. A request always goes when nothing is in flight where it would wait, so a payload of any allowed
 * size proceeds. The check and the take are not one step, so the totals may pass their bounds by one
 * payload per event loop.
 *
 * <p>Only requests of {@link #COUNTED_FROM} bytes or more count: smaller ones hold at most the queue depth
 * times that per connection, and the 4 KiB requests of a busy server pass no shared counter. READs
 * answered from the backend's own memory (READ_SEGMENTS views) take no buffer and do not count.
 *
 * <p><b>Threading:</b> thread-safe. Connections take and give on their event loops; a waiting connection
 * is woken by the thread that gives bytes back, through the task it registered ({@link #await}).
 */
public final class BufferBudget {
    /** No bound: every request goes. */
    public static final BufferBudget UNLIMITED = new BufferBudget(Long.MAX_VALUE);

    /** The smallest request buffer that counts against the budget: 64 KiB. */
    public static final int COUNTED_FROM = 64 << 10;

    private final long limit;
    private final @Nullable BufferBudget server;
    private final AtomicLong held = new AtomicLong();
    private final ConcurrentLinkedQueue<Runnable> waiters = new ConcurrentLinkedQueue<>();
    private final LongAdder waits = new LongAdder();

    /**
     * Creates a server's budget of {@code limit} bytes.
     *
     * @throws IllegalArgumentException if {@code limit} is not positive
     */
    public BufferBudget(long limit) {
        this(limit, null);
    }

    private BufferBudget(long limit, @Nullable BufferBudget server) {
        if (limit <= 0) {
            throw new IllegalArgumentException("limit: " + limit + " (expected: > 0)");
        }
        this.limit = limit;
        this.server = server;
    }

    /** Returns a budget for one export: half of this one's bound, and counted in this one too. */
    public BufferBudget forExport() {
        return limit == Long.MAX_VALUE ? this : new BufferBudget(Math.max(1, limit / 2), this);
    }

    /** Returns the bound in bytes. */
    public long limit() {
        return limit;
    }

    /** Returns the bytes of request buffers in flight now, counted here. */
    public long held() {
        return held.get();
    }

    /** Returns whether a request waits for room here now. */
    public boolean waiting() {
        return !waiters.isEmpty();
    }

    /** Returns how many times a request waited for room here. */
    public long waits() {
        return waits.sum();
    }

    /**
     * Returns the budget a request buffer of {@code bytes} must wait for now, or {@code null} if it may go:
     * here and in the server's budget, nothing is in flight or it fits under the bound.
     */
    @Nullable
    BufferBudget blocking(long bytes) {
        if (bytes < COUNTED_FROM || limit == Long.MAX_VALUE) {
            return null;
        }
        if (!fitsHere(bytes)) {
            return this;
        }
        return server == null ? null : server.blocking(bytes);
    }

    private boolean fitsHere(long bytes) {
        long now = held.get();
        return now == 0 || now + bytes <= limit;
    }

    /** Records a buffer of {@code bytes} handed to a backend. */
    void take(long bytes) {
        if (limit != Long.MAX_VALUE && bytes >= COUNTED_FROM) {
            held.addAndGet(bytes);
            if (server != null) {
                server.take(bytes);
            }
        }
    }

    /** Records that a request with a buffer of {@code bytes} completed, and wakes the connections that wait for room. */
    void give(long bytes) {
        if (limit == Long.MAX_VALUE || bytes < COUNTED_FROM) {
            return;
        }
        held.addAndGet(-bytes);
        Runnable waiter;
        while ((waiter = waiters.poll()) != null) {
            waiter.run();
        }
        if (server != null) {
            server.give(bytes);
        }
    }

    /**
     * Registers {@code wake} to run once when bytes are next given back here; runs it at once if a buffer
     * of {@code bytes} fits here by then (bytes given back between the caller's check and this call would
     * otherwise wake nobody). {@code wake} must be cheap and may run on any thread.
     */
    void await(long bytes, Runnable wake) {
        waits.increment();
        waiters.add(wake);
        if (fitsHere(bytes) && waiters.remove(wake)) {
            wake.run();
        }
    }
}
