package dev.mqnbd.mq;

import java.nio.ByteBuffer;

/**
 * Where a driver with {@link Feature#READ_SEGMENTS} puts the data of a READ: views of its own memory, in
 * order, that together hold exactly the request's length. The front end sends the views as they are,
 * after the request ended, so their bytes are read later than {@link Request#end}: a driver may hand out
 * only memory that stays valid while referenced (garbage-collected buffers, never reused or freed
 * explicitly), and whose later changes come only from writes that race with this read (which NBD leaves
 * unordered: the client has no reply yet).
 *
 * <p><b>Ownership:</b> the sink keeps a reference to each buffer (its position to its limit) until the
 * reply is sent; the driver must not change the buffers' position or limit after adding them.
 *
 * <p><b>Threading:</b> called by the driver while it owns the request, from one thread at a time.
 */
@FunctionalInterface
public interface Segments {
    /** Appends {@code segment}'s remaining bytes to the READ's data. */
    void add(ByteBuffer segment);
}
