package dev.mqnbd.server.handler;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdExportInfo;

/**
 * One named export: its request queue and what the handshake tells clients about it, computed once.
 *
 * <p><b>Ownership:</b> the server's {@code ExportRegistry} owns the queue and closes it.
 *
 * @param name the export name; {@code ""} is the default export
 * @param description human-readable text sent in {@code NBD_OPT_LIST} and {@code NBD_INFO_DESCRIPTION}
 * @param queue the mq-core queue that serves it
 * @param info size, transmission flags and block size constraints, as the handshake sends them
 */
public record Export(String name, String description, BlockQueue<?, ?, ?, ?> queue, NbdExportInfo info) {

    /**
     * Describes {@code queue} to clients: transmission flags from its features, block sizes from its
     * limits, the maximum payload capped at {@code maxPayload}.
     */
    public static Export of(String name, String description, BlockQueue<?, ?, ?, ?> queue, int maxPayload) {
        QueueLimits limits = queue.limits();
        int flags = NbdConstants.FLAG_HAS_FLAGS;
        if (limits.readOnly()) {
            flags |= NbdConstants.FLAG_READ_ONLY;
        }
        if (limits.has(Feature.FLUSH)) {
            flags |= NbdConstants.FLAG_SEND_FLUSH;
        }
        if (limits.has(Feature.FUA)) {
            flags |= NbdConstants.FLAG_SEND_FUA;
        }
        if (limits.has(Feature.ROTATIONAL)) {
            flags |= NbdConstants.FLAG_ROTATIONAL;
        }
        if (limits.has(Feature.DISCARD)) {
            flags |= NbdConstants.FLAG_SEND_TRIM;
        }
        if (limits.has(Feature.WRITE_ZEROES)) {
            flags |= NbdConstants.FLAG_SEND_WRITE_ZEROES;
            if (limits.has(Feature.FAST_ZERO)) {
                flags |= NbdConstants.FLAG_SEND_FAST_ZERO;
            }
        }
        if (limits.has(Feature.SHARED_FLUSH)) {
            flags |= NbdConstants.FLAG_CAN_MULTI_CONN;
        }
        // CACHE is advisory: answered by the backend where it can prefetch, acknowledged otherwise. DF is
        // always possible; the handshake clears it unless structured replies were negotiated.
        flags |= NbdConstants.FLAG_SEND_CACHE | NbdConstants.FLAG_SEND_DF;
        // proto.md "Size constraints": minimum ≤ 64 KiB, preferred ≥ max(minimum, 512), maximum ≥ preferred.
        int minimum = Math.min(limits.logicalBlockSize(), 64 * 1024);
        int preferred = Math.max(Math.max(limits.physicalBlockSize(), minimum), 512);
        int maximum = Math.max(Math.min(limits.maxTransferBytes(), maxPayload), preferred);
        NbdExportInfo info =
                new NbdExportInfo(name, description, limits.capacity(), flags, minimum, preferred, maximum);
        return new Export(name, description, queue, info);
    }
}
