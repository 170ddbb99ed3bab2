package dev.mqnbd.server.protocol;

/**
 * What the handshake negotiated for a connection, handed to the transmission phase.
 *
 * @param clientFlags the u32 client flags ({@code NbdConstants.CLIENT_FLAG_*})
 * @param transmissionFlags the u16 transmission flags actually sent to the client
 * @param go whether the handshake ended with {@code NBD_OPT_GO} (else {@code NBD_OPT_EXPORT_NAME})
 * @param structuredReplies whether structured replies were negotiated ({@code NBD_OPT_STRUCTURED_REPLY},
 *     or implied by extended headers)
 * @param extendedHeaders whether extended headers were negotiated ({@code NBD_OPT_EXTENDED_HEADERS})
 * @param baseAllocationContext the id of the {@code base:allocation} metadata context the client selected
 *     for this export, or 0 when it selected none (then {@code NBD_CMD_BLOCK_STATUS} is invalid)
 */
public record NbdSession(
        int clientFlags,
        int transmissionFlags,
        boolean go,
        boolean structuredReplies,
        boolean extendedHeaders,
        int baseAllocationContext) {

    /** Returns whether the client is fixed newstyle ({@code NBD_FLAG_C_FIXED_NEWSTYLE}). */
    public boolean fixedNewstyle() {
        return (clientFlags & NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE) != 0;
    }

    /** Returns whether the client set {@code NBD_FLAG_C_NO_ZEROES}. */
    public boolean noZeroes() {
        return (clientFlags & NbdConstants.CLIENT_FLAG_NO_ZEROES) != 0;
    }
}
