package dev.mqnbd.bench;

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
 * {@link NbdReplyEncoder}'s simple replies: a 16-byte reply without data in a buffer of its own (what a
 * WRITE, FLUSH or TRIM gets), a READ reply buffer with room for 4 KiB after its header (the backend
 * fills it in place), and 32 headers written into one reused buffer (the encoding alone, no allocation).
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

    @Param({"true", "false"})
    public boolean pooledAllocator;

    private ByteBufAllocator alloc;
    private ByteBuf headers;
    private long cookie;

    @Setup
    public void setUp() {
        alloc = pooledAllocator ? PooledByteBufAllocator.DEFAULT : UnpooledByteBufAllocator.DEFAULT;
        headers = alloc.directBuffer(HEADERS * 16);
    }

    @TearDown
    public void tearDown() {
        headers.release();
    }

    @Benchmark
    public int simpleReply() {
        ByteBuf reply = NbdReplyEncoder.simpleReply(alloc, cookie++, 0);
        int n = reply.readableBytes();
        reply.release();
        return n;
    }

    @Benchmark
    public int readReply4k() {
        ByteBuf reply = NbdReplyEncoder.readReply(alloc, cookie++, 4096);
        int n = reply.writableBytes();
        reply.release();
        return n;
    }

    @Benchmark
    @OperationsPerInvocation(HEADERS)
    public int simpleReplyHeaders32() {
        headers.clear();
        for (int i = 0; i < HEADERS; i++) {
            NbdReplyEncoder.writeSimpleReplyHeader(headers, cookie++, 0);
        }
        return headers.readableBytes();
    }
}
