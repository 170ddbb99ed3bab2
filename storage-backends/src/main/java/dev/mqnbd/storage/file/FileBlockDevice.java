package dev.mqnbd.storage.file;

import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.RequestChecks;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.EnumSet;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The file export's blk-mq driver: serves requests with positional system calls on a per-context I/O
 * thread, and makes FLUSH and FUA durable through the file's {@link GroupCommit}.
 *
 * <p>Typed data: {@code H} is {@link FileHwData} (the context's descriptor, I/O thread, dirty flag and
 * pending flush list), {@code Q} and the tag-set data {@code T} are the export's {@link FileStore} (the
 * contexts need it at {@code initHctx}, which only sees {@code T}), no per-request data ({@code R =
 * Void}).
 *
 * <p>The path of a request: {@code queueRq}, on the context's event loop, checks it ({@link
 * RequestChecks}), serves a READ whose range the page cache holds at once ({@code preadv2(RWF_NOWAIT)},
 * {@link FileHwData#readCached}), and stages the rest; {@code isLast} or {@code commitRqs} hands the
 * batch to the context's I/O thread, which serves it in order:
 *
 * <ul>
 *   <li>READ: {@code pread} into {@link Request#data()} (positioned at its position; position and limit
 *       are left alone); bytes past the end of a file that shrank read as zeroes.
 *   <li>WRITE: {@code pwrite} of {@link Request#data()}, or one {@code pwritev} of its segments ({@link
 *       Feature#WRITE_SEGMENTS}, without O_DIRECT). With FUA, the request then waits in the group
 *       commit for an {@code fdatasync} that started after the write returned.
 *   <li>FLUSH: waits in the group commit for an {@code fdatasync} that started after every write
 *       completed before it (on any context), or ends at once when no write happened since the last one.
 *   <li>DISCARD: {@code fallocate(PUNCH_HOLE)}; the range reads back as zeroes.
 *   <li>WRITE_ZEROES: {@code fallocate(PUNCH_HOLE)}, or {@code fallocate(ZERO_RANGE)} with {@link
 *       ReqFlags#NO_UNMAP}; both fall back to writing zeroes where refused, except with {@link
 *       ReqFlags#FAST_ZERO}, which then ends with {@link Status#NOT_SUPPORTED}. FUA works as for WRITE.
 *   <li>CACHE: nothing (the page cache fills on the read); BLOCK_STATUS: holes (as {@code HOLE | ZERO})
 *       and data from {@code lseek(SEEK_DATA / SEEK_HOLE)}, all data where the file system cannot tell.
 * </ul>
 *
 * <p>Errors: {@code ENOSPC}, {@code EDQUOT} and {@code EFBIG} end the request with {@link
 * Status#NO_SPACE}, anything else with {@link Status#IO_ERROR}; the first failure of each context is
 * logged as a warning.
 *
 * <p><b>Ownership:</b> the driver owns a request from a {@code queueRq} that returned OK until the I/O
 * thread or the group commit ends it; it keeps no reference after that.
 *
 * <p><b>Threading:</b> stateless apart from its immutable limits; see {@link FileHwData} for the threads.
 */
public final class FileBlockDevice implements Operations<FileHwData, FileStore, FileStore, Void> {
    /** Largest READ or WRITE taken in one request: 64 MiB, the most the server advertises (its default is 32 MiB). */
    public static final int MAX_TRANSFER_BYTES = 64 << 20;

    private static final System.Logger LOG = System.getLogger(FileBlockDevice.class.getName());

    private final QueueLimits limits;
    private final int queueDepth;

    /** Creates the driver of {@code store}, whose contexts hold up to {@code queueDepth} requests each. */
    FileBlockDevice(FileStore store, int queueDepth) {
        this.queueDepth = queueDepth;
        // Without O_DIRECT the page cache serves any byte range, so the logical block is one byte, as in
        // qemu's and nbdkit's file backends; clients that care use the physical (preferred) 4 KiB. With
        // O_DIRECT every transfer must be aligned: 4 KiB suits every current disk and file system.
        int logical = store.direct() ? ContextIo.ALIGN : 1;
        // One file and one group commit behind every context: a FLUSH anywhere covers writes completed
        // everywhere (SHARED_FLUSH, NBD's multi-conn).
        EnumSet<Feature> features = Feature.writableDisk();
        if (store.rotational()) {
            features.add(Feature.ROTATIONAL);
        }
        if (!store.direct()) {
            // O_DIRECT needs every transfer aligned; network buffers are not.
            features.add(Feature.WRITE_SEGMENTS);
        }
        this.limits =
                new QueueLimits(store.capacity(), logical, 4096, MAX_TRANSFER_BYTES, 4096, features, store.readOnly());
    }

    /** Returns the device's limits, to build its {@link dev.mqnbd.mq.BlockQueue} with. */
    public QueueLimits limits() {
        return limits;
    }

    /**
     * Opens the context's own descriptor of the file and starts its I/O thread.
     *
     * @throws IOException if the file cannot be opened again
     */
    @Override
    public FileHwData initHctx(FileStore store, int hctxIndex) throws IOException {
        return new FileHwData(this, store, hctxIndex, queueDepth);
    }

    /** Stops the context's I/O thread, closes its descriptor and adds its counters to the store's totals. */
    @Override
    public void exitHctx(FileHwData hw, int hctxIndex) {
        hw.close();
        store(hw).addTotals(hw);
    }

    private static FileStore store(FileHwData hw) {
        return hw.io.store();
    }

    @Override
    public Void newRequestData() {
        return null;
    }

    /** Checks {@code rq} and stages it for the I/O thread; the batch starts at {@code isLast}. */
    @Override
    public Status queueRq(FileHwData hw, FileStore store, Request<Void> rq, boolean isLast) {
        Status checked = RequestChecks.check(rq, limits);
        if (checked == Status.OK) {
            if (rq.op() == ReqOp.READ && hw.readCached(rq)) {
                // OWNERSHIP: served from the page cache right here; the request goes back to mq-core.
                rq.end(Status.OK);
            } else {
                hw.stage(rq);
            }
        }
        if (isLast) {
            // Also when rq was refused: mq-core counts an isLast request as the batch's end either way.
            hw.kick();
        }
        return checked;
    }

    /** The batch ended without an {@code isLast} request: hand it to the I/O thread. */
    @Override
    public void commitRqs(FileHwData hw, FileStore store) {
        hw.kick();
    }

    /** Serves one request on {@code hw}'s I/O thread; ends it, or hands it to the group commit. */
    void serve(FileHwData hw, Request<?> rq, int generation) {
        Status status;
        try {
            status = switch (rq.op()) {
                case READ -> {
                    hw.io.read(rq.offset(), Objects.requireNonNull(rq.data()), (int) rq.length());
                    hw.read(rq.length());
                    yield Status.OK;
                }
                case WRITE -> {
                    try {
                        ByteBuffer data = rq.data();
                        if (data != null) {
                            hw.io.write(rq.offset(), data, data.remaining());
                        } else {
                            // One pwritev of the network buffers costs less than copying them into one.
                            hw.io.writeSegments(rq.offset(), rq);
                        }
                    } finally {
                        // INVARIANT: set after the pwrite returned, so the next sync to start covers it.
                        hw.writer.markDirty();
                    }
                    hw.wrote(rq.length(), rq.hasFlag(ReqFlags.FUA));
                    yield durable(hw, rq, generation, rq.hasFlag(ReqFlags.FUA));
                }
                case FLUSH -> {
                    hw.flushed();
                    yield durable(hw, rq, generation, !limits.readOnly());
                }
                case DISCARD, WRITE_ZEROES -> {
                    boolean fast = rq.hasFlag(ReqFlags.FAST_ZERO);
                    boolean done;
                    try {
                        done = rq.op() == ReqOp.WRITE_ZEROES && rq.hasFlag(ReqFlags.NO_UNMAP)
                                ? hw.io.zeroAllocated(rq.offset(), rq.length(), fast)
                                : hw.io.punch(rq.offset(), rq.length(), fast);
                    } finally {
                        hw.writer.markDirty();
                    }
                    if (!done) {
                        // FAST_ZERO: zeroes would have to be written; nothing was changed.
                        yield Status.NOT_SUPPORTED;
                    }
                    hw.zeroed();
                    yield durable(hw, rq, generation, rq.hasFlag(ReqFlags.FUA));
                }
                case CACHE -> Status.OK; // advisory; the page cache fills on the read that follows
                case BLOCK_STATUS -> {
                    Extents sink = Objects.requireNonNull(rq.extents());
                    hw.io.extents(
                            rq.offset(),
                            rq.length(),
                            (offset, length, hole) -> sink.add(length, hole ? Extents.HOLE | Extents.ZERO : 0));
                    yield Status.OK;
                }
            };
        } catch (ErrnoException e) {
            status = switch (e.errno()) {
                case LibC.ENOSPC, LibC.EDQUOT, LibC.EFBIG -> Status.NO_SPACE;
                default -> Status.IO_ERROR;
            };
            failed(hw, rq, e);
        } catch (IOException | RuntimeException e) {
            status = Status.IO_ERROR;
            failed(hw, rq, e);
        }
        if (status != null) {
            // OWNERSHIP: the request goes back to mq-core, which completes it on the context's event loop.
            rq.end(generation, status);
        }
    }

    /** Returns null after handing {@code rq} to the group commit when it must be durable, else OK. */
    private static @Nullable Status durable(FileHwData hw, Request<?> rq, int generation, boolean mustSync) {
        if (!mustSync) {
            return Status.OK;
        }
        // OWNERSHIP: the group commit ends rq once a sync covers it.
        hw.durable.add(rq, generation);
        return null;
    }

    private static void failed(FileHwData hw, Request<?> rq, Exception e) {
        if (hw.failed()) {
            LOG.log(
                    Level.WARNING,
                    "file export: " + rq + " failed on hardware context " + hw.index()
                            + " (later failures are logged at DEBUG)",
                    e);
        } else {
            LOG.log(Level.DEBUG, "file export: " + rq + " failed: " + e.getMessage());
        }
    }
}
