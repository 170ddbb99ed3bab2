package dev.mqnbd.server.handler;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdSession;
import org.jspecify.annotations.Nullable;

/**
 * Checks each transmission request against the export and what was negotiated, once, at the edge;
 * deeper layers only assert. The error for each violation follows proto.md "Error values".
 *
 * <p><b>Threading:</b> immutable.
 */
final class RequestValidator {
    private final long size;
    private final int minimumBlockSize;
    private final int maximumPayload;
    private final boolean readOnly;
    private final boolean canTrim;
    private final boolean canZero;
    private final boolean canFlush;
    private final boolean canCache;
    private final boolean canFastZero;
    private final boolean canDf;
    private final boolean blockStatus;
    private final boolean extended;

    RequestValidator(NbdExportInfo info, NbdSession session) {
        this.size = info.size();
        this.minimumBlockSize = info.minimumBlockSize();
        this.maximumPayload = info.maximumPayload();
        // What the client was told is what it may use: the flags the handshake actually sent.
        int sent = session.transmissionFlags();
        this.readOnly = (sent & NbdConstants.FLAG_READ_ONLY) != 0;
        this.canTrim = (sent & NbdConstants.FLAG_SEND_TRIM) != 0;
        this.canZero = (sent & NbdConstants.FLAG_SEND_WRITE_ZEROES) != 0;
        this.canFlush = (sent & NbdConstants.FLAG_SEND_FLUSH) != 0;
        this.canCache = (sent & NbdConstants.FLAG_SEND_CACHE) != 0;
        this.canFastZero = (sent & NbdConstants.FLAG_SEND_FAST_ZERO) != 0;
        this.canDf = (sent & NbdConstants.FLAG_SEND_DF) != 0;
        this.blockStatus = session.baseAllocationContext() != 0;
        this.extended = session.extendedHeaders();
    }

    /** Returns the error to answer {@code rq} with, or {@code null} when it may go to the backend. */
    @Nullable
    NbdError validate(NbdRequest rq) {
        NbdCommand command = rq.command();
        if (command == null) {
            return NbdError.EINVAL; // unknown command type
        }
        if ((rq.flags() & ~allowedFlags(command)) != 0) {
            return NbdError.EINVAL; // a flag not valid for this command, or not negotiated
        }
        return switch (command) {
            case READ -> {
                if (rq.length() > maximumPayload) {
                    yield NbdError.EINVAL;
                }
                yield checkRange(rq, NbdError.EINVAL);
            }
            case WRITE -> {
                if (rq.payloadDiscarded() || rq.length() > maximumPayload) {
                    // Above the advertised maximum (drained, not stored); proto.md keeps EOVERFLOW for READs.
                    yield NbdError.EINVAL;
                }
                if (readOnly) {
                    yield NbdError.EPERM;
                }
                yield checkRange(rq, NbdError.ENOSPC);
            }
            case TRIM -> {
                if (readOnly) {
                    yield NbdError.EPERM;
                }
                yield canTrim ? checkRange(rq, NbdError.EINVAL) : NbdError.EINVAL;
            }
            case WRITE_ZEROES -> {
                if (readOnly) {
                    yield NbdError.EPERM;
                }
                yield canZero ? checkRange(rq, NbdError.ENOSPC) : NbdError.EINVAL;
            }
            // proto.md: FLUSH's offset and length are reserved and must be zero.
            case FLUSH -> canFlush && rq.offset() == 0 && rq.length() == 0 ? null : NbdError.EINVAL;
            case CACHE -> canCache ? checkRange(rq, NbdError.EINVAL) : NbdError.EINVAL;
            // proto.md "NBD_CMD_BLOCK_STATUS": needs a selected context; a length of 0 is invalid.
            case BLOCK_STATUS -> blockStatus && rq.length() > 0 ? checkRange(rq, NbdError.EINVAL) : NbdError.EINVAL;
            case DISC -> null;
        };
    }

    /** proto.md "Command flags": which flags each command may carry, given what was negotiated. */
    private int allowedFlags(NbdCommand command) {
        int allowed = NbdConstants.CMD_FLAG_FUA; // valid on every command once SEND_FUA is negotiated
        switch (command) {
            case READ -> allowed |= canDf ? NbdConstants.CMD_FLAG_DF : 0;
            case WRITE -> allowed |= extended ? NbdConstants.CMD_FLAG_PAYLOAD_LEN : 0;
            case WRITE_ZEROES ->
                allowed |= NbdConstants.CMD_FLAG_NO_HOLE | (canFastZero ? NbdConstants.CMD_FLAG_FAST_ZERO : 0);
            case BLOCK_STATUS -> allowed |= NbdConstants.CMD_FLAG_REQ_ONE;
            default -> {}
        }
        return allowed;
    }

    private @Nullable NbdError checkRange(NbdRequest rq, NbdError pastEnd) {
        long offset = rq.offset();
        long length = rq.length();
        // offset is a u64 on the wire: a negative long is past any export.
        if (offset < 0 || offset > size || length < 0 || length > size - offset) {
            return pastEnd;
        }
        if (minimumBlockSize > 1 && ((offset | length) & (minimumBlockSize - 1)) != 0) {
            return NbdError.EINVAL;
        }
        return null;
    }
}
