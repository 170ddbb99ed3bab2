package dev.mqnbd.storage.file;

import dev.mqnbd.mq.Request;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;

/**
 * The per-hardware-context data {@code H} of {@link FileBlockDevice}: the context's own descriptor of
 * the file, its I/O thread, the requests staged for that thread, its dirty flag and its pending flush
 * list (its {@link GroupCommit.Writer}), and its counters.
 *
 * <p><b>The hand-off.</b> {@code queueRq} runs on the context's event loop and only stages a request
 * ({@link #stage}); at the end of the batch ({@code isLast} or {@code commitRqs}) {@link #kick} moves the
 * whole batch to the I/O thread under this context's own lock, once per batch. The I/O thread serves
 * the batch in order, then hands the batch's FLUSH and FUA requests to the group commit in one call.
 * Nothing on this path takes a lock shared with another context.
 *
 * <p><b>Ownership:</b> created by {@code initHctx}; the hardware context owns it, and with it the
 * descriptor, the thread and the bounce buffer, until {@code exitHctx} calls {@link #close}. A staged
 * request belongs to the driver until the I/O thread or the group commit ends it.
 *
 * <p><b>Threading:</b> {@link #stage} and {@link #kick} on the context's executor; the serving on the
 * I/O thread; the getters from anywhere, slightly stale.
 */
public final class FileHwData implements AutoCloseable {
    private final int index;
    private final FileBlockDevice device;
    private final int fd;
    private final LibC libc;
    private final Arena arena;
    private final Thread thread;
    final ContextIo io;
    final GroupCommit<Request<?>>.Writer writer;

    /** FLUSH and FUA requests of the batch being served, handed to the group commit after it. I/O thread only. */
    final Held<Request<?>> durable;

    /** Requests of the batch the event loop is building. Executor only. */
    private final Held<Request<?>> staged;

    private final Object lock = new Object();
    // Guarded by lock.
    private Held<Request<?>> incoming;
    private boolean sleeping;
    /**
     * Whether the I/O thread waits with nothing to do: set by it just before it sleeps on an empty queue,
     * cleared by {@link #kick}. Read without the lock, as a hint only.
     */
    private volatile boolean ioIdle;

    private boolean closing;

    /** The batch the I/O thread is serving. I/O thread only. */
    private Held<Request<?>> working;

    // The event loop's own libc state and iovec, for reads served from the page cache (executor only).
    private final LibC cachedLibc;
    private final MemorySegment cachedIov;
    private boolean cachedReadsOff;

    // Single writer (the executor).
    private volatile long cachedReads;
    private volatile long cachedBytes;

    // Single writer (the I/O thread).
    private volatile long reads;
    private volatile long writes;
    private volatile long fuaWrites;
    private volatile long bytesRead;
    private volatile long bytesWritten;
    private volatile long flushes;
    private volatile long zeroings;
    private volatile long errors;

