package dev.mqnbd.mq;

/** The operation of a {@link Request}, after the kernel's {@code REQ_OP_*}. */
public enum ReqOp {
    /** Fill {@link Request#data()} with {@code length} bytes from {@code offset}. */
    READ,
    /** Store {@link Request#data()} at {@code offset}. */
    WRITE,
    /**
     * Make every write that completed before this request was queued durable; no data. The kernel's
     * {@code REQ_PREFLUSH}.
     */
    FLUSH,
    /** The range's contents may be dropped; a hint that may free space. */
    DISCARD,
    /** The range must read back as zeroes; it may be deallocated unless {@link ReqFlags#NO_UNMAP} is set. */
    WRITE_ZEROES,
    /** Advisory: bring the range into the device's cache; no data, and its failure changes nothing. */
    CACHE,
    /**
     * Report the allocation of the range into {@link Request#extents()}: which parts are holes and which
     * read as zeroes, starting at {@code offset}, as far as the device knows. A device that cannot tell
     * reports the whole range as data.
     */
    BLOCK_STATUS;

    /** Returns whether this operation changes the device's contents. */
    public boolean isWrite() {
        return this == WRITE || this == DISCARD || this == WRITE_ZEROES;
    }
}
