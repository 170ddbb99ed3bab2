package dev.mqnbd.storage.s3;

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
import java.util.List;
import java.util.Objects;

/**
 * The S3 export's blk-mq driver: serves each request on a virtual thread of its own against the
 * export's {@link BlockCache}, and makes FLUSH and FUA wait for the uploads they cover.
 *
 * <p>Typed data: {@code H} is {@link S3HwData} (the context's store handle, staged batch, read-ahead
 * state and counters), {@code Q} and the tag-set data {@code T} are the {@link S3Export} (contexts need
 * it at {@code initHctx}, which only sees {@code T}), {@code R} is {@link S3RequestData}.
 *
 * <p>The path of a request: {@code queueRq}, on the context's event loop, checks it ({@link
 * RequestChecks}) and stages it; {@code isLast} or {@code commitRqs} starts the batch ({@link
 * S3HwData#kick}). Nothing blocks the event loop. On its thread:
 *
 * <ul>
 *   <li>READ: copies from the cached blocks, fetching missing ones (one GET per block however many
 *       requests want it); blocks known not to exist read as zeroes without a GET.
 *   <li>WRITE: copies into the blocks under their locks and marks them dirty ({@link Writing}: a whole
 *       block is replaced, part of a block in memory changed in place, part of a stored block not in
 *       memory kept as a partial block to be completed by one GET when needed; none needs a GET now); the writeback uploads them.
 *       The write ends when the data is in memory, waiting first if {@code s3.max-dirty} is reached.
 *       With FUA it ends only once the blocks it changed are stored.
 *   <li>FLUSH: the FLUSH requests of one batch share one barrier: every block dirty when it starts must
 *       be stored (PUT or DELETE succeeded) before they end. Dirty blocks are the export's, so a FLUSH on
 *       any context covers writes completed on all ({@link Feature#SHARED_FLUSH}).
 *   <li>DISCARD and WRITE_ZEROES: whole blocks become zero (their objects are deleted: by the writeback
 *       for a small range, in the background after a tombstone object recorded the trim for a large one,
 *       see {@link Trims}), the partial ends are zeroed by read-modify-write. {@link ReqFlags#NO_UNMAP} changes nothing: a zero block is never
 *       stored. {@link ReqFlags#FAST_ZERO} ends with {@link Status#NOT_SUPPORTED} when a partial end
 *       would need a block read from the store.
 *   <li>CACHE: fetches the range's blocks into the cache; BLOCK_STATUS: blocks known not to exist are
 *       holes ({@code HOLE | ZERO}), the others data.
 * </ul>
 *
 * <p>Every request ends within {@code s3.timeout} of its batch's start (at most 25 s, under the
 * kernel client's 30 s): a store that does not answer in time, a failed GET or upload, a corrupt block
 * or a lost lease end it with {@link Status#IO_ERROR}. The first failure of each context is logged as a
 * warning, later ones at DEBUG.
 *
 * <p><b>Ownership:</b> the driver owns a request from a {@code queueRq} that returned OK until its thread
 * ends it; it keeps no reference after that.
 *
 * <p><b>Threading:</b> stateless apart from its immutable limits; see {@link S3HwData} for the threads.
 */
public final class S3BlockDevice implements Operations<S3HwData, S3Export, S3Export, S3RequestData> {
    /** Largest READ or WRITE taken in one request: 64 MiB, the most the server advertises (its default is 32 MiB). */
    public static final int MAX_TRANSFER_BYTES = 64 << 20;

    private static final System.Logger LOG = System.getLogger(S3BlockDevice.class.getName());

    private final S3Export export;
    private final QueueLimits limits;
    private final int queueDepth;

    /** Creates the driver of {@code export}, whose contexts hold up to {@code queueDepth} requests each. */
    S3BlockDevice(S3Export export, int queueDepth) {
        this.export = export;
        this.queueDepth = queueDepth;
        // Any byte range can be served (a partial change under the block's lock), so the logical block is
        // one byte; the physical block, the unit that avoids a read-modify-write, is the block object.
        this.limits = new QueueLimits(
                export.capacity(),
                1,
                export.blockSize(),
                MAX_TRANSFER_BYTES,
                export.blockSize(),
                Feature.writableDisk(Feature.CACHE),
                export.readOnly());
    }

    /** Returns the device's limits, to build its {@link dev.mqnbd.mq.BlockQueue} with. */
    public QueueLimits limits() {
        return limits;
    }

    @Override
    public S3HwData initHctx(S3Export tagSetData, int hctxIndex) {
        return new S3HwData(tagSetData, hctxIndex, queueDepth);
    }

    /** Adds the context's counters to the export's totals; the export itself closes last. */
    @Override
    public void exitHctx(S3HwData hw, int hctxIndex) {
        export.addTotals(hw);
    }

    @Override
    public S3RequestData newRequestData() {
        return new S3RequestData();
    }