    /**
     * Opens the context's descriptor and starts its I/O thread.
     *
     * @throws IOException if the file cannot be opened again
     */
    @SuppressWarnings("MustBeClosedChecker") // the arena lives as long as this context: close() closes it
    FileHwData(FileBlockDevice device, FileStore store, int index, int depth) throws IOException {
        this.index = index;
        this.device = device;
        this.arena = Arena.ofShared();
        try {
            this.libc = new LibC(arena);
            this.fd = store.openContextFd(libc);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
        this.io = new ContextIo(
                store,
                fd,
                libc,
                arena.allocate(ContextIo.CHUNK, ContextIo.ALIGN),
                arena.allocate(16L * ContextIo.IOV_MAX, 8));
        this.cachedLibc = new LibC(arena);
        this.cachedIov = arena.allocate(16, 8);
        // O_DIRECT bypasses the page cache: there is nothing to serve without waiting.
        this.cachedReadsOff = store.direct();
        this.writer = store.groupCommit().newWriter();
        this.durable = new Held<>(depth);
        this.staged = new Held<>(depth);
        this.incoming = new Held<>(depth);
        this.working = new Held<>(depth);
        this.thread = new Thread(this::run, "mqnbd-file-io-" + store.name() + "-" + index);
        thread.setDaemon(true);
        thread.start();
    }

    /** Returns the index of the hardware context. */
    public int index() {
        return index;
    }

    /** Returns the number of READ requests served, from the page cache or by the I/O thread. */
    public long reads() {
        return reads + cachedReads;
    }

    /** Returns the number of READ requests served from the page cache on the executor, without a hand-off. */
    public long cachedReads() {
        return cachedReads;
    }

    /** Returns the number of WRITE requests served, FUA ones included. */
    public long writes() {
        return writes;
    }

    /** Returns the number of WRITE requests with FUA. */
    public long fuaWrites() {
        return fuaWrites;
    }

    /** Returns the bytes read. */
    public long bytesRead() {
        return bytesRead + cachedBytes;
    }

    /** Returns the bytes written. */
    public long bytesWritten() {
        return bytesWritten;
    }

    /** Returns the number of FLUSH requests taken. */
    public long flushes() {
        return flushes;
    }

    /** Returns the number of DISCARD and WRITE_ZEROES requests served. */
    public long zeroings() {
        return zeroings;
    }

    /** Returns the number of requests that ended with an error. */
    public long errors() {
        return errors;
    }

    /**
     * Serves a READ on the calling thread (the context's executor) if the page cache holds all of it and
     * the I/O thread has nothing to do: {@code preadv2(RWF_NOWAIT)} copies what is cached and never waits
     * for the disk. A READ served here skips the two thread hand-offs of the I/O thread, which are most of
     * a cached read's latency at low queue depth.
     *
     * <p>A READ may thus overtake a WRITE staged before it in the same batch; both are in flight together,
     * and NBD leaves such requests unordered (a client that needs the write's data waits for its reply).
     *
     * @return {@code true} when the whole range was read into {@link Request#data()}; {@code false} when
     *     the I/O thread must serve it (part not cached, end of file, an error, or no direct buffer)
     */
    boolean readCached(Request<?> rq) {
        ByteBuffer dst = rq.data();
        if (cachedReadsOff || dst == null || !dst.isDirect() || !staged.isEmpty() || !ioIdle) {
            // With a batch being built or the I/O thread busy, the I/O thread's copies run in parallel with
            // this thread's network work: at depth, handing off is faster; alone, serving here is.
            return false;
        }
        long length = rq.length();
        long address = MemorySegment.ofBuffer(dst).address();
        long done = 0;
        while (done < length) {
            cachedIov.set(ValueLayout.JAVA_LONG, 0, address + done);
            cachedIov.set(ValueLayout.JAVA_LONG, 8, length - done);
            long n = cachedLibc.preadv2(fd, cachedIov, 1, rq.offset() + done, LibC.RWF_NOWAIT);
            if (n > 0) {
                done += n;
                continue;
            }
            if (n < 0) {
                int errno = cachedLibc.errno();
                if (errno == LibC.EINTR) {
                    continue;
                }
                if (errno == LibC.ENOSYS || errno == LibC.EOPNOTSUPP || errno == LibC.EINVAL) {
                    cachedReadsOff = true; // no preadv2 or no RWF_NOWAIT here: the I/O thread serves every read
                }
            }
            return false; // EAGAIN (not cached), EOF (the file shrank) or an error the I/O thread reports
        }
        cachedReads++;
        cachedBytes += length;
        return true;
    }

    /** Returns whether the I/O thread waits with nothing to do (a hint; for tests). */
    boolean ioIdle() {
        return ioIdle;
    }

    /** Adds {@code rq} to the batch being built. */
    void stage(Request<?> rq) {
        // OWNERSHIP: the driver owns rq until the I/O thread or the group commit ends it.
        staged.add(rq, rq.generation());
    }

    /** Hands the staged batch to the I/O thread; cheap when nothing is staged. */
    void kick() {
        if (staged.isEmpty()) {
            return;
        }
        synchronized (lock) {
            staged.drainTo(incoming);
            ioIdle = false;
            if (sleeping) {
                lock.notify();
            }
        }
    }

    private void run() {
        for (; ; ) {
            synchronized (lock) {
                while (incoming.isEmpty() && !closing) {
                    ioIdle = true;
                    sleeping = true;
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        // Only close() stops the thread: staged requests must never be dropped.
                    } finally {
                        sleeping = false;
                    }
                }
                if (incoming.isEmpty()) {
                    return;
                }
                Held<Request<?>> swap = working;
                working = incoming;
                incoming = swap;
            }
            while (!working.isEmpty()) {
                Request<?> rq = working.first();
                int generation = working.firstGeneration();
                working.removeFirst();
                device.serve(this, rq, generation);
            }
            if (!durable.isEmpty()) {
                writer.commit(durable);
            }
        }
    }

    void read(long bytes) {
        reads++;
        bytesRead += bytes;
    }

    void wrote(long bytes, boolean fua) {
        writes++;
        bytesWritten += bytes;
        if (fua) {
            fuaWrites++;
        }
    }

    void flushed() {
        flushes++;
    }

    void zeroed() {
        zeroings++;
    }

    /** Counts a failed request; returns whether it is the context's first, worth a warning. */
    boolean failed() {
        return errors++ == 0;
    }

    /** Stops the I/O thread once its queue is empty, then closes the descriptor and frees the bounce buffer. */
    @Override
    public void close() {
        synchronized (lock) {
            closing = true;
            lock.notify();
        }
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        libc.close(fd);
        arena.close();
    }

    @Override
    public String toString() {
        return "FileHwData[" + index + ": reads=" + reads() + " (cached " + cachedReads + "), writes=" + writes
                + ", fua=" + fuaWrites + ", flushes=" + flushes + ", zeroings=" + zeroings + ", errors=" + errors + "]";
    }
}
