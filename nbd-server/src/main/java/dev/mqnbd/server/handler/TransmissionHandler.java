package dev.mqnbd.server.handler;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.mq.Segments;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagWaiter;
import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.NbdCodecException;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * The transmission phase of one connection: each decoded {@link NbdRequest} becomes one mq-core {@link
 * Request} on the hardware context that serves this connection's event loop, and each completion
 * becomes a reply in the framing the handshake negotiated ({@link Replies}).
 *
 * <p>Batching: the commands decoded from one socket read are one batch; the last one is submitted with
 * {@code isLast}, and a batch cut short (an invalid last command, no free tag) is closed with {@link
 * BlockQueue#commit}. Replies are written as requests complete and flushed once per batch of
 * completions.
 *
 * <p>Back-pressure: the connection reads its socket only while every command it decoded has been
 * submitted. A command waits (and reading stops) while the hardware context has no free tag ({@link
 * BlockQueue#waitForTag}); while the channel is not writable, that is while its unwritten replies are
 * above the high-water mark of its {@code WriteBufferWaterMark}; and while its READs in flight (submitted,
 * reply not yet handed to the channel) hold more than {@link #MAX_READ_BYTES_IN_FLIGHT} bytes, unless
 * none is in flight. So the memory one connection holds is bounded in bytes: its READs in flight, plus
 * its unwritten replies, plus one read's worth of decoded commands. A tag frees when the request ends, but
 * the connection takes no new one until the replies it has not yet written fall below the low-water mark.
 *
 * <p>Work proportional to the range: a TRIM or WRITE_ZEROES longer than {@link #MAX_ZERO_CHUNK} is
 * submitted as consecutive requests of at most that length, one after the other, and answered once
 * after the last; a BLOCK_STATUS is answered for at most {@link #MAX_BLOCK_STATUS_SPAN} bytes from its
 * offset (proto.md allows a reply that covers less than the request). Either way no single dispatch on
 * the event loop works through terabytes.
 *
 * <p>Errors: a request whose preparation fails (no memory for its reply buffer) gives its tag back and
 * is answered {@code ENOMEM}; a reply that cannot be encoded or written closes the connection ({@link
 * ReplyWriter}). Per-event log lines are rate-limited.
 *
 * <p><b>Ownership:</b> a WRITE payload (a retained slice of the inbound buffer) and a READ reply buffer
 * (header plus room for the data, filled in place by the backend) belong to the request's slot from
 * submit until completion, where they are written out or released. <b>Threading:</b> everything runs on
 * the channel's event loop; a completion that arrives on another thread is handed to it.
 */
public final class TransmissionHandler extends ChannelInboundHandlerAdapter implements RequestCompletion, TagWaiter {
    private static final System.Logger LOG = System.getLogger(TransmissionHandler.class.getName());
    /** Lost connections and protocol violations: a client can cause them at will. */
    private static final RateLimitedLog CLOSES = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    /** Requests that could not be prepared or answered for want of memory. */
    private static final RateLimitedLog NO_MEMORY = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /** The most READ bytes one connection keeps in flight before it stops submitting (one READ is always allowed). */
    public static final long MAX_READ_BYTES_IN_FLIGHT = 64L << 20;
    /** The longest range one TRIM or WRITE_ZEROES dispatch covers; longer ones are split. */
    public static final long MAX_ZERO_CHUNK = 1L << 30;
    /** The pause before the next piece of a split TRIM or WRITE_ZEROES: a turn of the event loop. */
    private static final long CHUNK_YIELD_MICROS = 20;
    /** The longest range one BLOCK_STATUS reply covers. */
    public static final long MAX_BLOCK_STATUS_SPAN = 1L << 30;

    /** The most runs one BLOCK_STATUS reply or one sparse READ reply carries. */
    private static final int MAX_EXTENTS = 512;
    /**
     * The smallest READ answered with the backend's own buffers where it offers them (READ_SEGMENTS):
     * below this, copying into one reply buffer costs less than a gather list.
     */
    private static final int SEGMENTED_READ_MIN = 64 << 10;

    private final Export export;
    private final BlockQueue<?, ?, ?, ?> queue;
    private final int hctx;
    private final RequestValidator validator;
    private final Replies replies;
    private final int contextId;
    private final boolean structured;
    private final boolean backendExtents;
    private final boolean backendCache;
    private final boolean writeSegments;
    private final boolean readSegments;
    private final ArrayDeque<NbdRequest> pending = new ArrayDeque<>();
    /** The rest of TRIMs and WRITE_ZEROES split by {@link #MAX_ZERO_CHUNK}, submitted before {@link #pending}. */
    private final ArrayDeque<Chunk> chunks = new ArrayDeque<>();

    /** Per-tag state of the requests this connection has in flight; tags are unique while in flight. */
    private final Slot[] slots;

    /** Reused for BLOCK_STATUS on backends that cannot tell allocation. */
    private final ExtentList allData = new ExtentList(1);

    private final Runnable resumeTask = this::resume;
    private final Runnable flushTask = this::flushNow;

    private ChannelHandlerContext ctx;
    private ReplyWriter writer;
    private int inFlight;
    private long readBytesInFlight;
    private boolean waitingForTag;
    private boolean discReceived;
    private boolean draining;
    private boolean redrain;
    private boolean flushScheduled;
    private boolean disconnecting;
    private boolean shuttingDown;
    private boolean closed;

    /**
     * Creates the handler of one connection.
     *
     * @param session what the handshake negotiated (reply framing, metadata context)
     * @param hctx the hardware context serving this connection's event loop
     */
    public TransmissionHandler(Export export, NbdSession session, int hctx) {
        this.export = export;
        this.queue = export.queue();
        this.hctx = hctx;
        this.validator = new RequestValidator(export.info(), session);
        this.replies = new Replies(session);
        this.contextId = session.baseAllocationContext();
        this.structured = session.structuredReplies();
        this.backendExtents = queue.limits().has(Feature.BLOCK_STATUS);
        this.backendCache = queue.limits().has(Feature.CACHE);
        this.writeSegments = queue.limits().has(Feature.WRITE_SEGMENTS);
        this.readSegments = queue.limits().has(Feature.READ_SEGMENTS);
        this.slots = new Slot[queue.tagSet().queueDepth()];
        for (int i = 0; i < slots.length; i++) {
            slots[i] = new Slot();
        }
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        this.writer = new ReplyWriter(ctx, export.name());
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof NbdRequest rq)) {
            ctx.fireChannelRead(msg);
            return;
        }
        if (disconnecting || closed) {
            // proto.md: after NBD_CMD_DISC the client sends nothing more; drop what it sent anyway.
            rq.release();
            return;
        }
        if (rq.command() == NbdCommand.DISC) {
            // What follows DISC is not read as requests; a decoding error it causes must not cut the replies
            // to the requests before it short (exceptionCaught).
            discReceived = true;
        }
        pending.addLast(rq);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        drain();
        ctx.fireChannelReadComplete();
    }

    /**
     * Submits pending commands until none is left, no tag is free, or the connection holds as many reply
     * bytes as it may ({@link #throttled}).
     */
    private void drain() {
        if (draining) {
            // A completion inside a submit or commit below asked for a drain: the running one goes round again.
            redrain = true;
            return;
        }
        draining = true;
        try {
            do {
                redrain = false;
                drainOnce();
            } while (redrain);
        } finally {
            draining = false;
        }
    }

    private void drainOnce() {
        submitChunks();
        boolean runOpen = false;
        while (!pending.isEmpty() && !waitingForTag && !closed) {
            NbdRequest rq = pending.peekFirst();
            if (shuttingDown) {
                pending.pollFirst();
                write(replies.failed(ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), NbdError.ESHUTDOWN.code()));
                rq.release();
                continue;
            }
            if (rq.command() == NbdCommand.DISC) {
                pending.pollFirst();
                rq.release();
                beginDisconnect();
                break;
            }
            NbdError error = validator.validate(rq);
            if (error != null) {
                pending.pollFirst();
                write(replies.failed(ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), error.code()));
                rq.release();
                continue;
            }
            if (answeredHere(rq)) {
                pending.pollFirst();
                rq.release();
                continue;
            }
            if (throttled(rq)) {
                break;
            }
            Request<?> request = queue.tryAllocate(hctx, this);
            if (request == null) {
                waitForTag();
                break;
            }
            pending.pollFirst();
            boolean isLast = pending.isEmpty();
            boolean prepared;
            try {
                prepared = prepare(request, rq);
            } finally {
                rq.release();
            }
            if (!prepared) {
                continue;
            }
            inFlight++;
            // OWNERSHIP: the request and its slot's buffer belong to mq-core and the backend until completed().
            queue.submit(request, isLast);
            runOpen = !isLast;
        }
        if (runOpen) {
            queue.commit(hctx);
        }
        scheduleFlush();
        updateReading();
        maybeClose();
    }

    /**
     * Whether {@code rq} must wait for replies to drain: the channel is above its high-water mark, or
     * {@code rq} is a READ that would take this connection's READ bytes in flight past {@link
     * #MAX_READ_BYTES_IN_FLIGHT} (one READ is always allowed, so a READ of the largest payload proceeds).
     * {@link #channelWritabilityChanged} and READ completions resume the connection.
     */
    private boolean throttled(NbdRequest rq) {
        if (!ctx.channel().isWritable()) {
            return true;
        }
        return rq.command() == NbdCommand.READ && readBytesInFlight > 0
                && readBytesInFlight + rq.length() > MAX_READ_BYTES_IN_FLIGHT;
    }

    /** Submits the next pieces of split TRIMs and WRITE_ZEROES, each as a batch of its own. */
    private void submitChunks() {
        while (!chunks.isEmpty() && !waitingForTag && !closed) {
            Request<?> request = queue.tryAllocate(hctx, this);
            if (request == null) {
                waitForTag();
                break;
            }
            Chunk chunk = chunks.pollFirst();
            Slot slot = slots[request.tag()];
            slot.reset(chunk.cookie, chunk.command, chunk.replyOffset, chunk.nbdFlags);
            slot.op = chunk.op;
            slot.reqFlags = chunk.reqFlags;
            long length = Math.min(chunk.end - chunk.offset, MAX_ZERO_CHUNK);
            slot.chunkEnd = chunk.end;
            slot.chunkOffset = chunk.offset + length;
            request.prepare(chunk.op, chunk.reqFlags, chunk.offset, length, null);
            inFlight++;
            // OWNERSHIP: as in drain(); each piece is a batch of its own.
            queue.submit(request, true);
        }
    }

    /**
     * Reads the socket only while every decoded command has been submitted and the channel is writable;
     * never once the connection is ending.
     */
    private void updateReading() {
        boolean read = pending.isEmpty() && !waitingForTag && !disconnecting && !shuttingDown && !closed
                && ctx.channel().isWritable();
        if (ctx.channel().config().isAutoRead() != read) {
            ctx.channel().config().setAutoRead(read);
        }
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        if (ctx.channel().isWritable()) {
            drain();
        } else {
            updateReading();
        }
        ctx.fireChannelWritabilityChanged();
    }

    /**
     * Answers the commands the backend need not see: CACHE where it does nothing, and BLOCK_STATUS where
     * it cannot tell allocation (everything is "data", always true). Returns whether it answered.
     */
    private boolean answeredHere(NbdRequest rq) {
        if (rq.command() == NbdCommand.CACHE && !backendCache) {
            write(replies.succeeded(ctx.alloc(), rq.cookie(), rq.offset()));
            return true;
        }
        if (rq.command() == NbdCommand.BLOCK_STATUS && !backendExtents) {
            // An empty list makes Replies answer one "data" extent over the whole request.
            write(replies.blockStatus(
                    ctx.alloc(), rq.cookie(), rq.offset(), rq.length(), contextId, allData.reset(1), true));
            return true;
        }
        return false;
    }

    /**
     * Prepares {@code request} for {@code rq}. Returns false when it could not (no memory for the reply
     * buffer): the request is then given back and {@code rq} answered {@code ENOMEM}. The caller releases
     * {@code rq} either way.
     */
    private boolean prepare(Request<?> request, NbdRequest rq) {
        Slot slot = slots[request.tag()];
        slot.reset(rq.cookie(), Objects.requireNonNull(rq.command()), rq.offset(), rq.flags()); // validated
        try {
            fill(request, slot, rq);
            return true;
        } catch (OutOfMemoryError | RuntimeException e) {
            // OWNERSHIP: nothing was submitted: the buffer taken so far and the tag go back here.
            if (slot.buffer != null) {
                slot.buffer.release();
                slot.buffer = null;
            }
            slot.extentsInUse = null;
            queue.abandon(request);
            NO_MEMORY.log(Level.WARNING, () -> "export \"" + export.name() + "\": cannot prepare " + rq.command()
                    + " of " + rq.length() + " bytes; replying ENOMEM: " + e);
            write(replies.failed(ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), NbdError.ENOMEM.code()));
            return false;
        }
    }

    private void fill(Request<?> request, Slot slot, NbdRequest rq) {
        int flags = (rq.flags() & NbdConstants.CMD_FLAG_FUA) != 0 ? ReqFlags.FUA : 0;
        long offset = rq.offset();
        long length = rq.length();
        switch (Objects.requireNonNull(rq.command())) {
            case READ -> {
                int len = (int) length;
                if (readSegments && len >= SEGMENTED_READ_MIN) {
                    // The backend hands views of its memory, sent as they are: no copy into a reply buffer.
                    CompositeByteBuf reply = replies.allocateSegmentedRead(ctx.alloc());
                    slot.buffer = reply;
                    request.prepare(ReqOp.READ, flags, offset, length, null);
                    request.readSegments(slot.segments(reply));
                } else {
                    ByteBuf reply = replies.allocateRead(ctx.alloc(), len);
                    slot.buffer = reply;
                    request.prepare(ReqOp.READ, flags, offset, length, reply.nioBuffer(replies.dataIndex(), len));
                }
                if (structured && backendExtents && (rq.flags() & NbdConstants.CMD_FLAG_DF) == 0) {
                    // The backend may tell which parts are holes; they are then sent as OFFSET_HOLE.
                    request.extents(slot.extents(MAX_EXTENTS));
                }
                slot.readBytes = len;
                readBytesInFlight += len;
            }
            case WRITE -> {
                // OWNERSHIP: the slot keeps its own reference to the payload (or to a contiguous pooled copy when
                // the payload spans several inbound buffers), released on completion.
                ByteBuf payload = Objects.requireNonNull(rq.payload());
                int pieces = payload.nioBufferCount();
                if (pieces > 1 && writeSegments) {
                    // A scatter list of the inbound buffers: no copy.
                    ByteBuf owned = payload.retain();
                    slot.buffer = owned;
                    ByteBuffer[] segments = owned.nioBuffers();
                    request.prepare(ReqOp.WRITE, flags, offset, length, null).segments(segments, segments.length);
                    return;
                }
                ByteBuf owned = pieces == 1
                        ? payload.retain()
                        : ctx.alloc().directBuffer(payload.readableBytes()).writeBytes(payload, payload.readerIndex(),
                                payload.readableBytes());
                slot.buffer = owned;
                ByteBuffer data = owned.nioBuffer();
                request.prepare(ReqOp.WRITE, flags, offset, length, data);
            }
            case FLUSH -> request.prepare(ReqOp.FLUSH, flags, 0, 0, null);
            case TRIM -> prepareChunked(request, slot, ReqOp.DISCARD, flags, offset, length);
            case WRITE_ZEROES -> {
                if ((rq.flags() & NbdConstants.CMD_FLAG_NO_HOLE) != 0) {
                    flags |= ReqFlags.NO_UNMAP;
                }
                if ((rq.flags() & NbdConstants.CMD_FLAG_FAST_ZERO) != 0) {
                    flags |= ReqFlags.FAST_ZERO;
                }
                prepareChunked(request, slot, ReqOp.WRITE_ZEROES, flags, offset, length);
            }
            case CACHE -> request.prepare(ReqOp.CACHE, flags, offset, length, null);
            case BLOCK_STATUS -> {
                boolean one = (rq.flags() & NbdConstants.CMD_FLAG_REQ_ONE) != 0;
                // The reply may cover less than asked; the client asks again from where it ends.
                long span = Math.min(length, MAX_BLOCK_STATUS_SPAN);
                request.prepare(ReqOp.BLOCK_STATUS, flags, offset, span, null);
                request.extents(slot.extents(one ? 1 : MAX_EXTENTS));
                slot.length = span;
            }
            default -> throw new IllegalStateException("validated command cannot be submitted: " + rq.command());
        }
    }

    /** Prepares the first piece of a TRIM or WRITE_ZEROES; the rest goes to {@link #chunks} on completion. */
    private static void prepareChunked(Request<?> request, Slot slot, ReqOp op, int flags, long offset, long length) {
        long first = Math.min(length, MAX_ZERO_CHUNK);
        slot.op = op;
        slot.reqFlags = flags;
        slot.chunkOffset = offset + first;
        slot.chunkEnd = offset + length;
        request.prepare(op, flags, offset, first, null);
    }

    @Override
    public void completed(Request<?> request) {
        Slot slot = slots[request.tag()];
        int error = NbdErrors.code(request.status(), slot.command);
        long readBytes = slot.readBytes;
        if (error == 0 && slot.chunkOffset < slot.chunkEnd) {
            // A split TRIM or WRITE_ZEROES with more to do: no reply yet.
            Chunk next = new Chunk(slot.cookie, slot.command, slot.offset, slot.flags, slot.op, slot.reqFlags,
                    slot.chunkOffset, slot.chunkEnd);
            slot.chunkOffset = slot.chunkEnd = 0;
            // Scheduled, not executed: the event loop runs thousands of queued tasks before it polls the sockets
            // again, while a due scheduled task waits for the next turn, after I/O. So other connections are
            // served between the pieces (a piece submitted from here would also run on this very stack).
            ctx.executor().schedule(() -> continueChunk(next), CHUNK_YIELD_MICROS, TimeUnit.MICROSECONDS);
            return;
        }
        ByteBuf reply;
        try {
            reply = reply(slot, error, (int) request.length());
        } catch (OutOfMemoryError | RuntimeException e) {
            // The reply cannot be framed: this connection cannot go on in sync, so it closes.
            NO_MEMORY.log(Level.WARNING, () -> "export \"" + export.name() + "\": cannot encode the reply to "
                    + slot.command + "; closing the connection from " + ctx.channel().remoteAddress() + ": " + e);
            reply = null;
        }
        slot.buffer = null;
        slot.chunkOffset = slot.chunkEnd = 0;
        ByteBuf done = reply;
        if (ctx.executor().inEventLoop()) {
            finish(done, readBytes);
        } else {
            ctx.executor().execute(() -> finish(done, readBytes));
        }
    }

    private void continueChunk(Chunk next) {
        inFlight--;
        if (closed || shuttingDown) {
            // The rest is dropped with the connection; a stop answers what was done so far as failed.
            if (shuttingDown && !closed) {
                write(replies.failed(ctx.alloc(), next.cookie, next.replyOffset, next.command,
                        NbdError.ESHUTDOWN.code()));
            }
            maybeClose();
            return;
        }
        chunks.addLast(next);
        drain();
    }

    /** Encodes the reply of a completed request; its slot's buffer and extents are consumed here. */
    private ByteBuf reply(Slot slot, int error, int length) {
        ByteBuf buffer = slot.buffer;
        slot.buffer = null;
        if (error != 0) {
            if (buffer != null) {
                buffer.release();
            }
            if (LOG.isLoggable(Level.DEBUG)) {
                LOG.log(Level.DEBUG, "export \"" + export.name() + "\": " + slot.command + " failed with error " + error);
            }
            return replies.failed(ctx.alloc(), slot.cookie, slot.offset, slot.command, error);
        }
        if (slot.command == NbdCommand.READ && Objects.requireNonNull(buffer).capacity() != replies.dataIndex() + length) {
            // A READ_SEGMENTS driver handed more or fewer bytes than asked: a bug, never sent as data.
            LOG.log(Level.ERROR, "export \"" + export.name() + "\": the backend answered a READ of " + length
                    + " bytes with " + (buffer.capacity() - replies.dataIndex()) + " bytes; replying EIO");
            buffer.release();
            return replies.failed(ctx.alloc(), slot.cookie, slot.offset, slot.command, NbdError.EIO.code());
        }
        return switch (slot.command) {
            case READ -> replies.readSucceeded(ctx.alloc(), Objects.requireNonNull(buffer), slot.cookie, slot.offset, length,
                    slot.extentsInUse, (slot.flags & NbdConstants.CMD_FLAG_DF) != 0);
            case BLOCK_STATUS -> replies.blockStatus(ctx.alloc(), slot.cookie, slot.offset, slot.length, contextId,
                    Objects.requireNonNull(slot.extentsInUse), (slot.flags & NbdConstants.CMD_FLAG_REQ_ONE) != 0);
            default -> {
                if (buffer != null) {
                    buffer.release();
                }
                yield replies.succeeded(ctx.alloc(), slot.cookie, slot.offset);
            }
        };
    }

    private void finish(@Nullable ByteBuf reply, long readBytes) {
        inFlight--;
        readBytesInFlight -= readBytes;
        if (reply == null) {
            closed = true;
            ctx.close();
            return;
        }
        write(reply);
        if (readBytes > 0 && !pending.isEmpty() && !waitingForTag) {
            // READ bytes went out of flight: a READ that waited for them may go now.
            drain();
        } else {
            maybeClose();
        }
    }

    /** Queues a reply for the next flush; OWNERSHIP: the channel releases it once written or failed. */
    private void write(ByteBuf reply) {
        if (closed) {
            reply.release();
            return;
        }
        writer.write(reply);
        scheduleFlush();
    }

    private void scheduleFlush() {
        if (!flushScheduled) {
            flushScheduled = true;
            ctx.executor().execute(flushTask);
        }
    }

    private void flushNow() {
        flushScheduled = false;
        ctx.flush();
    }

    private void waitForTag() {
        waitingForTag = true;
        updateReading();
        queue.waitForTag(hctx, this);
    }

    @Override
    public void tagAvailable() {
        ctx.executor().execute(resumeTask);
    }

    private void resume() {
        if (!waitingForTag) {
            // Each freed tag wakes one waiter: pass on a wakeup this connection has no use for.
            queue.wakeNextWaiter(hctx);
            return;
        }
        waitingForTag = false;
        drain();
        updateReading();
        // The drain may have taken no tag (the commands were answered without one, or the connection is
        // closing): a tag still free goes to the next waiter.
        queue.wakeNextWaiter(hctx);
    }

    private void beginDisconnect() {
        // proto.md NBD_CMD_DISC: handle every outstanding request, then close.
        disconnecting = true;
        updateReading();
        releasePending();
    }

    /**
     * Starts a graceful stop of this connection: no new commands; those in flight finish and are answered;
     * then the connection closes. Commands already decoded but not started are answered ESHUTDOWN. Runs on
     * the channel's event loop.
     */
    public void shutdown() {
        if (!ctx.executor().inEventLoop()) {
            ctx.executor().execute(this::shutdown);
            return;
        }
        shuttingDown = true;
        updateReading();
        drain();
    }

    private void maybeClose() {
        if ((disconnecting || shuttingDown) && inFlight == 0 && pending.isEmpty() && chunks.isEmpty() && !closed) {
            closed = true;
            ctx.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        closed = true;
        chunks.clear();
        releasePending();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releasePending();
    }

    private void releasePending() {
        NbdRequest rq;
        while ((rq = pending.pollFirst()) != null) {
            rq.release();
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (discReceived && cause instanceof NbdCodecException) {
            // proto.md: nothing follows NBD_CMD_DISC. What did is ignored; the replies to the requests before
            // it still go out, and the connection closes after them (maybeClose).
            LOG.log(Level.DEBUG, () -> "ignoring bytes after NBD_CMD_DISC from " + ctx.channel().remoteAddress()
                    + ": " + cause.getMessage());
            return;
        }
        if (cause instanceof NbdCodecException) {
            CLOSES.log(Level.WARNING, () -> "closing connection from " + ctx.channel().remoteAddress()
                    + " to export \"" + export.name() + "\": " + cause.getMessage());
        } else if (cause instanceof IOException) {
            // The peer went away (reset, broken pipe) while replies were being read or written.
            CLOSES.log(Level.INFO, () -> "connection from " + ctx.channel().remoteAddress() + " to export \""
                    + export.name() + "\" lost: " + cause.getMessage());
        } else {
            LOG.log(Level.WARNING, "closing connection from " + ctx.channel().remoteAddress() + " to export \""
                    + export.name() + "\"", cause);
        }
        closed = true;
        ctx.close();
    }

    /** Returns whether this connection has work in flight or waiting; an idle connection has none. */
    public boolean busy() {
        return inFlight > 0 || !pending.isEmpty() || !chunks.isEmpty();
    }

    /** Returns the number of this connection's requests in flight; for tests. */
    int inFlight() {
        return inFlight;
    }

    /** The rest of a split TRIM or WRITE_ZEROES: {@code [offset, end)}, answered as {@code cookie} at {@code replyOffset}. */
    private record Chunk(long cookie, NbdCommand command, long replyOffset, int nbdFlags, ReqOp op, int reqFlags,
            long offset, long end) {}

    /** What a connection remembers of one of its requests in flight. */
    private static final class Slot {
        long cookie;
        NbdCommand command = NbdCommand.READ;
        long offset;
        long length;
        int flags;
        @Nullable ByteBuf buffer;
        /** The READ bytes this request counts in {@code readBytesInFlight}. */
        long readBytes;
        /** For a split TRIM or WRITE_ZEROES: the mq-core op and flags, where the next piece starts, the end. */
        ReqOp op = ReqOp.READ;
        int reqFlags;
        long chunkOffset;
        long chunkEnd;

        void reset(long cookie, NbdCommand command, long offset, int flags) {
            this.cookie = cookie;
            this.command = command;
            this.offset = offset;
            this.flags = flags;
            this.extentsInUse = null;
            this.readBytes = 0;
            this.chunkOffset = 0;
            this.chunkEnd = 0;
        }
        /** The slot's READ segment sink, created on first use and reused. */
        private @Nullable SegmentSink segments;
        /** The slot's extent sink, created on first use and reused. */
        private @Nullable ExtentList extents;
        /** The sink handed to the current request, or {@code null}. */
        @Nullable ExtentList extentsInUse;

        Segments segments(CompositeByteBuf reply) {
            if (segments == null) {
                segments = new SegmentSink();
            }
            segments.reply = reply;
            return segments;
        }

        ExtentList extents(int max) {
            if (extents == null) {
                extents = new ExtentList(MAX_EXTENTS);
            }
            extentsInUse = extents.reset(max);
            return extentsInUse;
        }
    }

    /** Appends a READ_SEGMENTS driver's views to the reply being built, wrapped without a copy. */
    private static final class SegmentSink implements Segments {
        @Nullable CompositeByteBuf reply;

        @Override
        public void add(ByteBuffer segment) {
            if (segment.hasRemaining()) {
                // OWNERSHIP: the wrapper only references the driver's memory; releasing it frees nothing.
                Objects.requireNonNull(reply).addComponent(true, Unpooled.wrappedBuffer(segment));
            }
        }
    }
}
