package dev.mqnbd.filter;

import static dev.mqnbd.filter.Checks.requireArgument;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.time.Duration;
import java.util.Objects;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import org.jspecify.annotations.Nullable;

/**
 * One rule of a {@link FaultInjectingOperations}: which requests it selects and what happens to them,
 * after nbdkit's error and delay filters and the kernel's {@code fail_make_request} / {@code
 * fail_io_timeout} attributes.
 *
 * <p>Selection, in this order, each test cheaper than the next: the rule is enabled; the request's
 * operation is one of the rule's; its range overlaps the rule's offset range (a request without a range,
 * such as FLUSH, counts as the point at its offset); the predicate, if any, accepts it. A request that
 * passes those is a <em>candidate</em> and is counted ({@link #matched()}). A candidate is then picked
 * when every selector set holds: it is among the first {@code n} candidates ({@link Builder#firstN}), it
 * comes after the first {@code k} ({@link Builder#afterFirst}), its number is a multiple of {@code n}
 * ({@link Builder#everyNth}), a seeded coin comes up ({@link Builder#probability}), and the rule has not
 * used up its {@link Builder#limit}. Picked requests are counted in {@link #injected()}.
 *
 * <p>Actions: {@link Builder#fail} ends the request with an error status without the wrapped driver
 * seeing it; {@link Builder#delay} hands it to the wrapped driver after a delay; {@link Builder#drop}
 * never ends it, so the tag set's timeout finds it and ends it with a status; {@link Builder#busy}
 * answers {@link Status#BUSY}, so mq-core requeues it.
 *
 * <p><b>Threading:</b> safe to use from every hardware context at once. The counters and the coin are
 * shared: with one hardware context the requests a rule picks are reproducible from the seed; with
 * several they depend on how the contexts interleave. {@link #enabled(boolean)} may be called from any
 * thread and takes effect for requests dispatched afterwards.
 */
public final class FaultRule {
    /** What a rule does to the requests it picks. */
    public enum Action {
        /** End the request with the rule's status; the wrapped driver never sees it. */
        FAIL,
        /** Hand the request to the wrapped driver after the rule's delay, on its hardware context. */
        DELAY,
        /** Never end the request: the tag set's timeout ends it with the rule's status. */
        DROP,
        /** Answer {@link Status#BUSY}: mq-core requeues the request and offers it again. */
        BUSY
    }

    private final String name;
    private final int opMask;
    private final long from;
    private final long to;
    private final @Nullable Predicate<? super Request<?>> predicate;
    private final long first;
    private final long after;
    private final long every;
    private final double probability;
    private final @Nullable Random coin;
    private final long limit;
    private final Action action;
    private final @Nullable Status status;
    private final long delayNanos;

    private final AtomicLong matched = new AtomicLong();
    private final AtomicLong injected = new AtomicLong();
    private volatile boolean enabled = true;

    private FaultRule(Builder b, Action action, @Nullable Status status, long delayNanos) {
        this.name = b.name;
        this.opMask = b.opMask;
        this.from = b.from;
        this.to = b.to;
        this.predicate = b.predicate;
        this.first = b.first;
        this.after = b.after;
        this.every = b.every;
        this.probability = b.probability;
        this.coin = b.probability < 1.0 ? new Random(b.seed) : null;
        this.limit = b.limit;
        this.action = action;
        this.status = status;
        this.delayNanos = delayNanos;
    }

    /** Starts a rule for requests whose operation is {@code op} or one of {@code more}. */
    public static Builder on(ReqOp op, ReqOp... more) {
        int mask = bit(op);
        for (ReqOp o : more) {
            mask |= bit(o);
        }
        return new Builder(mask);
    }

    /** Starts a rule for requests of every operation. */
    public static Builder onAny() {
        int mask = 0;
        for (ReqOp op : ReqOp.values()) {
            mask |= bit(op);
        }
        return new Builder(mask);
    }

    private static int bit(ReqOp op) {
        return 1 << Objects.requireNonNull(op, "op").ordinal();
    }

