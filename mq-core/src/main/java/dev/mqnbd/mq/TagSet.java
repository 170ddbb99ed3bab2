package dev.mqnbd.mq;

import static dev.mqnbd.mq.Checks.requireArgument;

import java.time.Duration;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The driver, its tag-set data and the preallocated requests of every hardware queue, the kernel's
 * {@code struct blk_mq_tag_set}.
 *
 * <p>Built with {@link #builder(Operations)}: {@code build()} calls {@link Operations#newRequestData()}
 * once per tag, for {@code hwQueues × queueDepth} tags, and never again. {@link BlockQueue}s are built
 * on a tag set and share its tags; the server builds one queue per tag set. The tag set holds no
 * per-context driver data: each queue calls {@link Operations#initHctx} with {@link #tagSetData()} when
 * it is built and owns the result.
 *
 * <p><b>Threading:</b> immutable after build, safe to share.
 */
public final class TagSet<H, Q, T, R> {
    final Operations<H, Q, T, R> ops;
    final boolean polling;
    final int hwQueues;
    final int queueDepth;
    final T tagSetData;
    final long timeoutNanos;
    final Tags<R>[] tags;

    @SuppressWarnings("unchecked")
    private TagSet(Builder<H, Q, T, R> b) {
        this.ops = b.ops;
        // Optional callbacks are fixed when the set is built, not tested on every call.
        this.polling = b.ops instanceof PollingOperations;
        this.hwQueues = b.hwQueues;
        this.queueDepth = b.queueDepth;
        this.tagSetData = b.tagSetData();
        this.timeoutNanos = b.timeout.toNanos();
        this.tags = (Tags<R>[]) new Tags<?>[hwQueues];
        for (int i = 0; i < hwQueues; i++) {
            tags[i] = new Tags<>(i, queueDepth, ops);
        }
    }

    /** Starts a tag set for the driver {@code ops}. */
    public static <H, Q, T, R> Builder<H, Q, T, R> builder(Operations<H, Q, T, R> ops) {
        return new Builder<>(ops);
    }

    /** Returns the number of hardware queues. */
    public int hwQueues() {
        return hwQueues;
    }

    /** Returns the number of tags per hardware queue. */
    public int queueDepth() {
        return queueDepth;
    }

    /** Returns the tag-set data handed to every {@link Operations#initHctx}. */
    public T tagSetData() {
        return tagSetData;
    }

    /** Returns the request timeout, or {@link Duration#ZERO} when requests never time out. */
    public Duration timeout() {
        return Duration.ofNanos(timeoutNanos);
    }

    /**
     * Returns the request that holds {@code tag} on hardware queue {@code hwIndex} while it is in flight,
     * the kernel's {@code blk_mq_tag_to_rq}.
     *
     * @return the request, or {@code null} when that tag is not in flight
     */
    public @Nullable Request<R> tagToRq(int hwIndex, int tag) {
        Objects.checkIndex(hwIndex, hwQueues);
        Objects.checkIndex(tag, queueDepth);
        Request<R> rq = tags[hwIndex].requests[tag];
        return rq.state() == Request.IN_FLIGHT ? rq : null;
    }

    /**
     * Builds a {@link TagSet}; every setter checks its argument.
     *
     * <p>Defaults: one hardware queue, a depth of 128, no tag-set data, no timeout.
     */
    public static final class Builder<H, Q, T, R> {
        private final Operations<H, Q, T, R> ops;
        private int hwQueues = 1;
        private int queueDepth = 128;
        private @Nullable T tagSetData;
        private Duration timeout = Duration.ZERO;

        private Builder(Operations<H, Q, T, R> ops) {
            this.ops = Objects.requireNonNull(ops, "ops");
        }

        // Null stands for "no tag-set data": the data of a driver without any is Void, whose only value is null.
        @SuppressWarnings("NullAway")
        private T tagSetData() {
            return tagSetData;
        }

        /**
         * Sets the number of hardware queues.
         *
         * @throws IllegalArgumentException if {@code n} is not between 1 and 1024
         */
        public Builder<H, Q, T, R> hwQueues(int n) {
            requireArgument(n >= 1 && n <= 1024, "hwQueues: %s (expected: 1..1024)", n);
            this.hwQueues = n;
            return this;
        }

        /**
         * Sets the number of tags (requests in flight) per hardware queue.
         *
         * @throws IllegalArgumentException if {@code depth} is not between 1 and 4096
         */
        public Builder<H, Q, T, R> queueDepth(int depth) {
            requireArgument(depth >= 1 && depth <= 4096, "queueDepth: %s (expected: 1..4096)", depth);
            this.queueDepth = depth;
            return this;
        }

        /** Sets the data handed to every {@link Operations#initHctx}. */
        public Builder<H, Q, T, R> tagSetData(@Nullable T data) {
            this.tagSetData = data;
            return this;
        }

        /**
         * Sets how long a request may stay in flight before {@link Operations#timeout} sees it.
         *
         * @throws IllegalArgumentException if {@code timeout} is negative; zero turns timeouts off
         */
        public Builder<H, Q, T, R> timeout(Duration timeout) {
            requireArgument(!timeout.isNegative(), "timeout: %s (expected: >= 0)", timeout);
            this.timeout = timeout;
            return this;
        }

        /** Preallocates every request and its private data. */
        public TagSet<H, Q, T, R> build() {
            return new TagSet<>(this);
        }
    }
}
