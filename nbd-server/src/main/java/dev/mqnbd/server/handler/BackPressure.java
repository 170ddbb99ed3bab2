package dev.mqnbd.server.handler;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.TagWaiter;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.PayloadAdmission;
import io.netty.channel.Channel;
import org.jspecify.annotations.Nullable;

/**
 * Back-pressure of one connection: it reads its socket only while every command it decoded has been
 * submitted. A command waits (and reading stops) while the hardware context has no free tag ({@link
 * BlockQueue#waitForTag}); while the channel is not writable, that is while its unwritten replies are
 * above the high-water mark of its {@code WriteBufferWaterMark}; and while its READs in flight (submitted,
 * reply not yet handed to the channel) hold more than {@link TransmissionHandler#MAX_READ_BYTES_IN_FLIGHT}
 * bytes, unless none is in flight; the same for its WRITEs in flight (submitted, not yet completed) and
 * {@link TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT}; and while a request's buffer (a WRITE payload, a
 * READ reply buffer) would take the buffers in flight past its export's or the server's {@link
 * BufferBudget}. A payload of 64 KiB or more is read only once its room in that budget is reserved
 * ({@link #admit}); until then the connection is not read. So the memory one connection holds is bounded
 * in bytes: its READs and WRITEs in flight, plus its unwritten replies, plus one read's worth of decoded
 * commands. A tag frees when the request
 * ends, but the connection takes no new one until the replies it has not yet written fall below the
 * low-water mark.
 *
 * <p><b>Threading:</b> the channel's event loop, but {@link #tagAvailable} and the {@link BufferBudget}'s
 * wake-up, which may run on any thread and hand a preallocated task to the loop.
 */
final class BackPressure implements TagWaiter, PayloadAdmission {
    private final TransmissionHandler h;
    private final Runnable resumeTask = this::resume;
    private final BufferBudget budget;
    /** Runs {@link #budgetResumeTask} on the loop; registered with {@link #budget} while waiting for room. */
    private final Runnable budgetWake;

    private final Runnable budgetResumeTask = this::budgetResume;
    /** The bytes of this connection's READs in flight. */
    private long readBytesInFlight;
    /** The bytes of this connection's WRITEs in flight. */
    private long writeBytesInFlight;
    /** Whether the connection waits for a tag of its hardware context. */
    boolean waitingForTag;
    /**
     * The budget whose room this connection waits for (its wake-up is registered there), or {@code null};
     * a connection blocked by another budget since registers there too.
     */
    private @Nullable BufferBudget awaiting;
    /** The decoder's task that reads on once a payload it holds back may come in; set while it waits. */
    private @Nullable Runnable admitResume;
    /** Runs {@link #admitResumeTask} on the loop; registered with a budget while a payload waits for room. */
    private final Runnable admitWake;

    private final Runnable admitResumeTask = this::admitResume;

    BackPressure(TransmissionHandler h, BufferBudget budget) {
        this.h = h;
        this.budget = budget;
        this.budgetWake = () -> h.ctx.executor().execute(budgetResumeTask);
        this.admitWake = () -> h.ctx.executor().execute(admitResumeTask);
    }

    /**
     * Reserves room for a WRITE payload (or another request's payload) of {@code length} bytes in the
     * export's and the server's {@link BufferBudget} before the decoder reads it; if it would take either
     * past its bound, reserves nothing, stops reading the socket, and runs {@code resume} once bytes are
     * given back there. So a payload waiting for room stays in the client's socket, not in the server's
     * memory. The request hands the reservation to its slot when it is submitted ({@link #started}), or
     * gives it back when it is dropped.
     */
    @Override
    public long admit(long length, Runnable resume) {
        if (length < BufferBudget.COUNTED_FROM) {
            return 0; // not counted: a small WRITE goes on as before
        }
        BufferBudget full = budget.blocking(length);
        if (full != null) {
            admitResume = resume;
            update();
            full.await(length, admitWake);
            return -1;
        }
        budget.take(length);
        return length;
    }

    @Override
    public void giveBack(long bytes) {
        budget.give(bytes);
    }

    /** Room in a budget, maybe: the decoder asks again for the payload it holds back. */
    private void admitResume() {
        Runnable resume = admitResume;
        if (resume != null) {
            admitResume = null;
            resume.run();
            update();
        }
    }

