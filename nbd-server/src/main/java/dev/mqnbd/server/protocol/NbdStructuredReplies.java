package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;

/**
 * Builds structured reply chunks (proto.md "Structured reply chunk message") and, once extended headers
 * are negotiated, extended reply chunks (extension-ext-header "Extended reply chunk message").
 *
 * <p>Structured header, 20 bytes: u32 magic 0x668e33ef, u16 flags, u16 type, u64 cookie, u32 length.
 * Extended header, 32 bytes: u32 magic 0x6e8a278c, u16 flags, u16 type, u64 cookie, u64 offset (the
 * request's), u64 length. The payload follows.
 *
 * <p><b>Ownership:</b> methods that return a buffer hand it to the caller, who writes it to the channel.
 */
public final class NbdStructuredReplies {
    /** The length of a structured chunk header. */
    public static final int STRUCTURED_HEADER_LENGTH = 20;

    /** The length of an extended chunk header. */
    public static final int EXTENDED_HEADER_LENGTH = 32;

    private NbdStructuredReplies() {}

    /** Returns the chunk header length for the framing in use. */
    public static int headerLength(boolean extended) {
        return extended ? EXTENDED_HEADER_LENGTH : STRUCTURED_HEADER_LENGTH;
    }

    /** Writes a chunk header at {@code out}'s writer index. */
    public static void writeHeader(
            ByteBuf out, boolean extended, int flags, int type, long cookie, long requestOffset, long length) {
        if (extended) {
            out.writeInt(NbdConstants.EXTENDED_REPLY_MAGIC);
            out.writeShort(flags);
            out.writeShort(type);
            out.writeLong(cookie);
            out.writeLong(requestOffset);
            out.writeLong(length);
        } else {
            out.writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC);
            out.writeShort(flags);
            out.writeShort(type);
            out.writeLong(cookie);
            out.writeInt((int) length);
        }
    }

    /** Returns {@code NBD_REPLY_TYPE_NONE} with {@code DONE}: success of a request without data. */
    public static ByteBuf none(ByteBufAllocator alloc, boolean extended, long cookie, long requestOffset) {
        ByteBuf buf = alloc.buffer(headerLength(extended));
        writeHeader(buf, extended, NbdConstants.REPLY_FLAG_DONE, NbdConstants.REPLY_TYPE_NONE, cookie, requestOffset, 0);
        return buf;
    }

    /**
     * Returns {@code NBD_REPLY_TYPE_ERROR} with {@code DONE}: u32 error, u16 message length, message.
     *
     * @param error an {@link NbdError#code()}
     */
    public static ByteBuf error(
            ByteBufAllocator alloc, boolean extended, long cookie, long requestOffset, int error, String message) {
        int messageLength = Math.min(ByteBufUtil.utf8Bytes(message), NbdConstants.MAX_STRING_LENGTH);
        ByteBuf buf = alloc.buffer(headerLength(extended) + 6 + messageLength);
        writeHeader(buf, extended, NbdConstants.REPLY_FLAG_DONE, NbdConstants.REPLY_TYPE_ERROR, cookie, requestOffset,
                6 + messageLength);
        buf.writeInt(error);
        buf.writeShort(messageLength);
        int start = buf.writerIndex();
        ByteBufUtil.reserveAndWriteUtf8(buf, message, messageLength);
        buf.writerIndex(start + messageLength);
        return buf;
    }

    /**
     * Writes the header of an {@code NBD_REPLY_TYPE_OFFSET_DATA} chunk and its u64 offset; {@code
     * dataLength} bytes of data must follow. The data offset lies within the request.
     */
    public static void writeDataHeader(ByteBuf out, boolean extended, int flags, long cookie, long requestOffset,
            long dataOffset, int dataLength) {
        writeHeader(out, extended, flags, NbdConstants.REPLY_TYPE_OFFSET_DATA, cookie, requestOffset, 8L + dataLength);
        out.writeLong(dataOffset);
    }

    /** Returns the length of an OFFSET_DATA chunk's header plus its offset field. */
    public static int dataHeaderLength(boolean extended) {
        return headerLength(extended) + 8;
    }

    /** Returns an {@code NBD_REPLY_TYPE_OFFSET_HOLE} chunk: u64 offset, u32 size; the range reads as zeroes. */
    public static ByteBuf hole(ByteBufAllocator alloc, boolean extended, int flags, long cookie, long requestOffset,
            long holeOffset, int size) {
        ByteBuf buf = alloc.buffer(headerLength(extended) + 12);
        writeHeader(buf, extended, flags, NbdConstants.REPLY_TYPE_OFFSET_HOLE, cookie, requestOffset, 12);
        buf.writeLong(holeOffset);
        buf.writeInt(size);
        return buf;
    }

    /**
     * Returns the one block-status chunk of a reply, with {@code DONE}: {@code NBD_REPLY_TYPE_BLOCK_STATUS}
     * (u32 context id, n × (u32 length, u32 flags)) or, with extended headers, {@code
     * NBD_REPLY_TYPE_BLOCK_STATUS_EXT} (u32 context id, u32 n, n × (u64 length, u64 flags)).
     */
    public static ByteBuf blockStatus(ByteBufAllocator alloc, boolean extended, long cookie, long requestOffset,
            int contextId, long[] lengths, int[] flags, int count) {
        int descriptor = extended ? 16 : 8;
        int payload = (extended ? 8 : 4) + descriptor * count;
        ByteBuf buf = alloc.buffer(headerLength(extended) + payload);
        int type = extended ? NbdConstants.REPLY_TYPE_BLOCK_STATUS_EXT : NbdConstants.REPLY_TYPE_BLOCK_STATUS;
        writeHeader(buf, extended, NbdConstants.REPLY_FLAG_DONE, type, cookie, requestOffset, payload);
        buf.writeInt(contextId);
        if (extended) {
            buf.writeInt(count);
        }
        for (int i = 0; i < count; i++) {
            if (extended) {
                buf.writeLong(lengths[i]);
                buf.writeLong(flags[i] & 0xffffffffL);
            } else {
                buf.writeInt((int) lengths[i]);
                buf.writeInt(flags[i]);
            }
        }
        return buf;
    }
}