    /**
     * Decides whether this rule picks {@code rq}; counts candidates and picks. Runs on the request's
     * hardware context; allocates nothing.
     */
    boolean picks(Request<?> rq) {
        if (!enabled || (opMask & bit(rq.op())) == 0) {
            return false;
        }
        long offset = rq.offset();
        // A request without a range (FLUSH) is the point at its offset.
        long end = rq.length() > 0 ? offset + rq.length() : offset + 1;
        if (offset >= to || end <= from) {
            return false;
        }
        if (predicate != null && !predicate.test(rq)) {
            return false;
        }
        long n = matched.incrementAndGet();
        if (n > first || n <= after || n % every != 0) {
            return false;
        }
        if (coin != null && coin.nextDouble() >= probability) {
            return false;
        }
        for (long used = injected.get(); used < limit; used = injected.get()) {
            if (injected.compareAndSet(used, used + 1)) {
                return true;
            }
        }
        return false;
    }

    /** Returns the rule's name, for logs. */
    public String name() {
        return name;
    }

    /** Returns what the rule does to the requests it picks. */
    public Action action() {
        return action;
    }

    /** Returns the status a FAIL ends a request with, or a DROP's timeout does; {@code null} otherwise. */
    public @Nullable Status status() {
        return status;
    }

    /** Returns a DELAY's delay; {@link Duration#ZERO} for other actions. */
    public Duration delay() {
        return Duration.ofNanos(delayNanos);
    }

    long delayNanos() {
        return delayNanos;
    }

    /** Returns how many requests were candidates: enabled, operation, range and predicate matched. */
    public long matched() {
        return matched.get();
    }

    /** Returns how many requests the rule picked and acted on. */
    public long injected() {
        return injected.get();
    }

    /** Returns whether the rule is enabled. */
    public boolean enabled() {
        return enabled;
    }

    /** Turns the rule on or off; a disabled rule counts nothing and picks nothing. Returns this rule. */
    public FaultRule enabled(boolean on) {
        this.enabled = on;
        return this;
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder("FaultRule[").append(name).append(": ");
        String sep = "";
        for (ReqOp op : ReqOp.values()) {
            if ((opMask & bit(op)) != 0) {
                s.append(sep).append(op);
                sep = "|";
            }
        }
        if (from != 0 || to != Long.MAX_VALUE) {
            s.append(" [").append(from).append(", ").append(to).append(')');
        }
        if (predicate != null) {
            s.append(" when predicate");
        }
        if (first != Long.MAX_VALUE) {
            s.append(" first ").append(first);
        }
        if (after != 0) {
            s.append(" after ").append(after);
        }
        if (every != 1) {
            s.append(" every ").append(every);
        }
        if (coin != null) {
            s.append(" p=").append(probability);
        }
        if (limit != Long.MAX_VALUE) {
            s.append(" limit ").append(limit);
        }
        s.append(" -> ").append(action);
        if (action == Action.FAIL || action == Action.DROP) {
            s.append(' ').append(status);
        } else if (action == Action.DELAY) {
            s.append(' ').append(delay());
        }
        return s.append(']').toString();
    }

    /**
     * Builds a {@link FaultRule}: selectors first, then one action method, which returns the rule. Every
     * setter checks its argument. Defaults: every offset, no predicate, every candidate picked, no limit.
     */
    public static final class Builder {
        private final int opMask;
        private String name = "fault";
        private long from;
        private long to = Long.MAX_VALUE;
        private @Nullable Predicate<? super Request<?>> predicate;
        private long first = Long.MAX_VALUE;
        private long after;
        private long every = 1;
        private double probability = 1.0;
        private long seed;
        private long limit = Long.MAX_VALUE;

        private Builder(int opMask) {
            this.opMask = opMask;
        }

        /** Names the rule in logs and {@code toString}. */
        public Builder name(String name) {
            requireArgument(!name.isEmpty(), "name: \"\" (expected: non-empty)");
            this.name = name;
            return this;
        }

