package dev.mqnbd.bench;

import dev.mqnbd.filter.PassThroughFilter;
import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagSet;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * mq-core's dispatch path with a driver that does no I/O: {@code tryAllocate → prepare → submit(isLast)
 * → queueRq → end → complete → completion → free}, everything inline on the benchmark thread.
 *
 * <p>{@link #single} submits one request at a time ({@code isLast} always set, the driver ends it inside
 * {@code queueRq}); {@link #batch16} allocates 16 requests, submits them as one batch whose last carries
 * {@code isLast}, and the driver ends the batch when it sees it, as a driver that defers I/O to the end of
 * a batch would. Both report requests per second. With several hardware contexts the thread takes each
 * invocation's requests from the next context in turn, so the tags and requests of every context stay in use.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
public class DispatchBenchmark {
    private static final int QUEUE_DEPTH = 128;
    private static final int BATCH = 16;

    @Param({"1", "4"})
    public int hwQueues;

    /** Pass-through filters stacked on the driver: 0 measures mq-core alone, 1 what a filter layer adds. */
    @Param({"0", "1"})
    public int filters;

    private BlockQueue<?, Void, Void, Void> queue;
    private final @Nullable Request<?>[] batch = new Request<?>[BATCH];
    private long completed;
    private final RequestCompletion completion = rq -> completed++;
    private int nextHctx;

    @Setup
    public void setUp() throws MqException {
        QueueLimits limits = new QueueLimits(1L << 30, 512, 4096, 1 << 20, 0, Set.of(), false);
        queue = filters == 0
                ? build(new NoopDriver(), limits)
                : build(new PassThroughFilter<>(new NoopDriver(), limits), limits);
    }

    private <H> BlockQueue<H, Void, Void, Void> build(Operations<H, Void, Void, Void> driver, QueueLimits limits)
            throws MqException {
        TagSet<H, Void, Void, Void> tags = TagSet.builder(driver)
                .hwQueues(hwQueues)
                .queueDepth(QUEUE_DEPTH)
                .build();
        return BlockQueue.builder(tags)
                .name("dispatch-bench")
                .limits(limits)
                .executors(i -> CallerHctxExecutor.INSTANCE)
                .build();
    }

    @TearDown
    public void tearDown() throws MqException {
        queue.close();
    }

    /** One request per invocation. */
    @Benchmark
    public long single() {
        Request<Void> rq = Objects.requireNonNull(queue.tryAllocate(nextHctx(), completion)); // a tag is always free
        rq.prepare(ReqOp.READ, 0, 0, 4096, null);
        queue.submit(rq, true);
        return completed;
    }

    /** A batch of 16 requests per invocation; the score is per request. */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long batch16() {
        int h = nextHctx();
        for (int i = 0; i < BATCH; i++) {
            Request<Void> rq = Objects.requireNonNull(queue.tryAllocate(h, completion));
            rq.prepare(ReqOp.READ, 0, i * 4096L, 4096, null);
            batch[i] = rq;
        }
        for (int i = 0; i < BATCH; i++) {
            // OWNERSHIP: each request goes to the driver here; the driver ends the batch at its last one.
            queue.submit(Objects.requireNonNull(batch[i]), i == BATCH - 1);
            batch[i] = null;
        }
        return completed;
    }

    private int nextHctx() {
        int h = nextHctx;
        nextHctx = h + 1 == hwQueues ? 0 : h + 1;
        return h;
    }

    /** Per-context driver data: the requests of the open batch. Used on the context's executor only. */
    static final class PendingBatch {
        final @Nullable Request<?>[] requests = new Request<?>[QUEUE_DEPTH];
        int count;

        void endAll() {
            for (int i = 0; i < count; i++) {
                Request<?> rq = Objects.requireNonNull(requests[i]);
                requests[i] = null;
                rq.end(Status.OK);
            }
            count = 0;
        }
    }

    /** A driver without I/O, like null_blk in its inline mode: a request ends when its batch does. */
    static final class NoopDriver implements Operations<PendingBatch, Void, Void, Void> {
        @Override
        public PendingBatch initHctx(Void tagSetData, int hctxIndex) {
            return new PendingBatch();
        }

        @Override
        public Void newRequestData() {
            return null;
        }

        @Override
        public Status queueRq(PendingBatch hw, Void queue, Request<Void> rq, boolean isLast) {
            // OWNERSHIP: the driver holds rq until the end of its batch, then ends it once.
            hw.requests[hw.count++] = rq;
            if (isLast) {
                hw.endAll();
            }
            return Status.OK;
        }

        @Override
        public void commitRqs(PendingBatch hw, Void queue) {
            hw.endAll();
        }
    }
}
