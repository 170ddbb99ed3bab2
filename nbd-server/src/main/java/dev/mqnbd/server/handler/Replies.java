package dev.mqnbd.server.handler;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.server.protocol.NbdStructuredReplies;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.CompositeByteBuf;
import org.jspecify.annotations.Nullable;

/**
 * Encodes one connection's replies in the framing it negotiated: simple replies; structured replies
 * (READ and BLOCK_STATUS as chunks, other commands may still use simple replies); or extended headers
 * (chunks for everything, proto.md: simple replies MUST NOT be used then).
 *
 * <p>READ replies are zero-copy: {@link #allocateRead} reserves room for the largest header in front of
 * the data, the backend fills the data in place, and {@link #readSucceeded} writes the header into that
 * room, or cuts the buffer into OFFSET_DATA slices around OFFSET_HOLE chunks where the backend reported
 * runs of zeroes.
 *
 * <p><b>Ownership:</b> every buffer returned goes to the caller, who writes it to the channel; buffers
 * passed in are consumed. <b>Threading:</b> stateless after construction.
 */
final class Replies {
    private static final int SIMPLE_HEADER = NbdConstants.SIMPLE_REPLY_HEADER_LENGTH;

    private final boolean structured;
    private final boolean extended;
    private final int readPrefix;

    Replies(NbdSession session) {
        this.structured = session.structuredReplies();
        this.extended = session.extendedHeaders();
        this.readPrefix = structured ? NbdStructuredReplies.dataHeaderLength(extended) : SIMPLE_HEADER;
    }

    /** Returns a buffer with room for a READ reply of {@code length} bytes; the data goes at {@link #dataIndex()}. */
    ByteBuf allocateRead(ByteBufAllocator alloc, int length) {
        return alloc.directBuffer(readPrefix + length);
    }

    /**
     * Returns the start of a READ reply whose data the backend adds as components (READ_SEGMENTS): one
     * component with room for the largest header; {@link #readSucceeded} treats it as it treats {@link
     * #allocateRead}'s buffer once the data components are in.
     */
    CompositeByteBuf allocateSegmentedRead(ByteBufAllocator alloc) {
        CompositeByteBuf reply = alloc.compositeDirectBuffer(Integer.MAX_VALUE);
        reply.addComponent(true, alloc.directBuffer(readPrefix, readPrefix).writerIndex(readPrefix));
        return reply;
    }

    /** Returns where in {@link #allocateRead}'s buffer the data starts. */
    int dataIndex() {
        return readPrefix;
    }

    /**
     * Completes a successful READ whose data fills {@code buffer} after the prefix.
     *
     * @param extents the runs the backend reported for the range, or {@code null}
     * @param df whether the client asked for one content chunk ({@code NBD_CMD_FLAG_DF})
     */
    ByteBuf readSucceeded(ByteBufAllocator alloc, ByteBuf buffer, long cookie, long offset, int length,
            @Nullable ExtentList extents, boolean df) {
        if (!structured) {
            buffer.writerIndex(0);
            NbdReplyEncoder.writeSimpleReplyHeader(buffer, cookie, 0);
            buffer.writerIndex(SIMPLE_HEADER + length);
            return buffer;
        }
        if (length == 0) {
            // OFFSET_DATA needs at least one byte: an empty read is answered with NONE.
            buffer.release();
            return NbdStructuredReplies.none(alloc, extended, cookie, offset);
        }
        if (extents != null && !df && extents.hasZeroRun()) {
            return sparseRead(alloc, buffer, cookie, offset, length, extents);
        }
        buffer.writerIndex(0);
        NbdStructuredReplies.writeDataHeader(
                buffer, extended, NbdConstants.REPLY_FLAG_DONE, cookie, offset, offset, length);
        buffer.writerIndex(readPrefix + length);
        return buffer;
    }

    /** OFFSET_DATA chunks (slices of the filled buffer) and OFFSET_HOLE chunks, then NONE with DONE. */
    private ByteBuf sparseRead(
            ByteBufAllocator alloc, ByteBuf buffer, long cookie, long offset, int length, ExtentList extents) {
        int runs = extents.clamp(length);
        CompositeByteBuf reply = alloc.compositeDirectBuffer(2 * runs + 3);
        long position = 0;
        for (int i = 0; i < runs; i++) {
            int n = (int) extents.lengths[i];
            if ((extents.flags[i] & ExtentList.ZERO) != 0) {
                reply.addComponent(true, NbdStructuredReplies.hole(alloc, extended, 0, cookie, offset, offset + position, n));
            } else {
                addData(alloc, reply, buffer, cookie, offset, position, n);
            }
            position += n;
        }
        if (position < length) {
            // The backend stopped reporting early: the rest is plain data.
            addData(alloc, reply, buffer, cookie, offset, position, (int) (length - position));
        }
        reply.addComponent(true, NbdStructuredReplies.none(alloc, extended, cookie, offset));
        // OWNERSHIP: the data chunks hold retained slices; the buffer's own reference ends here.
        buffer.release();
        return reply;
    }

    private void addData(ByteBufAllocator alloc, CompositeByteBuf reply, ByteBuf buffer, long cookie, long offset,
            long position, int n) {
        ByteBuf header = alloc.buffer(readPrefix);
        NbdStructuredReplies.writeDataHeader(header, extended, 0, cookie, offset, offset + position, n);
        reply.addComponent(true, header);
        reply.addComponent(true, buffer.retainedSlice(readPrefix + (int) position, n));
    }

    /** Answers a successful command other than READ and BLOCK_STATUS. */
    ByteBuf succeeded(ByteBufAllocator alloc, long cookie, long offset) {
        return extended
                ? NbdStructuredReplies.none(alloc, true, cookie, offset)
                : NbdReplyEncoder.simpleReply(alloc, cookie, 0);
    }

    /** Answers a failed command: a structured ERROR chunk where simple replies are not allowed. */
    ByteBuf failed(ByteBufAllocator alloc, long cookie, long offset, @Nullable NbdCommand command, int error) {
        if (extended || (structured && (command == NbdCommand.READ || command == NbdCommand.BLOCK_STATUS))) {
            return NbdStructuredReplies.error(alloc, extended, cookie, offset, error, describe(command, error));
        }
        return NbdReplyEncoder.simpleReply(alloc, cookie, error);
    }

    /** Answers a BLOCK_STATUS with one chunk for the {@code base:allocation} context. */
    ByteBuf blockStatus(ByteBufAllocator alloc, long cookie, long offset, long length, int contextId,
            ExtentList extents, boolean reqOne) {
        int count = extents.count() == 0 ? 0 : extents.clamp(length);
        if (count == 0) {
            // Nothing reported: say "data", which is always true.
            extents.reset(1).add(length, 0);
            count = 1;
        }
        if (reqOne) {
            count = 1; // proto.md NBD_CMD_FLAG_REQ_ONE: exactly one extent, within the request
        }
        return NbdStructuredReplies.blockStatus(
                alloc, extended, cookie, offset, contextId, extents.lengths, extents.flags, count);
    }

    private static String describe(@Nullable NbdCommand command, int error) {
        for (NbdError e : NbdError.values()) {
            if (e.code() == error) {
                return (command == null ? "request" : command.name()) + " failed: " + e.name();
            }
        }
        return (command == null ? "request" : command.name()) + " failed: error " + error;
    }
}
