package dev.mqnbd.server.handler;

import dev.mqnbd.mq.Status;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdError;
import org.jspecify.annotations.Nullable;

/** Maps request outcomes to NBD errors, in one place (nbdkit's {@code nbd_errno}). */
final class NbdErrors {
    private NbdErrors() {}

    /**
     * Returns the NBD error code for a request that ended with {@code status}; 0 for success.
     * proto.md "Error values": clients treat unknown values as EINVAL, so only the spec's values are sent.
     */
    static int code(Status status) {
        return code(status, NbdCommand.READ);
    }

    /**
     * Returns the NBD error code for {@code command} ended with {@code status}; 0 for success. proto.md
     * reserves {@code EOVERFLOW} for READs (with {@code NBD_CMD_FLAG_DF}): an overlong WRITE, or any other
     * command, is answered {@code EINVAL}.
     */
    static int code(Status status, @Nullable NbdCommand command) {
        if (status == Status.OVERFLOW && command != NbdCommand.READ) {
            return NbdError.EINVAL.code();
        }
        return switch (status) {
            case OK -> 0;
            case READ_ONLY -> NbdError.EPERM.code();
            case NO_SPACE -> NbdError.ENOSPC.code();
            case INVALID -> NbdError.EINVAL.code();
            case NOT_SUPPORTED -> NbdError.ENOTSUP.code();
            case OVERFLOW -> NbdError.EOVERFLOW.code();
            case SHUTDOWN -> NbdError.ESHUTDOWN.code();
            case IO_ERROR, TIMEOUT, BUSY -> NbdError.EIO.code();
        };
    }
}
