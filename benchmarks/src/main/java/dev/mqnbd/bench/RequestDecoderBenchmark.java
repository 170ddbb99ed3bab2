package dev.mqnbd.bench;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.concurrent.TimeUnit;
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
 * {@link NbdRequestDecoder} on one inbound buffer that holds 32 compact (28-byte) requests, as one socket
 * read brings them at a client's queue depth of 32. Each invocation copies the frames into a fresh
 * direct buffer from the allocator under test (as the transport's read would), feeds it through an
 * {@link EmbeddedChannel} and releases every decoded request; the score is requests per second.
 *
 * <p>{@code command}: {@code READ} is a bare header; {@code WRITE} carries a 4 KiB payload, which the
 * decoder hands on as a retained slice of the inbound buffer.
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
public class RequestDecoderBenchmark {
    private static final int REQUESTS = 32;
    private static final int PAYLOAD = 4096;

    @Param({"true", "false"})
    public boolean pooledAllocator;

    @Param({"READ", "WRITE"})
    public String command;

    private ByteBufAllocator alloc;
    private EmbeddedChannel channel;
    private ByteBuf frames;

    @Setup
    public void setUp() {
        alloc = pooledAllocator ? PooledByteBufAllocator.DEFAULT : UnpooledByteBufAllocator.DEFAULT;
        channel = new EmbeddedChannel(new NbdRequestDecoder(32 << 20));
        channel.config().setAllocator(alloc);
        NbdCommand cmd = NbdCommand.valueOf(command);
        frames = Unpooled.buffer();
        for (int i = 0; i < REQUESTS; i++) {
            // u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u32 length
            frames.writeInt(NbdConstants.REQUEST_MAGIC);
            frames.writeShort(0);
            frames.writeShort(cmd.code());
            frames.writeLong(i);
            frames.writeLong(i * 4096L);
            frames.writeInt(PAYLOAD);
            if (cmd == NbdCommand.WRITE) {
                frames.writeZero(PAYLOAD);
            }
        }
    }

    @TearDown
    public void tearDown() {
        frames.release();
        if (channel.finish()) {
            throw new IllegalStateException("decoder left messages behind");
        }
    }

    @Benchmark
    @OperationsPerInvocation(REQUESTS)
    public long decode() {
        ByteBuf in = alloc.directBuffer(frames.readableBytes());
        in.writeBytes(frames, frames.readerIndex(), frames.readableBytes());
        // OWNERSHIP: the channel's decoder takes the inbound buffer and releases it once consumed.
        channel.writeInbound(in);
        long cookies = 0;
        for (NbdRequest rq; (rq = channel.readInbound()) != null; ) {
            cookies += rq.cookie();
            // OWNERSHIP: the reader of a decoded request releases it, and with it its payload slice.
            rq.release();
        }
        return cookies;
    }
}
