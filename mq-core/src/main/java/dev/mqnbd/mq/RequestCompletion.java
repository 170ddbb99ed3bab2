package dev.mqnbd.mq;

/**
 * The submitter's completion callback, given to {@link BlockQueue#tryAllocate}.
 *
 * <p><b>Threading:</b> called on the request's hardware-context executor, after the driver's {@link
 * Operations#complete}. <b>Ownership:</b> the request is valid only until this method returns; then its
 * tag is freed and the request object is reused. Copy out what is needed ({@link Request#status()},
 * {@link Request#attachment()}) before returning.
 */
@FunctionalInterface
public interface RequestCompletion {
    /** The request ended; {@link Request#status()} says how. */
    void completed(Request<?> rq);
}
