package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * {@code log}: one line per request (connection, operation, offset, length, flags, status, latency)
 * appended to a file, nbdkit's log filter.
 *
 * <p>Lines are written off the request path: a request's end puts a small record in a bounded queue,
 * and a writer thread formats and writes it ({@link LogSink}, one per file, shared by every export that
 * logs to it, so lines never interleave). When the queue is full (the disk is slower than the I/O it
 * logs) the record is dropped and counted; the file then gets a line saying how many were dropped, and the
 * server's log a warning at most every ten seconds. A slow log never slows the export.
 *
 * <p>Line format (space-separated {@code key=value} after an ISO-8601 time):
 *
 * <pre>
 * 2026-12-04T18:40:01.123456Z export=vm conn=127.0.0.1:41316 hctx=0 tag=12 op=WRITE offset=4096 length=65536 flags=fua status=OK latency_us=87
 * </pre>
 *
 * <p>{@code export} is the export's name ({@code ""} for the default export), so that one file can take
 * the lines of several exports ({@code --filter *=log,file=...}). {@code conn} is what the front end attached to the request: the client's address and port ({@code
 * unix#ID} on a Unix socket), {@code -} if nothing. The latency runs from the filter taking the request to
 * its end.
 */
final class LogFilter<N, Q, T, R> extends Filter<LogFilter.Context<N>, N, Q, T, R> {
    private final Path file;
    private final String description;
    private final String exportField;
    private volatile @Nullable LogSink sink;

    LogFilter(Operations<N, Q, T, R> next, QueueLimits limits, Path file, String export, String description) {
        super(next, limits);
        this.file = file;
        this.exportField = export.isEmpty() ? "\"\"" : export;
        this.description = description;
    }

    /** A context's start times, by tag. */
    static final class Context<N> extends FilterContext<N> {
        long[] started = new long[0];

        Context(N next, int index) {
            super(next, index);
        }

        void start(int tag, long now) {
            if (tag >= started.length) {
                started = Arrays.copyOf(started, Math.max(tag + 1, started.length * 2));
            }
            started[tag] = now;
        }
    }

    @Override
    protected Context<N> newContext(N next, int index) {
        return new Context<>(next, index);
    }

    @Override
    protected void start() throws IOException {
        sink = LogSink.acquire(file);
    }

    @Override
    protected void stop() throws InterruptedException {
        LogSink s = sink;
        sink = null;
        if (s != null) {
            s.release();
        }
    }

    @Override
    public Status queueRq(Context<N> hw, Q queue, Request<R> rq, boolean isLast) {
        hw.start(rq.tag(), System.nanoTime());
        return pass(hw, queue, rq, isLast);
    }

    @Override
    protected void ended(@Nullable Context<N> hw, Request<R> rq, boolean wasPassed) {
        LogSink s = sink;
        if (hw == null || s == null) {
            return;
        }
        long now = System.nanoTime();
        long started = rq.tag() < hw.started.length ? hw.started[rq.tag()] : now;
        Instant at = Instant.now();
        s.offer(new LogSink.Entry(
                at.getEpochSecond() * 1_000_000_000L + at.getNano(),
                exportField,
                rq.attachment(),
                rq.hwIndex(),
                rq.tag(),
                rq.op().ordinal(),
                rq.offset(),
                rq.length(),
                rq.flags(),
                rq.status(),
                now - started));
    }

    @Override
    public String toString() {
        return description;
    }

    /** The {@code log} kind. */
    public static final class Kind extends DescribedFilterKind {
        /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
        public Kind() {
            super(
                    "log",
                    "writes one line per request to a file, off the request path",
                    List.of("file=PATH  the file lines are appended to (required)"),
                    "*=log,file=/var/log/mqnbd-requests.log");
        }

        @Override
        public <N, Q, T, R> Filter<?, N, Q, T, R> create(
                Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context)
                throws IOException {
            String name = settings.get("file")
                    .orElseThrow(() -> new IllegalArgumentException(
                            "filter log: file=PATH is required (expected: e.g. file=/var/log/mqnbd-requests.log)"));
            Path path = Path.of(name);
            if (Files.isDirectory(path)) {
                throw settings.bad("file", name, "a file, not a directory");
            }
            Path parent = path.toAbsolutePath().getParent();
            if (parent != null && !Files.isDirectory(parent)) {
                throw new IOException("filter log: " + path + ": directory " + parent + " does not exist");
            }
            return new LogFilter<>(next, below, path, context.export(), "log(" + settings + ")");
        }
    }
}
