package dev.mqnbd.storage.file;

/**
 * Receives the allocation map of a range, one run at a time, in order and without gaps: the shape of
 * NBD's {@code base:allocation} block status.
 *
 * <p><b>Threading:</b> called on the thread that asked for the extents.
 */
@FunctionalInterface
public interface ExtentConsumer {
    /**
     * Takes one run.
     *
     * @param offset where the run starts
     * @param length its length, positive
     * @param hole {@code true} for a hole, which reads as zeroes ({@code NBD_STATE_HOLE | NBD_STATE_ZERO});
     *     {@code false} for data
     * @return {@code false} to stop the report early
     */
    boolean accept(long offset, long length, boolean hole);
}
