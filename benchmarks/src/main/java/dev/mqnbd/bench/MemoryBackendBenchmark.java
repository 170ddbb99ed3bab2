package dev.mqnbd.bench;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.mq.Segments;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.memory.MemoryBackend;
import dev.mqnbd.storage.memory.MemoryHwData;
import dev.mqnbd.storage.memory.MemoryStore;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Objects;
import java.util.SplittableRandom;
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
 * The memory backend through its queue, as the server drives it: a request of {@code ioSize} bytes at a
 * random aligned offset of a 64 MiB working set (written in full at setup, so reads copy real pages),
 * into or out of a direct buffer, dispatched and ended inline; {@code readViews} reads as the server does
 * from 64 KiB up (READ_SEGMENTS: views of the store's pages, counted, not copied). Reports requests per
 * second.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
public class MemoryBackendBenchmark {
    private static final long WORKING_SET = 64L << 20;
    private static final int OFFSETS = 4096;

    @Param({"4096", "65536", "1048576"})
    public int ioSize;

    private BlockQueue<MemoryHwData, MemoryStore, Void, Void> queue;
    private ByteBuffer buffer;
    private final long[] offsets = new long[OFFSETS];
    private int next;
    private long failures;
    /** Views handed out by {@link #readViews}, and their bytes. */
    private long views;

    private long viewBytes;
    private final Segments sink = view -> {
        views++;
        viewBytes += view.remaining();
    };
    private final RequestCompletion completion = rq -> {
        if (rq.status() != Status.OK) {
            failures++;
        }
    };

    @Setup
    public void setUp() throws MqException {
        QueueSetup setup = new QueueSetup("memory-bench", 1, 128, i -> CallerHctxExecutor.INSTANCE, Duration.ZERO);
        queue = new MemoryBackend().open("256M", DeviceOptions.DEFAULT, setup).build(setup);
        buffer = ByteBuffer.allocateDirect(ioSize);
        SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < ioSize; i++) {
            buffer.put(i, (byte) random.nextInt());
        }
        for (long offset = 0; offset < WORKING_SET; offset += ioSize) {
            io(ReqOp.WRITE, offset);
        }
        for (int i = 0; i < OFFSETS; i++) {
            offsets[i] = random.nextLong(WORKING_SET / ioSize) * ioSize;
        }
        requireNoFailures();
    }

    @TearDown
    public void tearDown() throws MqException {
        requireNoFailures();
        queue.close();
    }

    @Benchmark
    public long read() {
        return io(ReqOp.READ, nextOffset());
    }

    @Benchmark
    public long readViews() {
        Request<Void> rq = Objects.requireNonNull(queue.tryAllocate(0, completion));
        rq.prepare(ReqOp.READ, 0, nextOffset(), ioSize, null).readSegments(sink);
        queue.submit(rq, true);
        return views + viewBytes;
    }

    @Benchmark
    public long write() {
        return io(ReqOp.WRITE, nextOffset());
    }

    private long io(ReqOp op, long offset) {
        Request<Void> rq = Objects.requireNonNull(queue.tryAllocate(0, completion)); // a tag is always free
        // The driver copies with absolute gets and puts: the buffer stays at position 0, limit ioSize.
        rq.prepare(op, 0, offset, ioSize, buffer);
        queue.submit(rq, true);
        return failures;
    }

    private long nextOffset() {
        long offset = offsets[next];
        next = (next + 1) & (OFFSETS - 1);
        return offset;
    }

    private void requireNoFailures() {
        if (failures != 0) {
            throw new IllegalStateException(failures + " requests failed");
        }
    }
}
