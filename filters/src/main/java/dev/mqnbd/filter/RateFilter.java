package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Sizes;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * {@code rate}: limits an export's requests per second and bytes per second, shared by every connection
 * of the export, as qemu's throttle groups do (nbdkit's rate filter limits bandwidth only).
 *
 * <p>Each limit is a token bucket in its virtual-scheduling form (GCRA): a request may start when the
 * limit's theoretical arrival time is no more than the burst ahead of now, and moves it forward by the
 * request's cost (one request, or its bytes). A request that may not start yet is answered {@link
 * Status#BUSY}: mq-core keeps it, and every later request of its context, in its requeue and offers it
 * again when another request ends or after a few milliseconds, so no thread ever waits. While requests
 * wait, their tags stay taken, and a connection whose tags are all taken stops being read: the limit
 * pushes back on the client instead of buffering it.
 *
 * <p>Bytes count for READ and WRITE; every request counts for the request rate, except FLUSH, which
 * carries no data and would otherwise delay the promise of durability behind the writes it covers.
 *
 * <p><b>Threading:</b> one filter per export, shared by its contexts ({@link RateBudget}).
 */
final class RateFilter<N, Q, T, R> extends Filter<FilterContext<N>, N, Q, T, R> {
    private final RateBudget budget;
    private final LongSupplier clock;
    private final String description;

    private final AtomicLong deferred = new AtomicLong();

    /**
     * @param iops requests per second, or 0 for no limit
     * @param bytesPerSecond bytes per second, or 0 for no limit
     * @param burstNanos how far ahead of its rate a limit may run after an idle spell
     */
    RateFilter(
            Operations<N, Q, T, R> next,
            QueueLimits limits,
            long iops,
            long bytesPerSecond,
            long burstNanos,
            LongSupplier clock,
            String description) {
        super(next, limits);
        this.budget = new RateBudget(iops, bytesPerSecond, burstNanos);
        this.clock = clock;
        this.description = description;
    }

    @Override
    protected FilterContext<N> newContext(N next, int index) {
        return new FilterContext<>(next, index);
    }

    @Override
    public Status queueRq(FilterContext<N> hw, Q queue, Request<R> rq, boolean isLast) {
        if (rq.op() != ReqOp.FLUSH && !admit(rq)) {
            deferred.incrementAndGet();
            return Status.BUSY;
        }
        return pass(hw, queue, rq, isLast);
    }

    /** Takes the request's cost from the budget when it allows it now; otherwise takes nothing. */
    private boolean admit(Request<R> rq) {
        boolean data = rq.op() == ReqOp.READ || rq.op() == ReqOp.WRITE;
        return budget.tryAcquire(data ? rq.length() : 0, clock.getAsLong());
    }

    @Override
    protected void start() {
        budget.reset(clock.getAsLong());
    }

    /** Returns how many times a request was told to wait (answered BUSY). */
    long deferred() {
        return deferred.get();
    }

    @Override
    public Map<String, Long> counters() {
        return Map.of("deferred", deferred.get());
    }

    @Override
    public String toString() {
        return description;
    }

    /** The {@code rate} kind. */
    public static final class Kind extends DescribedFilterKind {
        /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
        public Kind() {
            super(
                    "rate",
                    "limits requests and bytes per second, shared by every connection of the export",
                    List.of(
                            "iops=N  requests per second (flushes are not counted)",
                            "bandwidth=SIZE/s  bytes read and written per second, e.g. 50M/s",
                            "burst=DURATION  how much unused rate may be spent at once after an idle spell (default: 100ms)"),
                    "tenant=rate,iops=5000,bandwidth=100M/s");
        }

        @Override
        public <N, Q, T, R> Filter<?, N, Q, T, R> create(
                Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context) {
            long iops = settings.positive("iops", 0);
            long bandwidth = 0;
            String bw = settings.get("bandwidth").orElse(null);
            if (bw != null) {
                String size = bw.endsWith("/s") ? bw.substring(0, bw.length() - 2) : bw;
                try {
                    bandwidth = Sizes.parse(size);
                } catch (IllegalArgumentException e) {
                    bandwidth = -1;
                }
                if (bandwidth <= 0) {
                    throw settings.bad("bandwidth", bw, "bytes per second such as 50M/s or 1G/s");
                }
            }
            if (iops == 0 && bandwidth == 0) {
                throw new IllegalArgumentException(
                        "filter rate: no limit given (expected: iops=N, bandwidth=SIZE/s or both)");
            }
            long burst = settings.duration("burst", Duration.ofMillis(100)).toNanos();
            return new RateFilter<>(next, below, iops, bandwidth, burst, System::nanoTime, "rate(" + settings + ")");
        }
    }
}
