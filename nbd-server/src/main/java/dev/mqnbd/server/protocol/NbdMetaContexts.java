package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;
import org.jspecify.annotations.Nullable;

/**
 * Parses the data of {@code NBD_OPT_LIST_META_CONTEXT} and {@code NBD_OPT_SET_META_CONTEXT} (proto.md
 * "Metadata querying"): u32 export name length, name, u32 query count, then per query u32 length and
 * the query string. The only context served is {@code base:allocation}.
 */
final class NbdMetaContexts {
    /** The one metadata context this server knows. */
    static final String BASE_ALLOCATION = "base:allocation";

    /** The id given to {@code base:allocation} when a client selects it; any non-zero value would do. */
    static final int BASE_ALLOCATION_ID = 1;

    /**
     * What a LIST or SET asked for.
     *
     * @param exportName the export the contexts are for
     * @param baseAllocation whether a query matched {@code base:allocation}
     * @param error {@code null}, or why the data is malformed
     */
    record Query(
            String exportName,
            boolean baseAllocation,
            @Nullable String error) {}

    private NbdMetaContexts() {}

    /**
     * Parses option data. In LIST an empty query list and the {@code base:} wildcard match {@code
     * base:allocation}; in SET only the exact name does (proto.md: {@code base:} is not a wildcard there).
     * Queries in other namespaces, and unknown {@code base:} leaves, are ignored as the spec requires.
     */
    static Query parse(ByteBuf data, boolean list) {
        // <here> u32 name length | name | u32 n | n × (u32 length | query)
        if (data.readableBytes() < 8) {
            return error("option length: " + data.readableBytes() + " (expected: >= 8)");
        }
        long nameLength = data.readUnsignedInt();
        if (nameLength > NbdConstants.MAX_STRING_LENGTH || nameLength > data.readableBytes() - 4) {
            return error("name length: " + nameLength + " (expected: <= "
                    + Math.min(NbdConstants.MAX_STRING_LENGTH, data.readableBytes() - 4) + ")");
        }
        String name =
                data.readCharSequence((int) nameLength, StandardCharsets.UTF_8).toString();
        long count = data.readUnsignedInt();
        boolean match = list && count == 0;
        for (long i = 0; i < count; i++) {
            if (data.readableBytes() < 4) {
                return error("query " + i + ": missing (expected: " + count + " queries)");
            }
            long length = data.readUnsignedInt();
            if (length > NbdConstants.MAX_STRING_LENGTH || length > data.readableBytes()) {
                return error("query " + i + " length: " + length + " (expected: <= "
                        + Math.min(NbdConstants.MAX_STRING_LENGTH, data.readableBytes()) + ")");
            }
            String query =
                    data.readCharSequence((int) length, StandardCharsets.UTF_8).toString();
            if (query.equals(BASE_ALLOCATION) || (list && query.equals("base:"))) {
                match = true;
            }
        }
        if (data.isReadable()) {
            return error("option data: " + data.readableBytes() + " bytes after the last query (expected: none)");
        }
        return new Query(name, match, null);
    }

    private static Query error(String message) {
        return new Query("", false, message);
    }
}
