package dev.mqnbd.storage;

import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.nio.ByteBuffer;

/**
 * The checks every storage backend makes on a request before touching its storage, so that a device stays
 * intact whatever the front end lets through. The front end validates first and answers the client; these
 * checks are the device's own last line, and they map each problem to the one status every backend uses
 * for it:
 *
 * <ul>
 *   <li>{@link Status#NOT_SUPPORTED}: a DISCARD or WRITE_ZEROES on a device whose limits lack the feature;
 *   <li>{@link Status#READ_ONLY}: a WRITE, DISCARD or WRITE_ZEROES on a read-only device;
 *   <li>{@link Status#NO_SPACE} for the writing operations, {@link Status#INVALID} for READ: a range that
 *       is negative, overflows, or ends past the capacity;
 *   <li>{@link Status#INVALID}: offset or length not a multiple of the logical block size; a READ or WRITE
 *       without a data buffer of at least {@code length} bytes remaining; a READ into a read-only buffer;
 *   <li>{@link Status#OVERFLOW}: a READ or WRITE longer than {@link QueueLimits#maxTransferBytes()}.
 * </ul>
 *
 * <p>FLUSH carries no range and always passes.
 *
 * <p><b>Threading:</b> stateless; call it from {@code queueRq} on any thread.
 */
public final class RequestChecks {
    private RequestChecks() {}

    /**
     * Checks {@code rq} against the device's {@code limits}.
     *
     * @return {@link Status#OK} when the device may serve the request, otherwise the status to end it with
     */
    public static Status check(Request<?> rq, QueueLimits limits) {
        ReqOp op = rq.op();
        if (op == ReqOp.FLUSH) {
            return Status.OK;
        }
        if ((op == ReqOp.DISCARD && !limits.has(Feature.DISCARD))
                || (op == ReqOp.WRITE_ZEROES && !limits.has(Feature.WRITE_ZEROES))) {
            return Status.NOT_SUPPORTED;
        }
        if (op.isWrite() && limits.readOnly()) {
            return Status.READ_ONLY;
        }
        long offset = rq.offset();
        long length = rq.length();
        if (!inRange(offset, length, limits.capacity())) {
            return op.isWrite() ? Status.NO_SPACE : Status.INVALID;
        }
        long blockMask = limits.logicalBlockSize() - 1;
        if (((offset | length) & blockMask) != 0) {
            return Status.INVALID;
        }
        if (op == ReqOp.BLOCK_STATUS && rq.extents() == null) {
            return Status.INVALID;
        }
        if (op == ReqOp.READ || op == ReqOp.WRITE) {
            if (length > limits.maxTransferBytes()) {
                return Status.OVERFLOW;
            }
            if (op == ReqOp.READ && rq.readSegments() != null) {
                // The driver hands views of its memory to the sink; there is no buffer to check.
                return limits.has(Feature.READ_SEGMENTS) ? Status.OK : Status.INVALID;
            }
            if (rq.segmentCount() > 1) {
                // Request.segments checked that they hold exactly the length.
                return op == ReqOp.WRITE && limits.has(Feature.WRITE_SEGMENTS) ? Status.OK : Status.INVALID;
            }
            ByteBuffer data = rq.data();
            if (data == null || data.remaining() < length || (op == ReqOp.READ && data.isReadOnly())) {
                return Status.INVALID;
            }
        }
        return Status.OK;
    }

    /**
     * Returns whether {@code [offset, offset + length)} lies within a device of {@code capacity} bytes,
     * without overflowing.
     */
    public static boolean inRange(long offset, long length, long capacity) {
        return offset >= 0 && length >= 0 && offset <= capacity && length <= capacity - offset;
    }
}
