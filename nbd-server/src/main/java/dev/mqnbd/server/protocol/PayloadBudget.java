package dev.mqnbd.server.protocol;

import io.netty.channel.Channel;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.LongSupplier;

/**
 * A server-wide bound on the bytes of WRITE payloads that have begun to arrive and are not whole yet.
 *
 * <p>Each connection may buffer one payload of up to the export's maximum (32 MiB by default) while it
 * arrives, so a client that opens many connections, starts a large WRITE on each and then sends nothing
 * more would hold connections times the maximum, enough to exhaust the direct memory every other client's
 * buffers come from. When the partial payloads of all connections together pass the bound, the connection
 * whose payload has been arriving the longest is closed (and, while still over, the next), as more payload
 * arrives or at the next {@link #sweep()}, once it has been arriving for {@link #GRACE_NANOS}: a client
 * that sends its payload at the speed of the network is not the one closed, a client that stalls half way
 * is. Past twice the bound (many payloads begun within the grace), the oldest are closed without it, so
 * partial payloads never hold more than twice the bound for longer than one socket read.
 *
 * <p>A payload's room among the buffers in flight is reserved before it arrives ({@link PayloadAdmission}),
 * so a client that announces large WRITEs and then sends their payloads slowly, or not at all, could keep
 * other clients' requests waiting for that room. While any request waits for room ({@code othersWait}),
 * {@link #sweep()} also closes each connection whose payload, arriving for {@link #GRACE_NANOS} or more, came
 * at less than {@link #MIN_BYTES_PER_SECOND} between two sweeps in a row (while the server read the
 * connection at both): to hold room, a client must keep sending.
 *
 * <p><b>Threading:</b> thread-safe: every connection's decoder calls its own {@link Share} on its event
 * loop; the bookkeeping is under this object's lock, and closing a connection is left to its event loop.
 */
public final class PayloadBudget {
    /** How long a payload may have been arriving before it can be the one closed over the bound. */
    public static final long GRACE_NANOS = TimeUnit.SECONDS.toNanos(1);

    /** The slowest a payload may arrive from one sweep to the next, past the grace, while requests wait for room. */
    public static final long MIN_BYTES_PER_SECOND = 1 << 20;

    /** No bound: nothing is counted, nothing is ever closed. */
    public static final PayloadBudget UNLIMITED = new PayloadBudget(Long.MAX_VALUE, Eviction.NONE, System::nanoTime);

    /** What happens to a connection closed over the bound. */
    @FunctionalInterface
    public interface Eviction {
        /** Nothing: for {@link #UNLIMITED}. */
        Eviction NONE = (channel, held, pendingNanos, total, limit, slow) -> {};

        /**
         * Called, outside the budget's lock, for a connection about to be closed: {@code held} bytes of its
         * payload had arrived over {@code pendingNanos}, while all partial payloads held {@code total} bytes
         * against the {@code limit}; {@code slow} when it is closed for arriving too slowly while requests
         * waited for room, not for the bound.
         */
        void evicted(Channel channel, long held, long pendingNanos, long total, long limit, boolean slow);
    }

    private final long limit;
    private final Eviction eviction;
    private final LongSupplier clock;
    private final BooleanSupplier othersWait;
    // Guarded by this. Shares holding bytes, in the order their payloads began to arrive.
    private final LinkedHashSet<Share> pending = new LinkedHashSet<>();
    private long total;

    /**
     * Creates a budget of {@code limit} bytes.
     *
     * @param eviction told of each connection closed over the bound (to log it)
     * @param clock read as {@link System#nanoTime()} is: for tests
     * @throws IllegalArgumentException if {@code limit} is not positive
     */
    public PayloadBudget(long limit, Eviction eviction, LongSupplier clock) {
        this(limit, eviction, clock, () -> false);
    }

    /**
     * Creates a budget of {@code limit} bytes that also closes slow payloads while {@code othersWait}.
     *
     * @param eviction told of each connection closed (to log it)
     * @param clock read as {@link System#nanoTime()} is: for tests
     * @param othersWait whether requests wait for room for their buffers now (asked once a sweep)
     * @throws IllegalArgumentException if {@code limit} is not positive
     */
    public PayloadBudget(long limit, Eviction eviction, LongSupplier clock, BooleanSupplier othersWait) {
        this.othersWait = othersWait;
        if (limit <= 0) {
            throw new IllegalArgumentException("limit: " + limit + " (expected: > 0)");
        }
        this.limit = limit;
        this.eviction = eviction;
        this.clock = clock;
    }

    /** Returns the bound in bytes. */
    public long limit() {
        return limit;
    }

    /** Returns the bytes of partial payloads held now. */
    public synchronized long held() {
        return total;
    }

    /** Returns the share of one connection, holding nothing. */
    public Share share(Channel channel) {
        return new Share(channel);
    }

