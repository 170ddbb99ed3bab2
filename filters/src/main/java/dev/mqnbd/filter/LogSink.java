package dev.mqnbd.filter;

import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * One request-log file and the thread that writes it: every {@link LogFilter} that names the file shares
 * it, so lines of several exports never interleave. Entries wait in a bounded queue; when it is full (the
 * disk is slower than the I/O it logs) they are dropped and counted, the file gets a line saying how many,
 * and the server's log a warning at most every ten seconds.
 *
 * <p><b>Ownership:</b> reference-counted: {@link #acquire} opens the file (or shares it), {@link #release}
 * writes what is queued and closes it after the last user. <b>Threading:</b> {@link #offer} from any thread.
 */
final class LogSink {
    private static final System.Logger LOG = System.getLogger(LogFilter.class.getName());

    /** Records waiting for the writer; at about 120 bytes a line, 64 Ki lines is a few MiB of backlog. */
    static final int QUEUE_CAPACITY = 1 << 16;

    private static final long WARN_EVERY_NANOS = TimeUnit.SECONDS.toNanos(10);

    private static final Entry STOP = new Entry(0, "", null, 0, 0, 0, 0, 0, 0, Status.OK, 0);

    /** Open sinks by absolute, normalised path; guarded by the class. */
    private static final Map<Path, LogSink> OPEN = new HashMap<>();

    private final Path file;
    private final BlockingQueue<Entry> queue = new ArrayBlockingQueue<>(QUEUE_CAPACITY);
    private final AtomicLong dropped = new AtomicLong();
    private final Thread writer;
    private volatile long lastWarning = System.nanoTime() - WARN_EVERY_NANOS;
    private int users;

    /** One request's line, formatted by the writer. */
    record Entry(
            long epochNanos,
            String export,
            @Nullable Object conn,
            int hctx,
            int tag,
            int op,
            long offset,
            long length,
            int flags,
            Status status,
            long latencyNanos) {}

    private LogSink(Path file) throws IOException {
        this.file = file;
        BufferedWriter out = Files.newBufferedWriter(
                file,
                StandardCharsets.UTF_8,
                StandardOpenOption.CREATE,
                StandardOpenOption.APPEND,
                StandardOpenOption.WRITE);
        this.writer = Thread.ofPlatform()
                .daemon()
                .name("mqnbd-log-" + file.getFileName())
                .start(() -> write(out));
    }

    /**
     * Returns the sink of {@code file}, opening it for appending when no filter uses it yet.
     *
     * @throws IOException if the file cannot be opened
     */
    static LogSink acquire(Path file) throws IOException {
        Path key = file.toAbsolutePath().normalize();
        synchronized (LogSink.class) {
            LogSink sink = OPEN.get(key);
            if (sink == null) {
                sink = new LogSink(key);
                OPEN.put(key, sink);
            }
            sink.users++;
            return sink;
        }
    }

    /** One user fewer; after the last, writes every queued line and closes the file. */
    void release() throws InterruptedException {
        synchronized (LogSink.class) {
            if (--users > 0) {
                return;
            }
            OPEN.remove(file);
        }
        // Every request of every user has ended: what is queued is all there is.
        while (!queue.offer(STOP, 100, TimeUnit.MILLISECONDS)) {
            if (!writer.isAlive()) {
                break;
            }
        }
        writer.join(TimeUnit.SECONDS.toMillis(10));
    }

    /** Queues {@code entry}; drops and counts it when the writer is behind. Never blocks. */
    void offer(Entry entry) {
        if (!queue.offer(entry)) {
            long n = dropped.incrementAndGet();
            long now = System.nanoTime();
            if (now - lastWarning >= WARN_EVERY_NANOS) {
                lastWarning = now;
                LOG.log(
                        Level.WARNING,
                        "log filter: " + file + " is behind; request lines are being dropped (" + n + " so far)");
            }
        }
    }

    /** Returns how many lines were dropped because the writer was behind. */
    long dropped() {
        return dropped.get();
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
                }
                batch.clear();
                long drops = dropped.get();
                if (drops != reportedDrops) {
                    out.append(Instant.now().toString())
                            .append(" dropped=")
                            .append(Long.toString(drops - reportedDrops))
                            .append(" (the log fell behind; these requests are not listed)\n");
                    reportedDrops = drops;
                }
                out.flush();
                if (stopping) {
                    return;
                }
            }
        } catch (IOException e) {
            LOG.log(Level.ERROR, "log filter: writing " + file + " failed; no more request lines are written", e);
            drainUntilStopped();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** After a write failure: keep the queue empty until stopped, so requests never wait on it. */
    private void drainUntilStopped() {
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
                .append(" export=")
                .append(e.export())
                .append(" conn=")
                .append(e.conn() == null ? "-" : e.conn().toString())
                .append(" hctx=")
                .append(e.hctx())
                .append(" tag=")
                .append(e.tag())
                .append(" op=")
                .append(ReqOp.values()[e.op()])
                .append(" offset=")
                .append(e.offset())
                .append(" length=")
                .append(e.length())
                .append(" flags=")
                .append(flags(e.flags()))
                .append(" status=")
                .append(e.status())
                .append(" latency_us=")
                .append(e.latencyNanos() / 1000);
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
}
