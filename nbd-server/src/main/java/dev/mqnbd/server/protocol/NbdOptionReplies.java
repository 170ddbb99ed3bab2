package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;

/**
 * Builds option replies (proto.md "Option reply message"): u64 magic, u32 option, u32 reply type, u32
 * length, data.
 *
 * <p><b>Ownership:</b> every method returns a new buffer that the caller owns (and writes to the channel).
 */
final class NbdOptionReplies {
    private NbdOptionReplies() {}

    /** Returns an {@code NBD_REP_ACK}. */
    static ByteBuf ack(ByteBufAllocator alloc, int option) {
        return header(alloc, option, NbdConstants.REP_ACK, 0);
    }

    /** Returns an error reply whose data is {@code message}, capped at the longest string allowed. */
    static ByteBuf error(ByteBufAllocator alloc, int option, int type, String message) {
        int length = Math.min(ByteBufUtil.utf8Bytes(message), NbdConstants.MAX_STRING_LENGTH);
        ByteBuf buf = header(alloc, option, type, length);
        int start = buf.writerIndex();
        ByteBufUtil.reserveAndWriteUtf8(buf, message, length);
        // A message cut at the cap may end in half a code point; clients only print it.
        buf.writerIndex(start + length);
        return buf;
    }

    /** Returns an {@code NBD_REP_SERVER}: u32 name length, name, description (the rest of the data). */
    static ByteBuf server(ByteBufAllocator alloc, int option, NbdExportInfo export) {
        int nameLength = ByteBufUtil.utf8Bytes(export.name());
        int descriptionLength = ByteBufUtil.utf8Bytes(export.description());
        ByteBuf buf = header(alloc, option, NbdConstants.REP_SERVER, 4 + nameLength + descriptionLength);
        buf.writeInt(nameLength);
        ByteBufUtil.reserveAndWriteUtf8(buf, export.name(), nameLength);
        ByteBufUtil.reserveAndWriteUtf8(buf, export.description(), descriptionLength);
        return buf;
    }

    /** Returns {@code NBD_REP_INFO} / {@code NBD_INFO_EXPORT}: u16 type 0, u64 size, u16 flags. */
    static ByteBuf infoExport(ByteBufAllocator alloc, int option, long size, int transmissionFlags) {
        ByteBuf buf = header(alloc, option, NbdConstants.REP_INFO, 12);
        buf.writeShort(NbdConstants.INFO_EXPORT);
        buf.writeLong(size);
        buf.writeShort(transmissionFlags);
        return buf;
    }

    /** Returns {@code NBD_REP_INFO} / {@code NBD_INFO_NAME} or {@code NBD_INFO_DESCRIPTION}: u16 type, text. */
    static ByteBuf infoText(ByteBufAllocator alloc, int option, int infoType, String text) {
        int length = ByteBufUtil.utf8Bytes(text);
        ByteBuf buf = header(alloc, option, NbdConstants.REP_INFO, 2 + length);
        buf.writeShort(infoType);
        ByteBufUtil.reserveAndWriteUtf8(buf, text, length);
        return buf;
    }

    /** Returns {@code NBD_REP_INFO} / {@code NBD_INFO_BLOCK_SIZE}: u16 type 3, u32 min, preferred, max. */
    static ByteBuf infoBlockSize(ByteBufAllocator alloc, int option, NbdExportInfo export) {
        ByteBuf buf = header(alloc, option, NbdConstants.REP_INFO, 14);
        buf.writeShort(NbdConstants.INFO_BLOCK_SIZE);
        buf.writeInt(export.minimumBlockSize());
        buf.writeInt(export.preferredBlockSize());
        buf.writeInt(export.maximumPayload());
        return buf;
    }

    /** Returns an {@code NBD_REP_META_CONTEXT}: u32 context id, context name. */
    static ByteBuf metaContext(ByteBufAllocator alloc, int option, int id, String name) {
        int length = ByteBufUtil.utf8Bytes(name);
        ByteBuf buf = header(alloc, option, NbdConstants.REP_META_CONTEXT, 4 + length);
        buf.writeInt(id);
        ByteBufUtil.reserveAndWriteUtf8(buf, name, length);
        return buf;
    }

    private static ByteBuf header(ByteBufAllocator alloc, int option, int type, int length) {
        ByteBuf buf = alloc.buffer(NbdConstants.OPTION_REPLY_HEADER_LENGTH + length);
        buf.writeLong(NbdConstants.OPTION_REPLY_MAGIC);
        buf.writeInt(option);
        buf.writeInt(type);
        buf.writeInt(length);
        return buf;
    }
}
