package dev.mqnbd.storage.file;

import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Histogram;
import dev.mqnbd.storage.Sizes;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.concurrent.atomic.LongAdder;
import org.jspecify.annotations.Nullable;

/**
 * One open file export: the image file or block device, held open and locked, with what every
 * hardware context shares: its capacity, what the file system supports, the {@link GroupCommit} that
 * makes FLUSH and FUA durable, and the export's totals. It is the per-queue data {@code Q} and the
 * tag-set data {@code T} of {@link FileBlockDevice}. {@link FileOpener} opens it.
 *
 * <p><b>Ownership:</b> the export's {@link dev.mqnbd.mq.BlockQueue} owns the store and closes it last,
 * after every context's descriptor: the close makes the last writes durable, stops the syncer, logs the
 * totals and closes the locked descriptor, which releases the lock.
 *
 * <p><b>Threading:</b> safe for use from every hardware context; nothing here is locked on the read and
 * write path.
 */
public final class FileStore implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(FileStore.class.getName());

    private final String name;
    private final Path path;
    private final int fd;
    private final int openFlags;
    private final long capacity;
    private final boolean readOnly;
    private final boolean direct;
    private final boolean blockDevice;
    private final boolean rotational;
    private final GroupCommit<Request<?>> groupCommit;
    private volatile boolean punchSupported = true;
    private volatile boolean zeroRangeSupported = true;
    private final LongAdder punchHoles = new LongAdder();
    private final LongAdder zeroRanges = new LongAdder();
    private final LongAdder zeroesWritten = new LongAdder();

    // Totals of the contexts that have exited; guarded by this.
    private long reads;
    private long writes;
    private long fuaWrites;
    private long flushes;
    private long zeroings;
    private long errors;
    private boolean closed;

    FileStore(
            String name,
            Path path,
            int fd,
            int openFlags,
            long capacity,
            boolean readOnly,
            boolean direct,
            boolean blockDevice,
            boolean rotational,
            GroupCommit.@Nullable SyncAction syncOverride) {
        this.name = name;
        this.path = path;
        this.fd = fd;
        this.openFlags = openFlags;
        this.capacity = capacity;
        this.readOnly = readOnly;
        this.direct = direct;
        this.blockDevice = blockDevice;
        this.rotational = rotational;
        GroupCommit.SyncAction sync = syncOverride != null ? syncOverride : this::fdatasync;
        this.groupCommit = new GroupCommit<>(
                name, sync, (rq, generation, durable) -> rq.end(generation, durable ? Status.OK : Status.IO_ERROR));
    }

    /** Returns the export's name, used in logs and thread names. */
    public String name() {
        return name;
    }

    /** Returns the file or block device served. */
    public Path path() {
        return path;
    }

    /** Returns the size in bytes: the file's size, or the block device's, when it was opened. */
    public long capacity() {
        return capacity;
    }

    /** Returns whether the file was opened read-only (asked for, or because it is not writable). */
    public boolean readOnly() {
        return readOnly;
    }

    /** Returns whether the file was opened with {@code O_DIRECT}. */
    public boolean direct() {
        return direct;
    }

    /** Returns whether the path is a block device rather than a regular file. */
    public boolean blockDevice() {
        return blockDevice;
    }

    /** Returns whether the underlying disk reports itself as rotational. */
    public boolean rotational() {
        return rotational;
    }

    /** Returns the number of {@code fdatasync} calls made so far (by the group commit and on close). */
    public long fdatasyncCalls() {
        return groupCommit.syncs();
    }

    /**
     * Returns the sizes of the group commit's batches: per {@code fdatasync} the syncer made, the number of
     * FLUSH and FUA requests it covered.
     */
    public Histogram fdatasyncBatchSizes() {
        return groupCommit.batchSizes();
    }

    /** Returns the number of {@code fallocate(PUNCH_HOLE)} calls that succeeded (DISCARD, WRITE_ZEROES). */
    public long punchHoleCalls() {
        return punchHoles.sum();
    }

    /** Returns the number of {@code fallocate(ZERO_RANGE)} calls that succeeded (WRITE_ZEROES with NO_HOLE). */
    public long zeroRangeCalls() {
        return zeroRanges.sum();
    }

    /** Returns the bytes of zeroes written where the file system refused {@code fallocate}. */
    public long zeroesWrittenBytes() {
        return zeroesWritten.sum();
    }

    /**
     * Reports the data and hole runs of {@code [offset, offset + length)} to {@code out}, in order, from
     * {@code lseek(SEEK_DATA / SEEK_HOLE)}; the range is clipped to the capacity. Where the file system
     * cannot tell (it refuses SEEK_DATA), the whole range is reported as data, which is always safe.
     *
     * @throws IOException if {@code lseek} fails otherwise
     * @throws IllegalArgumentException if the range is negative
     */
    public void extents(long offset, long length, ExtentConsumer out) throws IOException {
        if (offset < 0 || length < 0) {
            throw new IllegalArgumentException("range: " + offset + "+" + length + " (expected: >= 0)");
        }
        try (Arena arena = Arena.ofConfined()) {
            SeekExtents.report(new LibC(arena), fd, path, offset, Math.min(capacity, offset + length), out);
        }
    }

    GroupCommit<Request<?>> groupCommit() {
        return groupCommit;
    }

    boolean punchSupported() {
        return punchSupported;
    }

    boolean zeroRangeSupported() {
        return zeroRangeSupported;
    }

    /** Counts a {@code fallocate} call in {@code mode} that succeeded. */
    void fallocated(int mode) {
        ((mode & LibC.FALLOC_FL_PUNCH_HOLE) != 0 ? punchHoles : zeroRanges).increment();
    }

    /** Counts {@code bytes} of zeroes written instead of a {@code fallocate}. */
    void wroteZeroes(long bytes) {
        zeroesWritten.add(bytes);
    }

    /** Records that {@code fallocate} mode {@code mode} is not supported here; logs it once. */
    void unsupported(int mode, int errno) {
        boolean punch = (mode & LibC.FALLOC_FL_PUNCH_HOLE) != 0;
        boolean first = punch ? punchSupported : zeroRangeSupported;
        if (punch) {
            punchSupported = false;
        } else {
            zeroRangeSupported = false;
        }
        if (first) {
            LOG.log(
                    Level.INFO,
                    "file export " + name + ": " + path + " refuses fallocate("
                            + (punch ? "PUNCH_HOLE" : "ZERO_RANGE") + "): "
                            + LibC.describe("", errno).substring(2)
                            + "; writing zeroes instead");
        }
    }

    /** Opens another descriptor of the same open file for a hardware context. */
    int openContextFd(LibC libc) throws IOException {
        // /proc/self/fd/N reopens the very inode we locked, even if the path was renamed since.
        int cfd = libc.open("/proc/self/fd/" + fd, openFlags, 0);
        if (cfd < 0) {
            cfd = libc.open(path.toString(), openFlags, 0);
        }
        if (cfd < 0) {
            throw new ErrnoException("open " + path, libc.errno());
        }
        return cfd;
    }

    /** Adds an exiting context's counters to the export's totals. */
    synchronized void addTotals(FileHwData hw) {
        reads += hw.reads();
        writes += hw.writes();
        fuaWrites += hw.fuaWrites();
        flushes += hw.flushes();
        zeroings += hw.zeroings();
        errors += hw.errors();
    }

    private void fdatasync() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            LibC libc = new LibC(arena);
            while (libc.fdatasync(fd) != 0) {
                if (libc.errno() != LibC.EINTR) {
                    throw new ErrnoException("fdatasync " + path, libc.errno());
                }
            }
        }
    }

    /**
     * Makes the last writes durable, stops the syncer, logs the totals ({@code file export NAME: N
     * writes (F with FUA), R reads, L flushes, Z trims and zeroings, S fdatasync calls}) and closes the
     * file, releasing its lock. A second call does nothing.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (!readOnly && !groupCommit.syncIfDirty()) {
            LOG.log(Level.ERROR, "file export " + name + ": the last writes to " + path + " may not be durable");
        }
        groupCommit.close();
        LOG.log(
                Level.INFO,
                "file export " + name + ": " + writes + " writes (" + fuaWrites + " with FUA), " + reads
                        + " reads, " + flushes + " flushes, " + zeroings + " trims and zeroings, " + errors
                        + " errors, "
                        + groupCommit.syncs() + " fdatasync calls");
        try (Arena arena = Arena.ofConfined()) {
            new LibC(arena).close(fd);
        }
    }

    @Override
    public String toString() {
        return "FileStore[" + name + ": " + path + ", " + Sizes.format(capacity) + (readOnly ? ", read-only" : "")
                + (direct ? ", O_DIRECT" : "") + "]";
    }
}