    /**
     * One connection's part of the budget.
     *
     * <p><b>Threading:</b> called on the connection's event loop only.
     */
    public final class Share {
        private final Channel channel;
        // Guarded by PayloadBudget.this.
        private long bytes;
        private long since;
        private boolean closed;
        private boolean counted;
        // When the last sweep under waiting saw this payload (Long.MIN_VALUE: none has), and how much had arrived.
        private long sweptAt = Long.MIN_VALUE;
        private long bytesAtSweep;

        private Share(Channel channel) {
            this.channel = channel;
        }

        /**
         * Records that {@code bytes} of a payload not yet whole are buffered (more than before, as more
         * arrives; 0 when it is about to arrive); closes the connections that waited longest if the budget
         * is then exceeded.
         */
        public void hold(long bytes) {
            if (limit == Long.MAX_VALUE) {
                return; // UNLIMITED keeps no books
            }
            List<Victim> victims;
            synchronized (PayloadBudget.this) {
                if (closed || (counted && bytes == this.bytes)) {
                    return;
                }
                long now = clock.getAsLong();
                if (!counted) {
                    counted = true;
                    since = now;
                    sweptAt = Long.MIN_VALUE;
                    pending.add(this);
                }
                total += bytes - this.bytes;
                this.bytes = bytes;
                if (total <= limit) {
                    return;
                }
                victims = evict(now);
            }
            close(victims);
        }

        // Under the lock, once taken out of pending: the connection is about to be closed.
        private void drop() {
            total -= bytes;
            bytes = 0;
            counted = false;
            closed = true;
        }

        /** Records that the payload is whole (or dropped): it holds nothing against the budget now. */
        public void release() {
            synchronized (PayloadBudget.this) {
                if (counted) {
                    total -= bytes;
                    bytes = 0;
                    counted = false;
                    pending.remove(this);
                }
            }
        }
    }

    /**
     * Closes the oldest connections past the grace while partial payloads are over the bound, as the
     * arrival of more payload does: the server calls it once a second, so that payloads which stalled all
     * at once, within the grace of each other, are closed too.
     */
    public void sweep() {
        boolean slowOnes = othersWait.getAsBoolean();
        List<Victim> victims;
        synchronized (this) {
            if (total > limit) {
                victims = evict(clock.getAsLong());
            } else if (slowOnes && !pending.isEmpty()) {
                victims = evictSlow(clock.getAsLong());
            } else {
                forgetSweeps();
                return;
            }
        }
        close(victims);
    }

    private void close(List<Victim> victims) {
        for (Victim v : victims) {
            eviction.evicted(v.channel(), v.held(), v.pendingNanos(), v.total(), limit, v.slow());
            v.channel().close();
        }
    }

    /** A connection chosen to be closed, with what it held when it was chosen. */
    private record Victim(Channel channel, long held, long pendingNanos, long total, boolean slow) {}

    // Under the lock: takes the oldest shares past the grace out until the total is within the limit.
    private List<Victim> evict(long now) {
        List<Victim> victims = new ArrayList<>();
        for (Iterator<Share> it = pending.iterator(); it.hasNext() && total > limit; ) {
            Share s = it.next();
            if (now - s.since < GRACE_NANOS && total <= 2 * limit) {
                break; // the rest began later still; past twice the bound, no grace
            }
            it.remove();
            victims.add(new Victim(s.channel, s.bytes, now - s.since, total, false));
            s.drop();
        }
        return victims;
    }

    /*
     * Under the lock: takes out every share past the grace whose payload arrived slower than MIN_BYTES_PER_SECOND
     * since the sweep before, and notes where the rest stand. A payload is judged only between two sweeps in a
     * row that found its connection being read: one the server itself stopped reading (it waits for a tag, for
     * room, for its replies to drain) is not stalling, and its count starts again.
     */
    private List<Victim> evictSlow(long now) {
        List<Victim> victims = new ArrayList<>();
        for (Iterator<Share> it = pending.iterator(); it.hasNext(); ) {
            Share s = it.next();
            boolean read = s.channel.config().isAutoRead();
            if (read
                    && s.sweptAt != Long.MIN_VALUE
                    && now - s.since >= GRACE_NANOS
                    && s.bytes - s.bytesAtSweep < (double) MIN_BYTES_PER_SECOND * (now - s.sweptAt) / 1e9) {
                it.remove();
                victims.add(new Victim(s.channel, s.bytes, now - s.since, total, true));
                s.drop();
                continue;
            }
            s.sweptAt = read ? now : Long.MIN_VALUE;
            s.bytesAtSweep = s.bytes;
        }
        return victims;
    }

    // Under the lock: with nobody waiting for room, the counts start again when someone next does.
    private void forgetSweeps() {
        for (Share s : pending) {
            s.sweptAt = Long.MIN_VALUE;
        }
    }
}
