package dev.mqnbd.mq;

/**
 * A block driver: the callbacks of the kernel's {@code struct blk_mq_ops}, with typed driver data.
 *
 * <p>Type parameters: {@code H} is the per-hardware-context data (the kernel's {@code hctx->driver_data},
 * "HwData": a backend handle, a batch of pending flushes); {@code Q} the per-queue data (one device or
 * export); {@code T} the tag-set data shared by every context; {@code R} the per-request private data
 * (the kernel's PDU).
 *
 * <p>Guarantees mq-core gives a driver:
 *
 * <ul>
 *   <li>{@link #newRequestData()} runs once per tag while the {@link TagSet} is built, never on the I/O
 *       path; requests and their data are reused for the life of the tag set.
 *   <li>Every {@link #initHctx} that returned gets exactly one {@link #exitHctx}, also when setting up
 *       a later context fails; {@code exitHctx} runs in reverse index order, after the last request of
 *       the tag set has ended.
 *   <li>{@link #queueRq}, {@link #commitRqs} and {@code poll} for one context run on that context's
 *       executor, one at a time, so {@code H} needs no locks.
 *   <li>A run of {@code queueRq(..., isLast = false)} on a context is always closed by a {@code
 *       queueRq(..., true)} or a {@link #commitRqs} on that context.
 *   <li>A {@code BUSY} from {@code queueRq} requeues the request: it is offered again later, when
 *       another request of the context ends or after a short delay.
 * </ul>
 *
 * <p>What a driver promises: it ends every request it took exactly once, with {@link
 * Request#end(Status)}, from any thread; it never throws from {@code queueRq} or {@code commitRqs}
 * (failures are statuses).
 */
public interface Operations<H, Q, T, R> {

    /**
     * Creates the data of hardware context {@code hctxIndex}; the tag set owns it until {@link #exitHctx}.
     *
     * @throws Exception if the context cannot be set up; the tag set then undoes the contexts already built
     */
    H initHctx(T tagSetData, int hctxIndex) throws Exception;

    /**
     * Releases the data of a context whose {@link #initHctx} succeeded; the last use of {@code hw}. The
     * default closes it when it is {@link AutoCloseable}.
     */
    default void exitHctx(H hw, int hctxIndex) throws Exception {
        if (hw instanceof AutoCloseable closeable) {
            closeable.close();
        }
    }

    /** Creates the private data of one preallocated request; called once per tag at build time. */
    R newRequestData();

    /**
     * Takes a request.
     *
     * <p><b>Ownership:</b> when this returns {@link Status#OK} the driver owns {@code rq} until it calls
     * {@link Request#end(Status)}. {@link Status#BUSY} hands it back to mq-core, which requeues it. Any
     * error status hands it back too, and mq-core ends it with that status.
     *
     * @param isLast {@code false} allows the driver to defer starting the I/O until a later {@code
     *     queueRq(..., true)} or {@link #commitRqs} on the same context
     */
    Status queueRq(H hw, Q queue, Request<R> rq, boolean isLast);

    /** The batch ended without an {@code isLast} request: start whatever {@link #queueRq} deferred. */
    default void commitRqs(H hw, Q queue) {}

    /**
     * Runs where a request ends, on its hardware context's executor, before the submitter's {@link
     * RequestCompletion}. The request is still valid here.
     */
    default void complete(Request<R> rq) {}

    /**
     * Handles a request that outlived the tag set's timeout; runs on the context's executor. The default
     * gives it another period. A driver that ends the request here returns {@link TimeoutAction#DONE}
     * and must make sure its own late completion does not end it again.
     */
    default TimeoutAction timeout(Request<R> rq) {
        return TimeoutAction.RESET_TIMER;
    }
}