    /** Whether the decoder holds back a payload until there is room for it. */
    boolean waitingForRoom() {
        return admitResume != null;
    }

    /**
     * Whether {@code rq} must wait: the channel is above its high-water mark; or {@code rq} is a READ that
     * would take this connection's READ bytes in flight past {@link
     * TransmissionHandler#MAX_READ_BYTES_IN_FLIGHT}, or a WRITE that would take its WRITE bytes past {@link
     * TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT} (one of each is always allowed, so a request of the
     * largest payload proceeds); or its buffer would take the export's or the server's {@link BufferBudget}
     * past its bound. Writability changes, completions on this connection and room in the budget resume
     * the connection.
     */
    boolean throttled(NbdRequest rq) {
        if (!h.ctx.channel().isWritable()) {
            return true;
        }
        long length = rq.length();
        if (rq.command() == NbdCommand.READ) {
            if (readBytesInFlight > 0 && readBytesInFlight + length > TransmissionHandler.MAX_READ_BYTES_IN_FLIGHT) {
                return true; // a READ of this connection completes and drains again
            }
            return h.readTakesBuffer(length) && overBudget(length);
        }
        if (rq.command() == NbdCommand.WRITE) {
            if (writeBytesInFlight > 0 && writeBytesInFlight + length > TransmissionHandler.MAX_WRITE_BYTES_IN_FLIGHT) {
                return true; // a WRITE of this connection completes and drains again
            }
            // A payload admitted with room reserved is in the budget already (admit).
            return rq.reserved() == 0 && overBudget(length);
        }
        return false;
    }

    /** Whether a buffer of {@code length} must wait for room in the {@link BufferBudget}; if so, waits for it. */
    private boolean overBudget(long length) {
        BufferBudget full = budget.blocking(length);
        if (full == null) {
            return false;
        }
        if (awaiting != full) {
            awaiting = full;
            full.await(length, budgetWake);
        }
        return true;
    }

    /**
     * A request went to the backend: its READ or WRITE bytes, and the bytes its buffer takes in the budget
     * ({@code takeBytes}: none for a payload whose room was reserved when it was admitted).
     */
    void started(long readBytes, long writeBytes, long takeBytes) {
        readBytesInFlight += readBytes;
        writeBytesInFlight += writeBytes;
        if (takeBytes > 0) {
            budget.take(takeBytes);
        }
    }

    /** A request completed: what {@link #started} counted goes out of flight. */
    void ended(long readBytes, long writeBytes, long bufferBytes) {
        readBytesInFlight -= readBytes;
        writeBytesInFlight -= writeBytes;
        if (bufferBytes > 0) {
            budget.give(bufferBytes);
        }
    }

    /** Room in the server's {@link BufferBudget}, maybe: the request that waited for it tries again. */
    private void budgetResume() {
        awaiting = null;
        h.drain();
    }

    /** No tag is free: stop reading and wait for one ({@link #tagAvailable}). */
    void waitForTag() {
        waitingForTag = true;
        update();
        h.queue.waitForTag(h.hctx, this);
    }

    @Override
    public void tagAvailable() {
        h.ctx.executor().execute(resumeTask);
    }

    private void resume() {
        if (!waitingForTag) {
            // Each freed tag wakes one waiter: pass on a wakeup this connection has no use for.
            h.queue.wakeNextWaiter(h.hctx);
            return;
        }
        waitingForTag = false;
        h.drain();
        update();
        // The drain may have taken no tag (the commands were answered without one, or the connection is
        // closing): a tag still free goes to the next waiter.
        h.queue.wakeNextWaiter(h.hctx);
    }

    /**
     * Reads the socket only while every decoded command has been submitted and the channel is writable;
     * never once the connection is ending.
     */
    void update() {
        Channel channel = h.ctx.channel();
        boolean read =
                h.pending.isEmpty() && !waitingForTag && admitResume == null && !h.end.ending() && channel.isWritable();
        if (channel.config().isAutoRead() != read) {
            channel.config().setAutoRead(read);
        }
    }

    /** The channel crossed a water mark: go on submitting, or stop reading. */
    void writabilityChanged() {
        if (h.ctx.channel().isWritable()) {
            h.drain();
        } else {
            update();
        }
    }
}
