package dev.mqnbd.server.handler;

import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import dev.mqnbd.server.protocol.NbdRequest;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * Turns one validated NBD command into an mq-core {@link Request}: the op, its flags and range, and its
 * buffers, kept in the request's {@link Slot}.
 *
 * <ul>
 *   <li>READ: the reply buffer, with room for the header in front of the data ({@link
 *       NbdReplyEncoder#allocateRead}), which the backend fills in place; or, from {@link
 *       #SEGMENTED_READ_MIN} bytes on backends that offer it, the backend's own page views (READ_SEGMENTS).
 *   <li>WRITE: the payload as it came in (a retained slice), a scatter list of the inbound buffers where
 *       the backend takes one (WRITE_SEGMENTS), else a contiguous pooled copy.
 *   <li>TRIM and WRITE_ZEROES: the first piece of at most {@link TransmissionHandler#MAX_ZERO_CHUNK}
 *       bytes ({@link ZeroChunks}).
 *   <li>BLOCK_STATUS: at most {@link TransmissionHandler#MAX_BLOCK_STATUS_SPAN} bytes from its offset
 *       (proto.md allows a reply that covers less than the request).
 * </ul>
 *
 * <p><b>Ownership:</b> the buffers taken belong to the slot from here until the reply. <b>Threading:</b>
 * the channel's event loop.
 */
final class RequestPreparer {
    /**
     * The smallest READ answered with the backend's own buffers where it offers them (READ_SEGMENTS):
     * below this, copying into one reply buffer costs less than a gather list.
     */
    private static final int SEGMENTED_READ_MIN = 64 << 10;

    private final TransmissionHandler h;
    private final NbdReplyEncoder encoder;
    private final boolean structured;
    private final boolean backendExtents;
    private final boolean writeSegments;
    private final boolean readSegments;

    RequestPreparer(TransmissionHandler h, QueueLimits limits) {
        this.h = h;
        this.encoder = h.encoder;
        this.structured = encoder.mode() != NbdReplyEncoder.Mode.SIMPLE;
        this.backendExtents = limits.has(Feature.BLOCK_STATUS);
        this.writeSegments = limits.has(Feature.WRITE_SEGMENTS);
        this.readSegments = limits.has(Feature.READ_SEGMENTS);
    }

    /**
     * Prepares {@code request} for {@code rq}. Returns false when it could not (no memory for the reply
     * buffer): the request is then given back and {@code rq} answered {@code ENOMEM}. The caller releases
     * {@code rq} either way.
     */
    boolean prepare(Request<?> request, Slot slot, NbdRequest rq) {
        slot.reset(rq.cookie(), Objects.requireNonNull(rq.command()), rq.offset(), rq.flags()); // validated
        try {
            fill(request, slot, rq, h.ctx.alloc());
            // Counted once the request holds them: its buffer stays in memory until it completes. A WRITE
            // payload's room was reserved when it was admitted: the slot takes it over, to give back then.
            long reserved = rq.command() == NbdCommand.WRITE ? rq.takeReservation() : 0;
            h.flow.started(slot.readBytes, slot.writeBytes, slot.bufferBytes - reserved);
            return true;
        } catch (OutOfMemoryError | RuntimeException e) {
            // OWNERSHIP: nothing was submitted: the buffer taken so far and the tag go back here.
            if (slot.buffer != null) {
                slot.buffer.release();
                slot.buffer = null;
            }
            slot.extentsInUse = null;
            h.queue.abandon(request);
            TransmissionHandler.NO_MEMORY.log(
                    Level.WARNING,
                    () -> "export \"" + h.export.name() + "\": cannot prepare " + rq.command() + " of " + rq.length()
                            + " bytes; replying ENOMEM: " + e);
            h.write(encoder.failed(h.ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), NbdError.ENOMEM.code()));
            return false;
        }
    }

    /** Whether a READ of {@code length} bytes takes a reply buffer, rather than views of the backend's memory. */
    boolean takesBuffer(long length) {
        return !(readSegments && length >= SEGMENTED_READ_MIN);
    }

    private void fill(Request<?> request, Slot slot, NbdRequest rq, ByteBufAllocator alloc) {
        int flags = (rq.flags() & NbdConstants.CMD_FLAG_FUA) != 0 ? ReqFlags.FUA : 0;
        long offset = rq.offset();
        long length = rq.length();
        switch (Objects.requireNonNull(rq.command())) {
            case READ -> {
                int len = (int) length;
                if (!takesBuffer(len)) {
                    // The backend hands views of its memory, sent as they are: no copy into a reply buffer.
                    CompositeByteBuf reply = encoder.allocateSegmentedRead(alloc);
                    slot.buffer = reply;
                    request.prepare(ReqOp.READ, flags, offset, length, null);
                    request.readSegments(slot.segments(reply));
                } else {
                    ByteBuf reply = encoder.allocateRead(alloc, len);
                    slot.buffer = reply;
                    slot.bufferBytes = len;
                    request.prepare(ReqOp.READ, flags, offset, length, reply.nioBuffer(encoder.dataIndex(), len));
                }
                if (structured && backendExtents && (rq.flags() & NbdConstants.CMD_FLAG_DF) == 0) {
                    // The backend may tell which parts are holes; they are then sent as OFFSET_HOLE.
                    request.extents(slot.extents(Slot.MAX_EXTENTS));
                }
                slot.readBytes = len;
            }
            case WRITE -> {
                // OWNERSHIP: the slot keeps its own reference to the payload (or to a contiguous pooled copy when
                // the payload spans several inbound buffers), released on completion.
                ByteBuf payload = Objects.requireNonNull(rq.payload());
                int pieces = payload.nioBufferCount();
                if (pieces > 1 && writeSegments) {
                    // A scatter list of the inbound buffers: no copy.
                    ByteBuf owned = payload.retain();
                    slot.buffer = owned;
                    slot.writeBytes = slot.bufferBytes = length;
                    ByteBuffer[] segments = owned.nioBuffers();
                    request.prepare(ReqOp.WRITE, flags, offset, length, null).segments(segments, segments.length);
                    return;
                }
                ByteBuf owned = pieces == 1
                        ? payload.retain()
                        : alloc.directBuffer(payload.readableBytes())
                                .writeBytes(payload, payload.readerIndex(), payload.readableBytes());
                slot.buffer = owned;
                slot.writeBytes = slot.bufferBytes = length;
                ByteBuffer data = owned.nioBuffer();
                request.prepare(ReqOp.WRITE, flags, offset, length, data);
            }
            case FLUSH -> request.prepare(ReqOp.FLUSH, flags, 0, 0, null);
            case TRIM -> ZeroChunks.prepareFirst(request, slot, ReqOp.DISCARD, flags, offset, length);
            case WRITE_ZEROES -> {
                if ((rq.flags() & NbdConstants.CMD_FLAG_NO_HOLE) != 0) {
                    flags |= ReqFlags.NO_UNMAP;
                }
                if ((rq.flags() & NbdConstants.CMD_FLAG_FAST_ZERO) != 0) {
                    flags |= ReqFlags.FAST_ZERO;
                }
                ZeroChunks.prepareFirst(request, slot, ReqOp.WRITE_ZEROES, flags, offset, length);
            }
            case CACHE -> request.prepare(ReqOp.CACHE, flags, offset, length, null);
            case BLOCK_STATUS -> {
                boolean one = (rq.flags() & NbdConstants.CMD_FLAG_REQ_ONE) != 0;
                // The reply may cover less than asked; the client asks again from where it ends.
                long span = Math.min(length, TransmissionHandler.MAX_BLOCK_STATUS_SPAN);
                request.prepare(ReqOp.BLOCK_STATUS, flags, offset, span, null);
                request.extents(slot.extents(one ? 1 : Slot.MAX_EXTENTS));
                slot.length = span;
            }
            default -> throw new IllegalStateException("validated command cannot be submitted: " + rq.command());
        }
    }
}
