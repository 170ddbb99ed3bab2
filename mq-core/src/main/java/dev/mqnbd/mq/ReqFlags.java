package dev.mqnbd.mq;

/** Request flag bits, after the kernel's {@code REQ_*} modifiers. */
public final class ReqFlags {
    /** Forced unit access: the request's data is durable before the request ends. */
    public static final int FUA = 1;

    /** {@link ReqOp#WRITE_ZEROES} must allocate: zeroes are written, not a hole punched. */
    public static final int NO_UNMAP = 1 << 1;

    /**
     * {@link ReqOp#WRITE_ZEROES} must be fast: a device that would have to write the zeroes (rather than
     * deallocate or mark them) ends the request with {@link Status#NOT_SUPPORTED} at once, changing nothing.
     */
    public static final int FAST_ZERO = 1 << 2;

    /** Every flag this version knows. */
    public static final int ALL = FUA | NO_UNMAP | FAST_ZERO;

    private ReqFlags() {}
}
