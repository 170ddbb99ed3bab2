package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A synchronous client of a {@link BlockQueue} for tests: every call allocates a request with {@code
 * tryAllocate}, fills it with {@code prepare}, submits it with {@code isLast = true} from the calling
 * thread and waits for its completion, the path the NBD front end takes.
 */
public final class TestDevice {
    /** Filler for read buffers, so that a device that leaves bytes unwritten is caught. */
    public static final byte POISON = 0x5A;

    private static final long TIMEOUT_SECONDS = 10;

    private final BlockQueue<?, ?, ?, ?> queue;

    public TestDevice(BlockQueue<?, ?, ?, ?> queue) {
        this.queue = queue;
    }

    public BlockQueue<?, ?, ?, ?> queue() {
        return queue;
    }

    /** Submits one request on hardware context {@code hctx} and returns the status it ended with. */
    public Status submit(int hctx, ReqOp op, int flags, long offset, long length, ByteBuffer data) {
        return submit(hctx, rq -> rq.prepare(op, flags, offset, length, data));
    }

    /** Submits one request that {@code preparer} describes, on {@code hctx}; returns the status it ended with. */
    public Status submit(int hctx, java.util.function.Consumer<Request<?>> preparer) {
        CompletableFuture<Status> done = new CompletableFuture<>();
        AtomicInteger completions = new AtomicInteger();
        Request<?> rq;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
        while ((rq = queue.tryAllocate(hctx, r -> {
                    completions.incrementAndGet();
                    done.complete(r.status());
                }))
                == null) {
            assertThat(System.nanoTime() - deadline)
                    .as("waiting for a free tag")
                    .isNegative();
            Thread.onSpinWait();
        }
        preparer.accept(rq);
        queue.submit(rq, true);
        Status status;
        try {
            status = done.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new AssertionError(rq + " did not complete", e);
        }
        assertThat(completions).as("completions of one request").hasValue(1);
        return status;
    }

    public Status submit(ReqOp op, int flags, long offset, long length, ByteBuffer data) {
        return submit(0, op, flags, offset, length, data);
    }

    /** Reads into a direct buffer filled with {@link #POISON}; returns the status. */
    public Status tryRead(int hctx, long offset, int length) {
        return submit(hctx, ReqOp.READ, 0, offset, length, poisoned(length));
    }

    /** Reads {@code length} bytes, asserting success. */
    public byte[] read(int hctx, long offset, int length) {
        ByteBuffer dst = poisoned(length);
        assertThat(submit(hctx, ReqOp.READ, 0, offset, length, dst))
                .as("READ %s+%s", offset, length)
                .isEqualTo(Status.OK);
        byte[] bytes = new byte[length];
        dst.get(0, bytes);
        return bytes;
    }

    public byte[] read(long offset, int length) {
        return read(0, offset, length);
    }

    /** Writes {@code bytes} from a direct buffer; returns the status. */
    public Status tryWrite(int hctx, int flags, long offset, byte[] bytes) {
        return submit(hctx, ReqOp.WRITE, flags, offset, bytes.length, direct(bytes));
    }

    /** Writes {@code bytes}, asserting success. */
    public void write(int hctx, int flags, long offset, byte[] bytes) {
        assertThat(tryWrite(hctx, flags, offset, bytes))
                .as("WRITE %s+%s", offset, bytes.length)
                .isEqualTo(Status.OK);
    }

    public void write(long offset, byte[] bytes) {
        write(0, 0, offset, bytes);
    }

    /** Submits a request without data (FLUSH, DISCARD, WRITE_ZEROES) on context 0. */
    public Status noData(ReqOp op, int flags, long offset, long length) {
        return submit(0, op, flags, offset, length, null);
    }

    public static ByteBuffer direct(byte[] bytes) {
        ByteBuffer b = ByteBuffer.allocateDirect(bytes.length);
        b.put(0, bytes);
        return b;
    }

    public static ByteBuffer poisoned(int length) {
        ByteBuffer b = ByteBuffer.allocateDirect(length);
        byte[] poison = new byte[length];
        Arrays.fill(poison, POISON);
        b.put(0, poison);
        return b;
    }

    /** Returns {@code length} pseudo-random bytes that never repeat across seeds in practice. */
    public static byte[] random(long seed, int length) {
        byte[] bytes = new byte[length];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }
}