        /**
         * Selects requests whose range overlaps {@code [from, to)}.
         *
         * @throws IllegalArgumentException if {@code from} is negative or {@code to <= from}
         */
        public Builder range(long from, long to) {
            requireArgument(from >= 0 && to > from, "range: [%s, %s) (expected: 0 <= from < to)", from, to);
            this.from = from;
            this.to = to;
            return this;
        }

        /**
         * Selects requests {@code when} accepts; it runs on the hardware context, for requests that
         * passed the operation and range tests, and must be thread-safe, fast and side-effect free.
         */
        public Builder when(Predicate<? super Request<?>> when) {
            this.predicate = Objects.requireNonNull(when, "when");
            return this;
        }

        /**
         * Picks only among the first {@code n} candidates.
         *
         * @throws IllegalArgumentException if {@code n} is negative
         */
        public Builder firstN(long n) {
            requireArgument(n >= 0, "firstN: %s (expected: >= 0)", n);
            this.first = n;
            return this;
        }

        /**
         * Picks only candidates after the first {@code k}: the first {@code k} pass untouched.
         *
         * @throws IllegalArgumentException if {@code k} is negative
         */
        public Builder afterFirst(long k) {
            requireArgument(k >= 0, "afterFirst: %s (expected: >= 0)", k);
            this.after = k;
            return this;
        }

        /**
         * Picks only the {@code n}-th, {@code 2n}-th, ... candidate.
         *
         * @throws IllegalArgumentException if {@code n} is not positive
         */
        public Builder everyNth(long n) {
            requireArgument(n >= 1, "everyNth: %s (expected: >= 1)", n);
            this.every = n;
            return this;
        }

        /**
         * Picks each candidate with probability {@code p}, drawn from a {@link Random} seeded with {@code
         * seed}.
         *
         * @throws IllegalArgumentException if {@code p} is not between 0 and 1
         */
        public Builder probability(double p, long seed) {
            requireArgument(p >= 0.0 && p <= 1.0, "probability: %s (expected: 0..1)", p);
            this.probability = p;
            this.seed = seed;
            return this;
        }

        /**
         * Acts on at most {@code n} requests in all.
         *
         * @throws IllegalArgumentException if {@code n} is negative
         */
        public Builder limit(long n) {
            requireArgument(n >= 0, "limit: %s (expected: >= 0)", n);
            this.limit = n;
            return this;
        }

        /**
         * Ends picked requests with {@code status}, as a failing device would (nbdkit's error filter).
         *
         * @throws IllegalArgumentException if {@code status} is not an error
         */
        public FaultRule fail(Status status) {
            requireArgument(status.isError(), "status: %s (expected: an error status)", status);
            return new FaultRule(this, Action.FAIL, status, 0);
        }

        /**
         * Hands picked requests to the wrapped driver after {@code delay} (nbdkit's delay filter); the
         * hardware context is not blocked meanwhile.
         *
         * @throws IllegalArgumentException if {@code delay} is not positive
         */
        public FaultRule delay(Duration delay) {
            requireArgument(!delay.isNegative() && !delay.isZero(), "delay: %s (expected: > 0)", delay);
            return new FaultRule(this, Action.DELAY, null, delay.toNanos());
        }

        /** Drops picked requests; the tag set's timeout ends each with {@link Status#TIMEOUT}. */
        public FaultRule drop() {
            return drop(Status.TIMEOUT);
        }

        /**
         * Drops picked requests, as a device that lost the command; the tag set's timeout ends each with
         * {@code status}. Without a timeout they stay in flight until {@link
         * FaultInjectingOperations#endDropped} ends them.
         *
         * @throws IllegalArgumentException if {@code status} is not an error
         */
        public FaultRule drop(Status status) {
            requireArgument(status.isError(), "status: %s (expected: an error status)", status);
            return new FaultRule(this, Action.DROP, status, 0);
        }

        /** Answers {@link Status#BUSY} for picked requests; mq-core requeues and retries them. */
        public FaultRule busy() {
            return new FaultRule(this, Action.BUSY, null, 0);
        }
    }
}
