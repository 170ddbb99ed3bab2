package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.io.BufferedWriter;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * {@code log}: one line per request (connection, operation, offset, length, flags, status, latency)
 * appended to a file, nbdkit's log filter.
 *
 * <p>Lines are written off the request path: a request's end puts a small record in a bounded queue,
 * and a writer thread formats and writes it. When the queue is full (the disk is slower than the I/O it
 * logs) the record is dropped and counted; the file then gets a line saying how many were dropped, and the
 * server's log a warning at most every ten seconds. A slow log never slows the export.
 *
 * <p>Line format (space-separated {@code key=value} after an ISO-8601 time):
 *
 * <pre>
 * 2026-12-04T18:40:01.123456Z conn=3 hctx=0 tag=12 op=WRITE offset=4096 length=65536 flags=fua status=OK latency_us=87
 * </pre>
 *
 * <p>{@code conn} is what the front end attached to the request (the connection's number), {@code -} if
 * nothing. The latency runs from the filter taking the request to its end.
 */
final class LogFilter<N, Q, T, R> extends Filter<LogFilter.Context<N>, N, Q, T, R> {
    private static final System.Logger LOG = System.getLogger(LogFilter.class.getName());

    /** Records waiting for the writer; at about 100 bytes a line, 64 Ki lines is a few MiB of backlog. */
    static final int QUEUE_CAPACITY = 1 << 16;

    private static final long WARN_EVERY_NANOS = TimeUnit.SECONDS.toNanos(10);

    private static final Entry STOP = new Entry(0, null, 0, 0, 0, 0, 0, 0, null, 0);

    private final Path file;
    private final String description;
    private final String export;
    private final BlockingQueue<Entry> queue;
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong written = new AtomicLong();
    private volatile long lastWarning = System.nanoTime() - WARN_EVERY_NANOS;
    private @Nullable Thread writer;

    LogFilter(Operations<N, Q, T, R> next, QueueLimits limits, Path file, int capacity, String export,
            String description) {
        super(next, limits);
        this.file = file;
        this.export = export;
        this.description = description;
        this.queue = new ArrayBlockingQueue<>(capacity);
    }

    /** One request's line, formatted by the writer. */
    record Entry(long epochNanos, @Nullable Object conn, int hctx, int tag, int op, long offset, long length, int flags,
            @Nullable Status status, long latencyNanos) {}

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
        BufferedWriter out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND, StandardOpenOption.WRITE);
        queue.clear();
        writer = Thread.ofPlatform().daemon().name("mqnbd-log-" + (export.isEmpty() ? "default" : export))
                .start(() -> write(out));
    }

    @Override
    protected void stop() throws InterruptedException {
        Thread w = writer;
        if (w == null) {
            return;
        }
        // Every request has ended (contexts are torn down after the last): what is queued is all there is.
        while (!queue.offer(STOP, 100, TimeUnit.MILLISECONDS)) {
            if (!w.isAlive()) {
                break;
            }
        }
        w.join(TimeUnit.SECONDS.toMillis(10));
        writer = null;
    }

    @Override
    public Status queueRq(Context<N> hw, Q queue, Request<R> rq, boolean isLast) {
        hw.start(rq.tag(), System.nanoTime());
        return pass(hw, queue, rq, isLast);
    }

    @Override
    protected void ended(@Nullable Context<N> hw, Request<R> rq, boolean wasPassed) {
        if (hw == null) {
            return;
        }
        long now = System.nanoTime();
        long started = rq.tag() < hw.started.length ? hw.started[rq.tag()] : now;
        Instant at = Instant.now();
        Entry entry = new Entry(at.getEpochSecond() * 1_000_000_000L + at.getNano(), rq.attachment(), rq.hwIndex(),
                rq.tag(), rq.op().ordinal(), rq.offset(), rq.length(), rq.flags(), rq.status(), now - started);
        if (!queue.offer(entry)) {
            dropped.incrementAndGet();
            if (now - lastWarning >= WARN_EVERY_NANOS) {
                lastWarning = now;
                LOG.log(Level.WARNING, "log filter of export \"" + export + "\": " + file
                        + " is behind; request lines are being dropped (" + dropped.get() + " so far)");
            }
        }
    }

    /** The writer thread: formats and writes entries until told to stop. */
    private void write(BufferedWriter out) {
        List<Entry> batch = new ArrayList<>(1024);
        StringBuilder line = new StringBuilder(160);
        long reportedDrops = 0;
        try (out) {
            while (true) {
                Entry first = queue.poll(1, TimeUnit.SECONDS);
                if (first != null) {
                    batch.add(first);
                    queue.drainTo(batch, 4095);
                }
                boolean stopping = false;
                for (Entry e : batch) {
                    if (e == STOP) {
                        stopping = true;
                        continue;
                    }
                    line.setLength(0);
                    format(e, line);
                    out.append(line).append('\n');
                    written.incrementAndGet();
                }
                batch.clear();
                long drops = dropped.get();
                if (drops != reportedDrops) {
                    out.append(Instant.now().toString()).append(" dropped=").append(Long.toString(drops - reportedDrops))
                            .append(" (the log fell behind; these requests are not listed)\n");
                    reportedDrops = drops;
                }
                out.flush();
                if (stopping) {
                    return;
                }
            }
        } catch (IOException e) {
            LOG.log(Level.ERROR, "log filter of export \"" + export + "\": writing " + file
                    + " failed; no more request lines are written", e);
            drainForever();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** After a write failure: keep the queue empty until stopped, so requests never wait on it. */
    private void drainForever() {
        try {
            while (queue.take() != STOP) {
                dropped.incrementAndGet();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void format(Entry e, StringBuilder sb) {
        sb.append(Instant.ofEpochSecond(0, e.epochNanos()))
                .append(" conn=").append(e.conn() == null ? "-" : e.conn().toString())
                .append(" hctx=").append(e.hctx())
                .append(" tag=").append(e.tag())
                .append(" op=").append(ReqOp.values()[e.op()])
                .append(" offset=").append(e.offset())
                .append(" length=").append(e.length())
                .append(" flags=").append(flags(e.flags()))
                .append(" status=").append(e.status())
                .append(" latency_us=").append(e.latencyNanos() / 1000);
    }

    private static String flags(int flags) {
        if (flags == 0) {
            return "-";
        }
        StringBuilder sb = new StringBuilder();
        if ((flags & ReqFlags.FUA) != 0) {
            sb.append("fua");
        }
        if ((flags & ReqFlags.NO_UNMAP) != 0) {
            sb.append(sb.isEmpty() ? "" : "|").append("no_unmap");
        }
        if ((flags & ReqFlags.FAST_ZERO) != 0) {
            sb.append(sb.isEmpty() ? "" : "|").append("fast_zero");
        }
        return sb.toString();
    }

    /** Returns how many lines were dropped because the writer was behind. */
    long dropped() {
        return dropped.get();
    }

    @Override
    public String toString() {
        return description;
    }

    /** The {@code log} kind. */
    public static final class Kind implements FilterKind {
        /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
        public Kind() {}

        @Override
        public String name() {
            return "log";
        }

        @Override
        public String summary() {
            return "writes one line per request to a file, off the request path";
        }

        @Override
        public List<String> keys() {
            return List.of("file=PATH  the file lines are appended to (required)");
        }

        @Override
        public String example() {
            return "*=log,file=/var/log/mqnbd-requests.log";
        }

        @Override
        public <N, Q, T, R> Filter<?, N, Q, T, R> create(Operations<N, Q, T, R> next, QueueLimits below,
                FilterSettings settings, StackContext context) throws IOException {
            String name = settings.get("file").orElseThrow(() -> new IllegalArgumentException(
                    "filter log: file=PATH is required (expected: e.g. file=/var/log/mqnbd-requests.log)"));
            Path path = Path.of(name);
            if (Files.isDirectory(path)) {
                throw settings.bad("file", name, "a file, not a directory");
            }
            Path parent = path.toAbsolutePath().getParent();
            if (parent != null && !Files.isDirectory(parent)) {
                throw new IOException("filter log: " + path + ": directory " + parent + " does not exist");
            }
            return new LogFilter<>(next, below, path, QUEUE_CAPACITY, context.export(), "log(" + settings + ")");
        }
    }
}
