package dev.mqnbd.storage.memory;

import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.RequestChecks;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * The memory export's blk-mq driver: serves every request from a {@link MemoryStore}, inline, on the
 * thread that dispatches it (in the server, the connection's event loop), like the kernel's {@code
 * null_blk} in its inline completion mode.
 *
 * <p>Typed data: {@code H} is {@link MemoryHwData} (a context's counters), {@code Q} the export's shared
 * {@link MemoryStore}, no tag-set data ({@code T = Void}) and no per-request data ({@code R = Void}).
 *
 * <p>Semantics per operation:
 *
 * <ul>
 *   <li>READ copies {@code length} bytes into {@link Request#data()} starting at its position, with
 *       absolute puts: the buffer's position and limit are left as they were. Holes read as zeroes. Given
 *       a {@link Request#readSegments() segment sink} instead, it copies nothing: it hands over views of
 *       its pages ({@link dev.mqnbd.mq.Feature#READ_SEGMENTS}).
 *   <li>WRITE copies {@code length} bytes from the request's data segments ({@link Request#data()} or
 *       several, {@link dev.mqnbd.mq.Feature#WRITE_SEGMENTS}) starting at their positions, with absolute
 *       gets: the buffers' positions and limits are left as they were.
 *   <li>FLUSH succeeds at once, and FUA needs nothing: a completed write is in memory, which is as
 *       durable as this export gets. Everything is lost when the server stops.
 *   <li>DISCARD and WRITE_ZEROES zero the range, zeroing partly covered pages in place and releasing
 *       the pages they cover whole. With {@link ReqFlags#NO_UNMAP}, WRITE_ZEROES keeps covered pages
 *       allocated and zeroes them instead; holes in the range stay holes (they read as zeroes, and memory
 *       is never reserved ahead of writes anyway).
 *   <li>A write that needs a page when memory is exhausted ends with {@link Status#NO_SPACE}; the
 *       bytes before that page may have been written.
 * </ul>
 *
 * <p>Before touching the store every request passes {@link RequestChecks#check}: a read-only device
 * refuses writes, discards and zeroing with {@link Status#READ_ONLY}, and a range past the capacity ends
 * with {@link Status#INVALID} (reads) or {@link Status#NO_SPACE} (writes), whatever the front end checked.
 *
 * <p><b>Ownership:</b> the device owns a request from {@code queueRq} until the {@link Request#end} it
 * calls before {@code queueRq} returns; it keeps no reference to the request or its buffer after that.
 *
 * <p><b>Threading:</b> stateless apart from its immutable limits; {@code queueRq} may run on every
 * hardware context at once, since the store is safe for concurrent use.
 */
public final class MemoryBlockDevice implements Operations<MemoryHwData, MemoryStore, Void, Void> {
    /** Largest READ or WRITE taken in one request: 64 MiB, the most the server advertises (its default is 32 MiB). */
    public static final int MAX_TRANSFER_BYTES = 64 << 20;

    private static final System.Logger LOG = System.getLogger(MemoryBlockDevice.class.getName());

    private final QueueLimits limits;

    /**
     * Creates the driver of a memory device of {@code capacity} bytes.
     *
     * @throws IllegalArgumentException if {@code capacity} is negative
     */
    MemoryBlockDevice(long capacity, boolean readOnly) {
        // Memory serves any alignment, so the logical block is one byte (2^0); the physical block is the
        // page, the unit a write allocates and a discard releases.
        this.limits = new QueueLimits(
                capacity,
                1,
                MemoryStore.PAGE_SIZE,
                MAX_TRANSFER_BYTES,
                MemoryStore.PAGE_SIZE,
                // Zeroing releases or clears pages in memory: always fast. Every context shares one store, and
                // memory needs no flush, so a FLUSH anywhere covers writes completed everywhere.
                // Pages are garbage-collected and never reused: READs may send views of them.
                Feature.writableDisk(Feature.CACHE, Feature.WRITE_SEGMENTS, Feature.READ_SEGMENTS),
                readOnly);
    }

    /** Returns the device's limits, to build its {@link dev.mqnbd.mq.BlockQueue} with. */
    public QueueLimits limits() {
        return limits;
    }

    @Override
    public MemoryHwData initHctx(Void tagSetData, int hctxIndex) {
        return new MemoryHwData(hctxIndex);
    }

    @Override
    public Void newRequestData() {
        return null;
    }

    /** Serves {@code rq} and ends it before returning; always returns {@link Status#OK}. */
    @Override
    public Status queueRq(MemoryHwData hw, MemoryStore store, Request<Void> rq, boolean isLast) {
        Status status;
        try {
            status = serve(hw, store, rq);
        } catch (RuntimeException e) {
            // Only a bug gets here; the request still ends exactly once.
            LOG.log(Level.ERROR, "memory device: failed to serve " + rq, e);
            status = Status.IO_ERROR;
        }
        if (status != Status.OK) {
            hw.failed();
        }
        // OWNERSHIP: the request goes back to mq-core here; nothing below touches it.
        rq.end(status);
        return Status.OK;
    }

    private Status serve(MemoryHwData hw, MemoryStore store, Request<Void> rq) {
        Status checked = RequestChecks.check(rq, limits);
        if (checked != Status.OK) {
            return checked;
        }
        long offset = rq.offset();
        long length = rq.length();
        return switch (rq.op()) {
            case READ -> {
                if (rq.readSegments() != null) {
                    store.readSegments(offset, (int) length, rq.readSegments());
                } else {
                    ByteBuffer dst = Objects.requireNonNull(rq.data());
                    store.read(offset, dst, dst.position(), (int) length);
                }
                if (rq.extents() != null) {
                    // Tell the front end which parts were holes, so it can send them as such.
                    store.extents(offset, length, Objects.requireNonNull(rq.extents()));
                }
                hw.read(length);
                yield Status.OK;
            }
            case WRITE -> {
                if (!write(store, offset, rq)) {
                    if (hw.allocationFailed()) {
                        LOG.log(
                                Level.WARNING,
                                "memory device: out of memory for a page; writes that need new"
                                        + " pages fail with NO_SPACE (hardware context " + hw.index() + ", " + store
                                        + ")");
                    }
                    yield Status.NO_SPACE;
                }
                hw.wrote(length);
                yield Status.OK;
            }
            case FLUSH -> {
                hw.flushed();
                yield Status.OK;
            }
            case DISCARD -> {
                store.zero(offset, length, true);
                hw.zeroed();
                yield Status.OK;
            }
            case WRITE_ZEROES -> {
                // FAST_ZERO needs no check: releasing or clearing pages is always faster than writing them.
                store.zero(offset, length, !rq.hasFlag(ReqFlags.NO_UNMAP));
                hw.zeroed();
                yield Status.OK;
            }
            case CACHE -> Status.OK; // everything is in memory already
            case BLOCK_STATUS -> {
                store.extents(offset, length, Objects.requireNonNull(rq.extents()));
                yield Status.OK;
            }
        };
    }

    /**
     * Allocates the pages of the whole write at once, then writes every data segment of {@code rq} in
     * turn; {@code false} when a page could not be allocated.
     */
    private static boolean write(MemoryStore store, long offset, Request<Void> rq) {
        if (!store.allocate(offset, rq.length())) {
            return false;
        }
        for (int i = 0, n = rq.segmentCount(); i < n; i++) {
            ByteBuffer src = rq.segment(i);
            int bytes = src.remaining();
            if (!store.write(offset, src, src.position(), bytes)) {
                return false;
            }
            offset += bytes;
        }
        return true;
    }
}