    /** Checks {@code rq} and stages it; the batch starts at {@code isLast}. */
    @Override
    public Status queueRq(S3HwData hw, S3Export queue, Request<S3RequestData> rq, boolean isLast) {
        Status checked = RequestChecks.check(rq, limits);
        if (checked == Status.OK) {
            hw.stage(rq, queue.settings().readAhead(), queue.blockSize(), queue.cache.blockCount);
        }
        if (isLast) {
            // Also when rq was refused: mq-core counts an isLast request as the batch's end either way.
            hw.kick(this);
        }
        return checked;
    }

    /** The batch ended without an {@code isLast} request: start it. */
    @Override
    public void commitRqs(S3HwData hw, S3Export queue) {
        hw.kick(this);
    }

    /** Serves one request other than FLUSH on its own thread and ends it, if it is still of {@code generation}. */
    void serve(S3HwData hw, Request<S3RequestData> rq, int generation, long deadline) {
        Status status;
        try {
            status = switch (rq.op()) {
                case READ -> {
                    ByteBuffer dst = Objects.requireNonNull(rq.data());
                    export.cache.read(rq.offset(), dst, dst.position(), (int) rq.length(), deadline);
                    if (rq.extents() != null) {
                        // Tell the front end which parts were holes, so it can send them as such.
                        BlockStatus.report(
                                export.cache, rq.offset(), rq.length(), Objects.requireNonNull(rq.extents()));
                    }
                    hw.read();
                    yield Status.OK;
                }
                case WRITE -> {
                    export.checkWritable();
                    boolean fua = rq.hasFlag(ReqFlags.FUA);
                    Barrier.Builder touched = fua ? new Barrier.Builder() : null;
                    ByteBuffer src = Objects.requireNonNull(rq.data());
                    Writing.write(export.cache, rq.offset(), src, src.position(), (int) rq.length(), deadline, touched);
                    if (touched != null) {
                        export.awaitStored(touched, deadline);
                    }
                    hw.wrote(fua);
                    yield Status.OK;
                }
                case DISCARD, WRITE_ZEROES -> {
                    export.checkWritable();
                    if (rq.op() == ReqOp.WRITE_ZEROES
                            && rq.hasFlag(ReqFlags.FAST_ZERO)
                            && !Zeroing.canZeroFast(export.cache, rq.offset(), rq.length())) {
                        // A partial block would have to be read and written back: not fast; nothing changed.
                        yield Status.NOT_SUPPORTED;
                    }
                    Barrier.Builder touched = rq.hasFlag(ReqFlags.FUA) ? new Barrier.Builder() : null;
                    Zeroing.zero(export.cache, export.trims, rq.offset(), rq.length(), deadline, touched);
                    if (touched != null) {
                        export.awaitStored(touched, deadline);
                    }
                    hw.zeroed();
                    yield Status.OK;
                }
                case CACHE -> {
                    long bs = export.blockSize();
                    long end = rq.offset() + rq.length();
                    export.cache.fetch(rq.offset() / bs, (end + bs - 1) / bs, deadline);
                    yield Status.OK;
                }
                case BLOCK_STATUS -> {
                    BlockStatus.report(export.cache, rq.offset(), rq.length(), Objects.requireNonNull(rq.extents()));
                    yield Status.OK;
                }
                case FLUSH -> throw new IllegalStateException("FLUSH is served by batch: " + rq);
            };
        } catch (IOException e) {
            status = Status.IO_ERROR;
            failed(hw, rq, e);
        } catch (RuntimeException e) {
            status = Status.IO_ERROR;
            LOG.log(Level.ERROR, "s3 export " + export.name() + ": failed to serve " + rq, e);
            hw.failed();
        }
        // OWNERSHIP: the request goes back to mq-core, which completes it on the context's event loop.
        rq.end(generation, status);
    }

    /** Serves the FLUSH requests of one batch with one barrier and ends them all. */
    void flush(S3HwData hw, List<Request<S3RequestData>> batch, int[] generations, long deadline) {
        hw.flushed(batch.size());
        Status status = Status.OK;
        if (!limits.readOnly()) {
            try {
                export.flush(deadline);
            } catch (IOException e) {
                status = Status.IO_ERROR;
                failed(hw, batch.getFirst(), e);
            } catch (RuntimeException e) {
                status = Status.IO_ERROR;
                LOG.log(Level.ERROR, "s3 export " + export.name() + ": flush failed", e);
            }
        }
        for (int i = 0; i < batch.size(); i++) {
            // OWNERSHIP: each FLUSH goes back to mq-core here.
            batch.get(i).end(generations[i], status);
        }
    }

    private void failed(S3HwData hw, Request<?> rq, IOException e) {
        if (hw.failed()) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + export.name() + ": " + rq.op() + " at " + rq.offset() + "+"
                            + rq.length() + " failed with EIO on hardware context " + hw.index() + ": " + e.getMessage()
                            + " (later failures of this context are logged at DEBUG)");
        } else {
            LOG.log(Level.DEBUG, () -> "s3 export " + export.name() + ": " + rq + " failed: " + e.getMessage());
        }
    }
}
