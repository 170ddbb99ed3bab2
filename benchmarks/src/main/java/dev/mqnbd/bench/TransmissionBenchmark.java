package dev.mqnbd.bench;

import dev.mqnbd.server.EventLoopHctxExecutor;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.handler.TransmissionHandler;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.ChannelOption;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
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
 * One connection's transmission path as the server runs it, without the socket: a decoded {@link
 * NbdRequest} goes into {@link TransmissionHandler} (validation, back-pressure, a tag, the request
 * prepared and submitted to a memory export through mq-core), the backend serves it, and the reply is
 * encoded and written; the benchmark takes the reply and releases it, as the transport does once it is
 * sent. Every hardware context runs on the channel's own loop, so nothing here waits on another thread.
 *
 * <p>{@link #read4k} and {@link #write4k} are the small requests that keep the path without a hand-off;
 * {@link #write256k} is a large WRITE, which with {@code spreadMin} set goes to the contexts in turn. The
 * request objects are reused (retained once more per invocation), so {@code -prof gc} shows what the
 * handler, mq-core, the backend and the encoder allocate per request.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--sun-misc-unsafe-memory-access=allow",
            "--enable-native-access=ALL-UNNAMED",
            "-Dio.netty.leakDetection.level=disabled"
        })
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
public class TransmissionBenchmark {
    private static final int SMALL = 4096;
    private static final int LARGE = 256 << 10;

    /** Hardware contexts of the export. */
    @Param({"1", "2"})
    public int hwQueues;

    /** The handler's {@code spreadMin}: 0 keeps every request on the connection's context. */
    @Param({"0", "131072"})
    public int spreadMin;

    private ExportRegistry registry;
    private EmbeddedChannel channel;
    private NbdRequest read;
    private NbdRequest write;
    private NbdRequest largeWrite;

    @Setup
    public void setUp() throws Exception {
        channel = new EmbeddedChannel();
        channel.config().setOption(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT);
        registry = new ExportRegistry();
        Export export = registry.open(
                "disk",
                "memory:64M",
                "",
                new DeviceOptions(false),
                new QueueSetup(
                        "disk", hwQueues, 128, i -> new EventLoopHctxExecutor(channel.eventLoop()), Duration.ZERO),
                32 << 20);
        NbdSession session = new NbdSession(
                NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE, export.info().transmissionFlags(), true, false, false, 0);
        channel.pipeline().addLast(new TransmissionHandler(export, session, 0, spreadMin, spreadMin));
        read = new NbdRequest(0, NbdCommand.READ.code(), 1, 8192, SMALL, null, false);
        write = new NbdRequest(0, NbdCommand.WRITE.code(), 2, 8192, SMALL, payload(SMALL), false);
        largeWrite = new NbdRequest(0, NbdCommand.WRITE.code(), 3, 1 << 20, LARGE, payload(LARGE), false);
        // Fill the pages once, so a WRITE measures the copy and not the first allocation of a page.
        write4k();
        write256k();
    }

    private static ByteBuf payload(int length) {
        ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(length);
        for (int i = 0; i < length; i++) {
            buf.writeByte(i * 31);
        }
        return buf;
    }

    @TearDown
    public void tearDown() {
        channel.finishAndReleaseAll();
        ReferenceCountUtil.release(read, read.refCnt());
        ReferenceCountUtil.release(write, write.refCnt());
        ReferenceCountUtil.release(largeWrite, largeWrite.refCnt());
        registry.close();
    }

    /** Sends {@code rq} once more and releases its reply; returns the reply's size. */
    private int roundTrip(NbdRequest rq) {
        channel.writeInbound(rq.retain());
        channel.runPendingTasks();
        Object reply = channel.readOutbound();
        if (reply == null) {
            throw new IllegalStateException("no reply to " + rq);
        }
        int size = reply instanceof ByteBuf b ? b.readableBytes() : 1;
        ReferenceCountUtil.release(reply);
        return size;
    }

    @Benchmark
    public int read4k() {
        return roundTrip(read);
    }

    @Benchmark
    public int write4k() {
        return roundTrip(write);
    }

    @Benchmark
    public int write256k() {
        return roundTrip(largeWrite);
    }
}
