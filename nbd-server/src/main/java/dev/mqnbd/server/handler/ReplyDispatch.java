package dev.mqnbd.server.handler;

import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.EventExecutor;
import java.lang.System.Logger.Level;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Turns one connection's completed requests into replies: records the outcome in the request's {@link
 * Slot}, moves to the channel's event loop, encodes the reply ({@link NbdReplyEncoder}) and writes it.
 *
 * <p><b>Threading:</b> mq-core runs {@link #completed} on the hardware context's executor. That is the
 * channel's event loop when the export has a hardware context per event loop; with fewer contexts than
 * loops, a connection on loop {@code i} is served by context {@code i mod n}, which runs on another loop.
 * {@link #completed} then only records the outcome in the slot and hands the slot's own preallocated
 * {@link Slot#completionTask} to the channel's loop: nothing is allocated per request, and the reply is
 * encoded and written on the channel's loop, with its allocator's thread cache, like every other reply.
 * The tag frees when {@link #completed} returns, so the connection may take it again before that task
 * runs; it then completes the recorded outcome first ({@link #claim}).
 */
final class ReplyDispatch implements RequestCompletion {
    private final TransmissionHandler h;

    ReplyDispatch(TransmissionHandler h) {
        this.h = h;
    }

    /** Runs on the hardware context's executor, once per request; the tag frees when it returns. */
    @Override
    public void completed(Request<?> request) {
        Slot slot = h.slot(request);
        slot.error = NbdErrors.code(request.status(), slot.command);
        slot.completedLength = request.length();
        EventExecutor loop = h.ctx.executor();
        if (loop.inEventLoop()) {
            complete(slot);
            return;
        }
        // ORDER: the volatile write comes last; whoever reads it set sees the outcome and the slot's buffers.
        slot.completing = true;
        loop.execute(slot.completionTask);
    }

    /** {@link Slot#completionTask}: completes what the slot recorded, unless {@link #claim} already did. */
    void completeOnLoop(Slot slot) {
        if (slot.completing) {
            slot.completing = false;
            complete(slot);
        }
    }

    /**
     * Returns the slot of a tag the connection just took, after completing the outcome of its previous
     * request if that still waits for {@link Slot#completionTask}. On the channel's event loop.
     */
    Slot claim(Request<?> request) {
        Slot slot = h.newSlot(request);
        completeOnLoop(slot);
        return slot;
    }

    /** Answers a completed request, or goes on with the next piece of a split TRIM or WRITE_ZEROES. */
    private void complete(Slot slot) {
        int error = slot.error;
        long readBytes = slot.readBytes;
        long writeBytes = slot.writeBytes;
        long bufferBytes = slot.bufferBytes;
        if (error == 0 && slot.chunkOffset < slot.chunkEnd) {
            // A split TRIM or WRITE_ZEROES with more to do: no reply yet.
            h.chunks.scheduleNext(slot);
            return;
        }
        ByteBuf reply;
        try {
            reply = reply(slot, error, (int) slot.completedLength);
        } catch (OutOfMemoryError | RuntimeException e) {
            // The reply cannot be framed: this connection cannot go on in sync, so it closes.
            TransmissionHandler.NO_MEMORY.log(
                    Level.WARNING,
                    () -> "export \"" + h.export.name()
                            + "\": cannot encode the reply to " + slot.command + "; closing the connection from "
                            + h.ctx.channel().remoteAddress() + ": " + e);
            reply = null;
        }
        slot.buffer = null;
        slot.chunkOffset = slot.chunkEnd = 0;
        finish(reply, readBytes, writeBytes, bufferBytes);
    }

    /** Encodes the reply of a completed request; its slot's buffer and extents are consumed here. */
    private ByteBuf reply(Slot slot, int error, int length) {
        NbdReplyEncoder encoder = h.encoder;
        ByteBuf buffer = slot.buffer;
        slot.buffer = null;
        if (error != 0) {
            if (buffer != null) {
                buffer.release();
            }
            if (TransmissionHandler.LOG.isLoggable(Level.DEBUG)) {
                TransmissionHandler.LOG.log(
                        Level.DEBUG,
                        "export \"" + h.export.name() + "\": " + slot.command + " failed with error " + error);
            }
            return encoder.failed(h.ctx.alloc(), slot.cookie, slot.offset, slot.command, error);
        }
        if (slot.command == NbdCommand.READ
                && Objects.requireNonNull(buffer).capacity() != encoder.dataIndex() + length) {
            // A READ_SEGMENTS driver handed more or fewer bytes than asked: a bug, never sent as data.
            TransmissionHandler.LOG.log(
                    Level.ERROR,
                    "export \"" + h.export.name() + "\": the backend answered a READ of " + length + " bytes with "
                            + (buffer.capacity() - encoder.dataIndex()) + " bytes; replying EIO");
            buffer.release();
            return encoder.failed(h.ctx.alloc(), slot.cookie, slot.offset, slot.command, NbdError.EIO.code());
        }
        return switch (Objects.requireNonNull(slot.command)) {
            case READ -> readReply(slot, Objects.requireNonNull(buffer), length);
            case BLOCK_STATUS ->
                blockStatus(
                        slot.cookie,
                        slot.offset,
                        slot.length,
                        Objects.requireNonNull(slot.extentsInUse),
                        (slot.flags & NbdConstants.CMD_FLAG_REQ_ONE) != 0);
            default -> {
                if (buffer != null) {
                    buffer.release();
                }
                yield encoder.succeeded(h.ctx.alloc(), slot.cookie, slot.offset);
            }
        };
    }

    /** A READ's data, split around the runs of zeroes the backend reported unless the client asked for DF. */
    private ByteBuf readReply(Slot slot, ByteBuf buffer, int length) {
        ExtentList extents = slot.extentsInUse;
        boolean df = (slot.flags & NbdConstants.CMD_FLAG_DF) != 0;
        int runs = extents != null && !df && extents.hasZeroRun() ? extents.clamp(length) : 0;
        return runs == 0
                ? h.encoder.readSucceeded(h.ctx.alloc(), buffer, slot.cookie, slot.offset, length, null, null, 0)
                : h.encoder.readSucceeded(
                        h.ctx.alloc(),
                        buffer,
                        slot.cookie,
                        slot.offset,
                        length,
                        Objects.requireNonNull(extents).lengths,
                        extents.flags,
                        runs);
    }

    /** Answers a BLOCK_STATUS with one chunk for the {@code base:allocation} context. */
    ByteBuf blockStatus(long cookie, long offset, long length, ExtentList extents, boolean reqOne) {
        int count = extents.count() == 0 ? 0 : extents.clamp(length);
        if (count == 0) {
            // Nothing reported: say "data", which is always true.
            extents.reset(1).add(length, 0);
            count = 1;
        }
        if (reqOne) {
            count = 1; // proto.md NBD_CMD_FLAG_REQ_ONE: exactly one extent, within the request
        }
        return h.encoder.blockStatus(h.ctx.alloc(), cookie, offset, h.contextId, extents.lengths, extents.flags, count);
    }

    private void finish(@Nullable ByteBuf reply, long readBytes, long writeBytes, long bufferBytes) {
        h.inFlight--;
        h.flow.ended(readBytes, writeBytes, bufferBytes);
        if (reply == null) {
            h.end.closeNow();
            return;
        }
        h.write(reply);
        if ((readBytes > 0 || writeBytes > 0) && !h.pending.isEmpty() && !h.flow.waitingForTag) {
            // READ or WRITE bytes went out of flight: a request that waited for them may go now.
            h.drain();
        } else {
            h.end.maybeClose();
        }
    }
}
