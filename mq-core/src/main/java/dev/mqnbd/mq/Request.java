package dev.mqnbd.mq;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * One block request, preallocated per tag and reused, the kernel's {@code struct request} with its PDU.
 *
 * <p><b>States:</b> {@code IDLE} (the tag is free) → {@code ALLOCATED} ({@link BlockQueue#tryAllocate}:
 * the submitter fills it) → {@code IN_FLIGHT} ({@link BlockQueue#submit}: the driver owns it) → {@code
 * ENDED} ({@link #end(Status)}: completion runs) → {@code IDLE}. Each transition out of {@code
 * IN_FLIGHT} happens exactly once per dispatch, by compare-and-set; a second {@link #end} throws.
 *
 * <p><b>Generations:</b> the object is reused for every request its tag carries, and each reuse moves
 * its {@link #generation()} on. A driver that ends a request later than {@code queueRq}, from another
 * thread or after keeping it in a list, captures the generation when it takes the request and ends it
 * with {@link #end(int, Status)}: a reference kept past its request's end (a driver bug, or a request
 * some other path ended) then throws instead of ending whatever request the tag carries now.
 *
 * <p><b>Ownership:</b> the submitter owns the request between allocation and submit, the driver from a
 * {@code queueRq} that returned {@link Status#OK} until it calls {@code end}, the completion path after
 * that. The {@link #data()} buffer belongs to the submitter, who releases it after completion; the
 * driver only reads or fills it while it owns the request. The private data {@link #pdu()} belongs to
 * the driver for the whole life of the tag set.
 *
 * <p><b>Threading:</b> {@link #end} may be called from any thread; the completion is then run on the
 * request's hardware-context executor. Fields set by the submitter are published to the driver by the
 * hand-off in {@code submit}.
 *
 * <p><b>Length:</b> about 430 lines, over the ~400 the project aims at, on purpose: half of it is the
 * driver-facing accessors and their contracts, and the state word (state plus generation, changed only
 * by compare-and-set) must stay in the one class whose fields it guards.
 */
public final class Request<R> {
    static final int IDLE = 0;
    static final int ALLOCATED = 1;
    static final int IN_FLIGHT = 2;
    static final int ENDED = 3;

    /** The state takes the low two bits of {@link #word}; the generation the rest. */
    private static final int STATE_BITS = 2;

    private static final int STATE_MASK = (1 << STATE_BITS) - 1;

    /** Generations count modulo 2^30. */
    private static final int GENERATION_MASK = -1 >>> STATE_BITS;

    private static final VarHandle WORD;

    static {
        try {
            WORD = MethodHandles.lookup().findVarHandle(Request.class, "word", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final int hwIndex;
    private final int tag;
    private final R pdu;

    // INVARIANT: the state and the generation change together, in one compare-and-set, so that an end
    // that names a generation can never move the state of a later one.
    @SuppressWarnings("unused") // accessed through WORD
    private volatile int word = IDLE;

    // Set by the submitter while ALLOCATED.
    private ReqOp op = ReqOp.READ;
    private int flags;
    private long offset;
    private long length;
    private @Nullable ByteBuffer data;
    private ByteBuffer @Nullable [] segments;
    private int segmentCount;
    private @Nullable Segments readSegments;
    private @Nullable Extents extents;
    private @Nullable Object attachment;

    // Set by mq-core while the request is allocated; null while the tag is idle.
    @Nullable
    BlockQueue<?, ?, ?, R> queue;

    @Nullable
    HwContext<?> hctx;

    @Nullable
    RequestCompletion completion;

    boolean isLast;
    long deadlineNanos;
    private Status status = Status.OK;

    /** Runs the completion on the hardware context; allocated once per tag, not per request. */
    final Runnable completionTask = this::runCompletion;

    /** Dispatches on the hardware context when submitted from another thread; allocated once per tag. */
    final Runnable dispatchTask = this::runDispatch;

    Request(int hwIndex, int tag, R pdu) {
        this.hwIndex = hwIndex;
        this.tag = tag;
        this.pdu = pdu;
    }

    /**
     * Describes the I/O; called by the submitter between allocation and submit.
     *
     * @param data the READ buffer to fill or the WRITE payload, positioned at 0 with {@code length}
     *     bytes remaining; {@code null} for requests without data
     * @return this request
     * @throws IllegalStateException if the request is not allocated to the caller
     */
    public Request<R> prepare(ReqOp op, int flags, long offset, long length, @Nullable ByteBuffer data) {
        requireState(ALLOCATED, "prepare");
        if ((flags & ~ReqFlags.ALL) != 0) {
            throw new IllegalArgumentException("flags: 0x" + Integer.toHexString(flags) + " (expected: ReqFlags bits)");
        }
        this.op = op;
        this.flags = flags;
        this.offset = offset;
        this.length = length;
        this.data = data;
        this.segments = null;
        this.segmentCount = data == null ? 0 : 1;
        return this;
    }

    /**
     * Gives a WRITE its payload as {@code count} segments, in order, that together hold {@code length}
     * bytes (each from its position to its limit), instead of one {@link #data()} buffer: the kernel's
     * scatter list. Only for drivers whose queue has {@link Feature#WRITE_SEGMENTS}; {@link #data()} is
     * then {@code null}. Called after {@link #prepare}.
     *
     * <p><b>Ownership:</b> the array and the buffers belong to the submitter, as {@link #data()} does.
     *
     * @return this request
     * @throws IllegalArgumentException if the segments do not hold exactly {@link #length()} bytes
     */
    public Request<R> segments(ByteBuffer[] segments, int count) {
        requireState(ALLOCATED, "segments");
        long total = 0;
        for (int i = 0; i < count; i++) {
            total += segments[i].remaining();
        }
        if (total != length) {
            throw new IllegalArgumentException("segments: " + total + " bytes in " + count
                    + " segments (expected: the request's length " + length + ")");
        }
        this.data = null;
        this.segments = segments;
        this.segmentCount = count;
        return this;
    }

    /**
     * Lets the driver answer this READ with views of its own memory instead of filling {@link #data()}:
     * only for drivers whose queue has {@link Feature#READ_SEGMENTS}, with {@link #data()} {@code null}.
     * Called after {@link #prepare}; cleared when the tag frees.
     *
     * @return this request
     */
    public Request<R> readSegments(Segments sink) {
        requireState(ALLOCATED, "readSegments");
        this.readSegments = sink;
        return this;
    }

    /**
     * Gives the request an extent sink: required for {@link ReqOp#BLOCK_STATUS}, optional for {@link
     * ReqOp#READ} (the driver may then report which parts of the read are holes). Cleared when the tag frees.
     *
     * @return this request
     */
    public Request<R> extents(Extents sink) {
        requireState(ALLOCATED, "extents");
        this.extents = sink;
        return this;
    }

    /** Attaches the submitter's own per-request object (its cookie, its buffers); cleared when the tag frees. */
    public Request<R> attach(Object attachment) {
        requireState(ALLOCATED, "attach");
        this.attachment = attachment;
        return this;
    }

    /**
     * Ends the request; the driver's one and only completion of this dispatch.
     *
     * <p>This cannot tell a stale reference from a live one: once the tag carries a new request that is
     * in flight, it ends that one. A driver that ends requests later than its {@code queueRq}, on
     * another thread or from a list it keeps, uses {@link #end(int, Status)} instead.
     *
     * <p><b>Ownership:</b> after this call the driver must not touch the request or its data buffer.
     *
     * @throws IllegalArgumentException if {@code status} is {@link Status#BUSY}
     * @throws IllegalStateException if the request is not in flight: it already ended, or the caller
     *     holds a stale reference and the tag is not in flight now
     */
    public void end(Status status) {
        requireFinal(status);
        int w;
        do {
            w = (int) WORD.getVolatile(this);
            if ((w & STATE_MASK) != IN_FLIGHT) {
                throw new IllegalStateException("request " + hwIndex + ":" + tag
                        + " ended twice or while not in flight (state: " + stateName(w & STATE_MASK) + ")");
            }
        } while (!WORD.compareAndSet(this, w, (w & ~STATE_MASK) | ENDED));
        ended(status);
    }

    /**
     * Ends the request if it is still the one of {@code generation}, the value {@link #generation()}
     * returned when the driver took it; otherwise throws and leaves the tag's current request alone.
     *
     * <p>Use it wherever a request is ended after being kept: handed to another thread, held in a batch,
     * waiting for a sync. Capture the generation in {@code queueRq} (or wherever the reference is kept),
     * next to the reference.
     *
     * <p><b>Ownership:</b> after this call the driver must not touch the request or its data buffer.
     *
     * @throws IllegalArgumentException if {@code status} is {@link Status#BUSY}
     * @throws IllegalStateException if the tag has moved on to a later request since {@code generation}
     *     (a stale reference: nothing is ended), or if this request already ended
     */
    public void end(int generation, Status status) {
        requireFinal(status);
        int expected = (generation << STATE_BITS) | IN_FLIGHT;
        if ((generation & ~GENERATION_MASK) != 0
                || !WORD.compareAndSet(this, expected, (generation << STATE_BITS) | ENDED)) {
            int w = (int) WORD.getVolatile(this);
            int current = w >>> STATE_BITS;
            if (current != generation) {
                throw new IllegalStateException("end: request " + hwIndex + ":" + tag + " generation " + generation
                        + " is stale (current: generation " + current + ", " + stateName(w & STATE_MASK)
                        + "); nothing was ended");
            }
            throw new IllegalStateException("request " + hwIndex + ":" + tag
                    + " ended twice or while not in flight (state: " + stateName(w & STATE_MASK) + ")");
        }
        ended(status);
    }

    private static void requireFinal(Status status) {
        Objects.requireNonNull(status, "status");
        if (status == Status.BUSY) {
            throw new IllegalArgumentException("status: BUSY (expected: a final status; return BUSY from queueRq)");
        }
    }

    /** The state is ENDED: record the status and run the completion on the hardware context. */
    private void ended(Status status) {
        this.status = status;
        HctxExecutor executor = executor();
        if (executor.inExecutor()) {
            runCompletion();
        } else {
            // OWNERSHIP: the completion path owns the request from here; the executor hand-off publishes it.
            executor.execute(completionTask);
        }
    }

    private void runCompletion() {
        Objects.requireNonNull(queue).dispatcher.complete(this);
    }

    private void runDispatch() {
        Objects.requireNonNull(queue).dispatcher.dispatch(this, isLast);
    }

    /** Returns the operation. */
    public ReqOp op() {
        return op;
    }

    /** Returns the {@link ReqFlags} bits. */
    public int flags() {
        return flags;
    }

    /** Returns whether {@code flag} (a {@link ReqFlags} bit) is set. */
    public boolean hasFlag(int flag) {
        return (flags & flag) != 0;
    }

    /** Returns the byte offset on the device. */
    public long offset() {
        return offset;
    }

    /** Returns the length in bytes of the range the request covers. */
    public long length() {
        return length;
    }

    /** Returns the data buffer (READ: to fill; WRITE: the payload), or {@code null} when there is none. */
    public @Nullable ByteBuffer data() {
        return data;
    }

    /**
     * Returns how many data segments the request has: 1 when {@link #data()} holds the data, more when
     * the submitter gave {@link #segments(ByteBuffer[], int) segments}, 0 without data.
     */
    public int segmentCount() {
        return segmentCount;
    }

    /**
     * Returns data segment {@code i}: {@link #data()} itself for a one-segment request.
     *
     * @throws IndexOutOfBoundsException if {@code i} is not below {@link #segmentCount()}
     */
    public ByteBuffer segment(int i) {
        Objects.checkIndex(i, segmentCount);
        return segments == null ? Objects.requireNonNull(data) : segments[i];
    }

    /** Returns the READ segment sink, or {@code null} when the driver must fill {@link #data()}. */
    public @Nullable Segments readSegments() {
        return readSegments;
    }

    /** Returns the extent sink, or {@code null} when the submitter gave none. */
    public @Nullable Extents extents() {
        return extents;
    }

    /** Returns the driver's private data of this tag. */
    public R pdu() {
        return pdu;
    }

    /** Returns the submitter's attachment. */
    public @Nullable Object attachment() {
        return attachment;
    }

    /** Returns the tag: the request's identity on its hardware queue while it is in flight. */
    public int tag() {
        return tag;
    }

    /** Returns the index of the hardware queue the tag belongs to. */
    public int hwIndex() {
        return hwIndex;
    }

    /**
     * Returns the executor of the hardware context the request was dispatched on, while it is in flight:
     * where a driver that holds the request (a filter delaying it) hands it on later.
     */
    public HctxExecutor executor() {
        return Objects.requireNonNull(hctx, "request not in flight").executor;
    }

    /**
     * Returns how often this tag has been reused (modulo 2^30): the value to capture with a reference
     * the driver keeps, and to hand to {@link #end(int, Status)}.
     */
    public int generation() {
        return (int) WORD.getVolatile(this) >>> STATE_BITS;
    }

    /** Returns the status the request ended with; meaningful in completion callbacks. */
    public Status status() {
        return status;
    }

    /** Moves the state from {@code expected} to {@code next}, keeping the generation. */
    boolean casState(int expected, int next) {
        int w = (int) WORD.getVolatile(this);
        return (w & STATE_MASK) == expected && WORD.compareAndSet(this, w, (w & ~STATE_MASK) | next);
    }

    int state() {
        return (int) WORD.getVolatile(this) & STATE_MASK;
    }

    /** Clears the per-dispatch fields and frees the state; the caller then returns the tag. */
    void recycle() {
        data = null;
        segments = null;
        segmentCount = 0;
        readSegments = null;
        extents = null;
        attachment = null;
        completion = null;
        queue = null;
        hctx = null;
        status = Status.OK;
        op = ReqOp.READ;
        flags = 0;
        offset = 0;
        length = 0;
        int next = (((int) WORD.getVolatile(this) >>> STATE_BITS) + 1) & GENERATION_MASK;
        WORD.setVolatile(this, (next << STATE_BITS) | IDLE);
    }

    private void requireState(int expected, String action) {
        int s = state();
        if (s != expected) {
            throw new IllegalStateException(action + ": request " + hwIndex + ":" + tag + " is " + stateName(s)
                    + " (expected: " + stateName(expected) + ")");
        }
    }

    static String stateName(int state) {
        return switch (state) {
            case IDLE -> "IDLE";
            case ALLOCATED -> "ALLOCATED";
            case IN_FLIGHT -> "IN_FLIGHT";
            case ENDED -> "ENDED";
            default -> "UNKNOWN(" + state + ")";
        };
    }

    @Override
    public String toString() {
        return "Request[" + hwIndex + ":" + tag + " " + stateName(state()) + " " + op + " offset=" + offset + " length="
                + length + " flags=0x" + Integer.toHexString(flags) + "]";
    }
}
