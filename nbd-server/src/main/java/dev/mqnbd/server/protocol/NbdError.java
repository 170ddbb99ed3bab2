package dev.mqnbd.server.protocol;

/**
 * The error values a reply may carry (proto.md "Error values"). Clients treat any other value as
 * {@code EINVAL}, so only these are sent.
 */
public enum NbdError {
    EPERM(1),
    EIO(5),
    ENOMEM(12),
    EINVAL(22),
    ENOSPC(28),
    EOVERFLOW(75),
    /** Only for {@code NBD_CMD_FLAG_FAST_ZERO}. */
    ENOTSUP(95),
    ESHUTDOWN(108);

    private final int code;

    NbdError(int code) {
        this.code = code;
    }

    /** Returns the u32 error value on the wire. */
    public int code() {
        return code;
    }
}
