package dev.mqnbd.bench;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
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
 * {@link NbdReplyEncoder} as the server uses it, in each framing a connection may negotiate: the reply
 * without data that a WRITE, FLUSH or TRIM gets, in a buffer of its own; a 4 KiB READ (the buffer with
 * room for the header, then the header written in front of the data the backend filled in place); a
 * failed READ; and 32 READ headers written into one reused buffer (the encoding alone, no allocation).
 * Each allocated buffer is released in the same invocation, as the transport does once it is written.
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
public class ReplyEncoderBenchmark {
    private static final int HEADERS = 32;
    private static final int READ_LENGTH = 4096;

    @Param({"true", "false"})
    public boolean pooledAllocator;

    @Param({"SIMPLE", "STRUCTURED", "EXTENDED"})
    public NbdReplyEncoder.Mode mode;

    private ByteBufAllocator alloc;
    private NbdReplyEncoder encoder;
    private ByteBuf reused;
    private long cookie;

    @Setup
    public void setUp() {
        alloc = pooledAllocator ? PooledByteBufAllocator.DEFAULT : UnpooledByteBufAllocator.DEFAULT;
        encoder = NbdReplyEncoder.of(mode);
        reused = encoder.allocateRead(alloc, READ_LENGTH);
    }

    @TearDown
    public void tearDown() {
        reused.release();
    }

    @Benchmark
    public int succeeded() {
        ByteBuf reply = encoder.succeeded(alloc, cookie++, 0);
        int n = reply.readableBytes();
        reply.release();
        return n;
    }

    @Benchmark
    public int readSucceeded4k() {
        ByteBuf buffer = encoder.allocateRead(alloc, READ_LENGTH);
        ByteBuf reply = encoder.readSucceeded(alloc, buffer, cookie++, 0, READ_LENGTH, null, null, 0);
        int n = reply.readableBytes();
        reply.release();
        return n;
    }

    @Benchmark
    public int readFailed() {
        ByteBuf reply = encoder.failed(alloc, cookie++, 0, NbdCommand.READ, NbdError.EIO.code());
        int n = reply.readableBytes();
        reply.release();
        return n;
    }

    /** The header of a READ reply written in place, into the buffer the backend filled: no allocation. */
    @Benchmark
    @OperationsPerInvocation(HEADERS)
    public int readHeaders32() {
        int n = 0;
        for (int i = 0; i < HEADERS; i++) {
            n += encoder.readSucceeded(alloc, reused, cookie++, 0, READ_LENGTH, null, null, 0)
                    .readableBytes();
        }
        return n;
    }
}
