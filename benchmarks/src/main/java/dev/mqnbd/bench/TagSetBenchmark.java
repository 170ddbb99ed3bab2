package dev.mqnbd.bench;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagSet;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A tag's get/put cycle through the queue: {@code BlockQueue.tryAllocate} takes a tag from the lock-free
 * bitmap and claims its preallocated request, {@code abandon} recycles the request and returns the tag.
 *
 * <p>{@code heldPercent} of the tags stay allocated for the whole run, the lowest ones, so the bitmap scan
 * has to pass over full words first, as it does on a busy queue.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
public class TagSetBenchmark {
    @Param({"128", "1024"})
    public int queueDepth;

    @Param({"0", "90"})
    public int heldPercent;

    private BlockQueue<Void, Void, Void, Void> queue;
    private final List<Request<Void>> held = new ArrayList<>();
    private final RequestCompletion completion = rq -> {
        throw new AssertionError("abandoned requests never complete: " + rq);
    };

    @Setup
    public void setUp() throws MqException {
        TagSet<Void, Void, Void, Void> tags =
                TagSet.builder(new UnusedDriver()).queueDepth(queueDepth).build();
        queue = BlockQueue.builder(tags)
                .name("tag-bench")
                .limits(new QueueLimits(1L << 30, 512, 4096, 1 << 20, 0, Set.of(), false))
                .executors(i -> CallerHctxExecutor.INSTANCE)
                .build();
        for (int i = 0; i < queueDepth * heldPercent / 100; i++) {
            held.add(queue.tryAllocate(0, completion));
        }
    }

    @TearDown
    public void tearDown() throws MqException {
        for (Request<Void> rq : held) {
            queue.abandon(rq);
        }
        held.clear();
        queue.close();
    }

    @Benchmark
    public int allocateAbandon() {
        Request<Void> rq = Objects.requireNonNull(queue.tryAllocate(0, completion)); // a tag is always free
        int tag = rq.tag();
        queue.abandon(rq);
        return tag;
    }

    /** Never sees a request: every request is abandoned before it is submitted. */
    static final class UnusedDriver implements Operations<Void, Void, Void, Void> {
        @Override
        public Void initHctx(Void tagSetData, int hctxIndex) {
            return null;
        }

        @Override
        public Void newRequestData() {
            return null;
        }

        @Override
        public Status queueRq(Void hw, Void queue, Request<Void> rq, boolean isLast) {
            throw new AssertionError("no request is submitted: " + rq);
        }
    }
}
