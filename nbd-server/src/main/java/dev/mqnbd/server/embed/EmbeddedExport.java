package dev.mqnbd.server.embed;

import dev.mqnbd.filter.FaultInjectingOperations;
import dev.mqnbd.filter.Filter;
import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.server.handler.Export;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.jspecify.annotations.Nullable;

/**
 * One export of an {@link EmbeddedServer}, seen from the test's side: its contents read and written
 * in-process, without a client, and the fault rules of its stack.
 *
 * <pre>{@code
 * EmbeddedExport disk = server.export("disk");
 * byte[] superblock = disk.read(1024, 1024);             // what a client wrote, straight from the export
 * String sha = disk.sha256();                             // the whole export, to compare with an image file
 * FaultRule eio = disk.faults().add(FaultRule.on(ReqOp.WRITE).range(0, 1 << 20).fail(Status.IO_ERROR));
 * }</pre>
 *
 * <p>Reads and writes take the path a client's requests take below the network: through every filter of
 * the export, the fault rules included. Offsets and lengths must be multiples of the export's {@link
 * #blockSize()} (memory exports take any; {@code direct} files need 4096).
 *
 * <p><b>Threading:</b> every method may be called from any thread, while clients use the export; each
 * call waits for its requests. A call after the server closed fails with {@link IllegalStateException}.
 */
public final class EmbeddedExport {
    private static final long TIMEOUT_SECONDS = 60;
    private static final int CHUNK = 1 << 20;

    private final Export export;
    private final List<Filter<?, ?, ?, ?, ?>> filters;
    private final String stack;

    EmbeddedExport(Export export, List<Filter<?, ?, ?, ?, ?>> filters, @Nullable String stack) {
        this.export = export;
        this.filters = filters;
        this.stack = stack == null ? export.name() : stack;
    }

    /** Returns the export's name; {@code ""} is the default export. */
    public String name() {
        return export.name();
    }

    /** Returns the export's size in bytes. */
    public long size() {
        return export.queue().limits().capacity();
    }

    /** Returns whether clients may only read. */
    public boolean readOnly() {
        return export.queue().limits().readOnly();
    }

    /** Returns the alignment of {@link #read} and {@link #write}: the export's logical block size. */
    public int blockSize() {
        return export.queue().limits().logicalBlockSize();
    }

    /** Returns the export's stack as the log shows it, e.g. {@code faults -> memory:64M}. */
    public String stack() {
        return stack;
    }

    /**
     * Returns the first fault-injection layer of the export's stack: the one {@link Mqnbd#faultInjection}
     * put on top, or an {@code error} or {@code delay} filter. Rules added to it apply from the next
     * request on; see {@link FaultInjectingOperations} and {@link dev.mqnbd.filter.FaultRule}.
     *
     * @throws IllegalStateException if the stack has no fault-injection layer
     */
    public FaultInjectingOperations<?, ?, ?, ?> faults() {
        for (Filter<?, ?, ?, ?, ?> filter : filters) {
            if (filter instanceof FaultInjectingOperations<?, ?, ?, ?> faults) {
                return faults;
            }
        }
        throw new IllegalStateException("export " + Mqnbd.quoted(name()) + " (" + stack
                + ") has no fault-injection layer (expected: Mqnbd.faultInjection(name), or an error or delay filter)");
    }

    /**
     * Reads {@code length} bytes at {@code offset}.
     *
     * @throws IllegalArgumentException if the range is outside the export or not aligned to {@link #blockSize()}
     * @throws IOException if the export answers with an error (an injected fault, a failing backend)
     */
    public byte[] read(long offset, int length) throws IOException {
        checkRange(offset, length);
        byte[] bytes = new byte[length];
        ByteBuffer buffer = ByteBuffer.allocateDirect(Math.min(length, CHUNK));
        for (int done = 0; done < length; ) {
            int n = Math.min(length - done, CHUNK);
            submit(ReqOp.READ, offset + done, n, buffer.clear().limit(n));
            buffer.get(0, bytes, done, n);
            done += n;
        }
        return bytes;
    }

    /**
     * Writes {@code bytes} at {@code offset}, e.g. to give a test a known disk before a client connects.
     *
     * @throws IllegalArgumentException if the range is outside the export or not aligned to {@link #blockSize()}
     * @throws IOException if the export answers with an error (read-only, an injected fault, a failing backend)
     */
    public void write(long offset, byte[] bytes) throws IOException {
        checkRange(offset, bytes.length);
        ByteBuffer buffer = ByteBuffer.allocateDirect(Math.min(bytes.length, CHUNK));
        for (int done = 0; done < bytes.length; ) {
            int n = Math.min(bytes.length - done, CHUNK);
            buffer.clear().put(0, bytes, done, n).limit(n);
            submit(ReqOp.WRITE, offset + done, n, buffer);
            done += n;
        }
    }

    /** Returns the SHA-256 of the whole export, in lower-case hex: compare with {@code sha256sum} of an image. */
    public String sha256() throws IOException {
        return sha256(0, size());
    }

    /**
     * Returns the SHA-256 of {@code length} bytes at {@code offset}, in lower-case hex.
     *
     * @throws IllegalArgumentException if the range is outside the export or not aligned to {@link #blockSize()}
     * @throws IOException if the export answers a read with an error
     */
    public String sha256(long offset, long length) throws IOException {
        checkRange(offset, length);
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java runtime has SHA-256", e);
        }
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(length - done, CHUNK);
            digest.update(read(offset + done, n));
            done += n;
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    private void checkRange(long offset, long length) {
        long block = blockSize();
        if (offset < 0 || length < 0 || offset > size() - length) {
            throw new IllegalArgumentException(
                    "range: " + offset + "+" + length + " (expected: within 0.." + size() + ")");
        }
        if (offset % block != 0 || length % block != 0) {
            throw new IllegalArgumentException(
                    "range: " + offset + "+" + length + " (expected: multiples of the block size " + block + ")");
        }
    }

    /** Submits one request on hardware context 0 and waits for it; fails unless it ends OK. */
    private void submit(ReqOp op, long offset, int length, ByteBuffer data) throws IOException {
        BlockQueue<?, ?, ?, ?> queue = export.queue();
        CompletableFuture<Status> done = new CompletableFuture<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
        Request<?> rq;
        while ((rq = queue.tryAllocate(0, r -> done.complete(r.status()))) == null) {
            // Every tag of context 0 is in use by clients: wait for one to free.
            if (System.nanoTime() - deadline > 0) {
                throw new IOException(
                        op + " " + offset + "+" + length + ": no free request within " + TIMEOUT_SECONDS + " s");
            }
            sleep();
        }
        rq.prepare(op, 0, offset, length, data);
        queue.submit(rq, true);
        Status status;
        try {
            status = done.get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException(op + " " + offset + "+" + length + ": interrupted");
        } catch (ExecutionException | TimeoutException e) {
            throw new IOException(
                    op + " " + offset + "+" + length + " did not complete within " + TIMEOUT_SECONDS + " s", e);
        }
        if (status != Status.OK) {
            throw new IOException(
                    op + " " + offset + "+" + length + " of export " + Mqnbd.quoted(name()) + " failed: " + status);
        }
    }

    private static void sleep() throws InterruptedIOException {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for a free request");
        }
    }
}
