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
 *   <li>{@link #initHctx} runs once per hardware context while a {@link BlockQueue} is built, in index
 *       order; the queue owns each {@code H} from then on.
 *   <li>Every {@link #initHctx} that returned gets exactly one {@link #exitHctx}, also when setting up
 *       a later context fails; {@code exitHctx} runs in reverse index order, after the last request of
 *       the queue has ended ({@link BlockQueue#close()}).
 *   <li>{@link #queueRq}, {@link #commitRqs} and {@code poll} for one context run on that context's
 *       executor, one at a time, so {@code H} needs no locks.
 *   <li>A run of {@code queueRq(..., isLast = false)} on a context is always closed by a {@code
 *       queueRq(..., true)} or a {@link #commitRqs} on that context.
 *   <li>A {@code BUSY} from {@code queueRq} requeues the request: it is offered again later, when
 *       another request of the context ends or after a short delay.
 * </ul>
 *
 * <p>What a driver promises: it ends every request it took exactly once, with {@link
 * Request#end(Status)}, from any thread (with {@link Request#end(int, Status)} when it ends a request
 * it kept past {@code queueRq}); it never throws from {@code queueRq} or {@code commitRqs} (failures
 * are statuses).
 *
 * <p><b>Filters</b> are drivers that wrap the next driver, nbdkit's {@code next}: each callback they do
 * not act on they forward, {@link #complete} included, so the driver below sees the contract above.
 */
public interface Operations<H, Q, T, R> {

    /**
     * Creates the data of hardware context {@code hctxIndex}; called by {@link BlockQueue.Builder#build},
     * and the queue's {@link HwContext} owns it until {@link #exitHctx}.
     *
     * @throws Exception if the context cannot be set up; the build then calls {@code exitHctx} for the
     *     contexts already built, in reverse order, and fails with an {@link MqException}
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
     * The request has ended: a hook that runs after {@link Request#end} and before the submitter's
     * {@link RequestCompletion}. Unlike the kernel's {@code .complete}, which runs before {@code
     * end_request}, the request is already {@code ENDED} here, its {@link Request#status()} is final and
     * nothing can change it; its tag is freed only after the submitter's completion returns, so {@code
     * rq}, its data and its private data are still valid until this returns.
     *
     * <p>The order, on the request's hardware-context executor: the driver calls {@code end} (from any
     * thread; a call off the executor hands over to it), then this, then the submitter's {@link
     * RequestCompletion#completed}, then the tag frees and may be reused at once. A filter forwards it to
     * the driver it wraps, as it forwards every callback, unless the request never reached that driver.
     * The default does nothing; a throw is logged and the completion goes on.
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
