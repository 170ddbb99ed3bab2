package dev.mqnbd.mq;

/**
 * The outcome of a request, after the kernel's {@code blk_status_t}.
 *
 * <p>{@link #OK} and {@link #BUSY} are what {@link Operations#queueRq} returns for a request it took or
 * could not take yet; every other value, returned from {@code queueRq} or passed to {@link
 * Request#end(Status)}, ends the request with that error. {@code BUSY} never ends a request.
 */
public enum Status {
    /** The request succeeded, or {@code queueRq} took it. */
    OK,
    /** {@code queueRq} only: the driver cannot take the request now; mq-core requeues it and retries. */
    BUSY,
    /** The device failed the I/O. */
    IO_ERROR,
    /** A write could not be stored: the device or a quota is full, or the range lies past the end. */
    NO_SPACE,
    /** The request is malformed for this device: bad range, alignment or flags. */
    INVALID,
    /** The operation or one of its flags is not supported (e.g. a fast zero that would be slow). */
    NOT_SUPPORTED,
    /** A write, discard or zeroing on a read-only device. */
    READ_ONLY,
    /** The request is larger than the device accepts in one piece. */
    OVERFLOW,
    /** The request did not complete in time. */
    TIMEOUT,
    /** The device is shutting down and takes no more I/O. */
    SHUTDOWN;

    /** Returns whether this status ends a request with an error. */
    public boolean isError() {
        return this != OK && this != BUSY;
    }
}
