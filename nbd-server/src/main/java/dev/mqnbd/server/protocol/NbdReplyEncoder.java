package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Encodes transmission replies (proto.md "Simple reply message").
 *
 * <p>A READ reply is built without copying the data: allocate one buffer with {@link #readReply}, which
 * writes the 16-byte header, and let the backend fill the {@code length} bytes after it in place.
 *
 * <p><b>Threading:</b> stateless.
 */
public final class NbdReplyEncoder {
    private NbdReplyEncoder() {}

    /**
     * Writes a 16-byte simple reply header at {@code out}'s writer index: u32 magic, u32 error, u64 cookie.
     *
     * @param error 0 for success, else an {@link NbdError#code()}
     */
    public static void writeSimpleReplyHeader(ByteBuf out, long cookie, int error) {
        out.writeInt(NbdConstants.SIMPLE_REPLY_MAGIC);
        out.writeInt(error);
        out.writeLong(cookie);
    }

    /**
     * Returns a simple reply without data: a 16-byte buffer from {@code alloc}.
     *
     * <p><b>Ownership:</b> the caller owns the buffer (usually it writes it to the channel).
     *
     * @param error 0 for success, else an {@link NbdError#code()}
     */
    public static ByteBuf simpleReply(ByteBufAllocator alloc, long cookie, int error) {
        ByteBuf buf = alloc.ioBuffer(NbdConstants.SIMPLE_REPLY_HEADER_LENGTH);
        writeSimpleReplyHeader(buf, cookie, error);
        return buf;
    }

    /**
     * Returns a direct buffer with room for a successful READ reply of {@code length} bytes, the header
     * already written; its writer index is at the start of the data.
     *
     * <p><b>Ownership:</b> the caller owns the buffer; it writes exactly {@code length} bytes before
     * sending it, or releases it.
     *
     * @throws IllegalArgumentException if {@code length} is negative or too large for one buffer
     */
    public static ByteBuf readReply(ByteBufAllocator alloc, long cookie, int length) {
        if (length < 0 || length > Integer.MAX_VALUE - NbdConstants.SIMPLE_REPLY_HEADER_LENGTH) {
            throw new IllegalArgumentException("length: " + length + " (expected: >= 0 and <= "
                    + (Integer.MAX_VALUE - NbdConstants.SIMPLE_REPLY_HEADER_LENGTH) + ")");
        }
        int capacity = NbdConstants.SIMPLE_REPLY_HEADER_LENGTH + length;
        ByteBuf buf = alloc.directBuffer(capacity, capacity);
        writeSimpleReplyHeader(buf, cookie, 0);
        return buf;
    }
}
