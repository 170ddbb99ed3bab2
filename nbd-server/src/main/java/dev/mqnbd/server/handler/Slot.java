package dev.mqnbd.server.handler;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Segments;
import dev.mqnbd.server.protocol.NbdCommand;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.ByteBuffer;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * What a connection remembers of one of its requests, indexed by the request's tag: from submit, through
 * the backend, to the reply.
 *
 * <p><b>Ownership:</b> {@link #buffer} (a WRITE payload, a READ reply buffer) belongs to the slot from
 * submit until the reply is encoded or the buffer released ({@link ReplyDispatch}).
 *
 * <p><b>Threading:</b> written on the channel's event loop until submit, by the backend while it owns the
 * request (the extents and segments sinks), and by {@link ReplyDispatch#completed} on the hardware
 * context's thread. A completion on another thread than the channel's sets {@link #completing} last, a
 * volatile write: the event loop reads it before anything else of the slot, in {@link #completionTask} or
 * when its tag comes back (the tag's return also publishes the slot).
 */
final class Slot {
    /** The most runs one BLOCK_STATUS reply or one sparse READ reply carries. */
    static final int MAX_EXTENTS = 512;

    long cookie;

    @Nullable
    NbdCommand command;

    long offset;
    long length;
    int flags;

    @Nullable
    ByteBuf buffer;
    /** The READ bytes this request counts in {@link BackPressure}'s bytes in flight. */
    long readBytes;
    /** The WRITE bytes this request counts in {@link BackPressure}'s bytes in flight. */
    long writeBytes;
    /** The bytes of this request's buffer counted in the server's {@link BufferBudget}. */
    long bufferBytes;
    /** For a split TRIM or WRITE_ZEROES: the mq-core op and flags, where the next piece starts, the end. */
    @Nullable
    ReqOp op;

    int reqFlags;
    long chunkOffset;
    long chunkEnd;
    /** The outcome, recorded at completion: an NBD error code (0 for success) and the request's length. */
    int error;

    long completedLength;
    /** Whether a completion recorded here waits for the channel's event loop. */
    volatile boolean completing;
    /** Runs the completion recorded here on the channel's event loop; allocated once per slot. */
    final Runnable completionTask;

    /** The slot's READ segment sink, created on first use and reused. */
    private @Nullable SegmentSink segments;
    /** The slot's extent sink, created on first use and reused. */
    private @Nullable ExtentList extents;
    /** The sink handed to the current request, or {@code null}. */
    @Nullable
    ExtentList extentsInUse;

    Slot(ReplyDispatch dispatch) {
        this.completionTask = () -> dispatch.completeOnLoop(this);
    }

    void reset(long cookie, NbdCommand command, long offset, int flags) {
        this.cookie = cookie;
        this.command = command;
        this.offset = offset;
        this.flags = flags;
        this.extentsInUse = null;
        this.readBytes = 0;
        this.writeBytes = 0;
        this.bufferBytes = 0;
        this.chunkOffset = 0;
        this.chunkEnd = 0;
    }

    Segments segments(CompositeByteBuf reply) {
        if (segments == null) {
            segments = new SegmentSink();
        }
        segments.reply = reply;
        return segments;
    }

    ExtentList extents(int max) {
        if (extents == null) {
            extents = new ExtentList(MAX_EXTENTS);
        }
        extentsInUse = extents.reset(max);
        return extentsInUse;
    }

    /** Appends a READ_SEGMENTS driver's views to the reply being built, wrapped without a copy. */
    private static final class SegmentSink implements Segments {
        @Nullable
        CompositeByteBuf reply;

        @Override
        public void add(ByteBuffer segment) {
            if (segment.hasRemaining()) {
                // OWNERSHIP: the wrapper only references the driver's memory; releasing it frees nothing.
                Objects.requireNonNull(reply).addComponent(true, Unpooled.wrappedBuffer(segment));
            }
        }
    }
}
