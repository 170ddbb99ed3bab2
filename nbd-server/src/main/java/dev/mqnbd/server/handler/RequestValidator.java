package dev.mqnbd.server.handler;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdRequest;

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

    RequestValidator(NbdExportInfo info) {
        this.size = info.size();
        this.minimumBlockSize = info.minimumBlockSize();
        this.maximumPayload = info.maximumPayload();
        int flags = info.transmissionFlags();
        this.readOnly = (flags & NbdConstants.FLAG_READ_ONLY) != 0;
        this.canTrim = (flags & NbdConstants.FLAG_SEND_TRIM) != 0;
        this.canZero = (flags & NbdConstants.FLAG_SEND_WRITE_ZEROES) != 0;
        this.canFlush = (flags & NbdConstants.FLAG_SEND_FLUSH) != 0;
    }

    /** Returns the error to answer {@code rq} with, or {@code null} when it may go to the backend. */
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
                if (rq.payloadDiscarded()) {
                    yield NbdError.EINVAL; // payload above the advertised maximum; it was drained, not stored
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
            // Not negotiated in this version: CACHE is not advertised, BLOCK_STATUS needs structured replies.
            case CACHE, BLOCK_STATUS -> NbdError.EINVAL;
            case DISC -> null;
        };
    }

    private static int allowedFlags(NbdCommand command) {
        // proto.md "Command flags": FUA is valid on every command once negotiated; NO_HOLE only on WRITE_ZEROES.
        return command == NbdCommand.WRITE_ZEROES
                ? NbdConstants.CMD_FLAG_FUA | NbdConstants.CMD_FLAG_NO_HOLE
                : NbdConstants.CMD_FLAG_FUA;
    }

    private NbdError checkRange(NbdRequest rq, NbdError pastEnd) {
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
