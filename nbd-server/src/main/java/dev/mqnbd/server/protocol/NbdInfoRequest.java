package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;
import org.jspecify.annotations.Nullable;

/**
 * The data of {@code NBD_OPT_INFO} and {@code NBD_OPT_GO} (proto.md "NBD_OPT_INFO and NBD_OPT_GO"): u32
 * name length, name, u16 count n, n × u16 {@code NBD_INFO_*} request.
 *
 * @param exportName the export asked for
 * @param wantName whether the client asked for {@code NBD_INFO_NAME}
 * @param wantDescription whether the client asked for {@code NBD_INFO_DESCRIPTION}
 * @param error {@code null}, or why the data is malformed
 */
record NbdInfoRequest(
        String exportName,
        boolean wantName,
        boolean wantDescription,
        @Nullable String error) {

    /** Parses option data; unknown information requests are ignored, as the spec requires. */
    static NbdInfoRequest parse(ByteBuf data) {
        int total = data.readableBytes();
        if (total < 6) {
            return error("option length: " + total + " (expected: >= 6)");
        }
        // <here> u32 name length | name | u16 n | n × u16
        long nameLength = data.readUnsignedInt();
        if (nameLength > NbdConstants.MAX_STRING_LENGTH || nameLength > data.readableBytes() - 2) {
            return error("name length: " + nameLength + " (expected: <= "
                    + Math.min(NbdConstants.MAX_STRING_LENGTH, data.readableBytes() - 2) + ")");
        }
        String name =
                data.readCharSequence((int) nameLength, StandardCharsets.UTF_8).toString();
        // u32 | name | <here> u16 n | n × u16
        int count = data.readUnsignedShort();
        if (data.readableBytes() != 2 * count) {
            return error("info requests length: " + data.readableBytes() + " (expected: " + 2 * count + ")");
        }
        boolean wantName = false;
        boolean wantDescription = false;
        while (data.isReadable()) {
            // EXPORT and BLOCK_SIZE are always sent.
            switch (data.readUnsignedShort()) {
                case NbdConstants.INFO_NAME -> wantName = true;
                case NbdConstants.INFO_DESCRIPTION -> wantDescription = true;
                default -> {}
            }
        }
        return new NbdInfoRequest(name, wantName, wantDescription, null);
    }

    private static NbdInfoRequest error(String message) {
        return new NbdInfoRequest("", false, false, message);
    }
}
