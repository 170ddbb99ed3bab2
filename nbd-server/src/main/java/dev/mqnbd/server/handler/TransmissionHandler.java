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
import dev.mqnbd.server.Export;
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
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;

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
 * <p>Back-pressure: when the hardware context has no free tag the connection stops reading its socket
 * and waits ({@link BlockQueue#waitForTag}); it resumes when a tag frees. Commands already decoded wait
 * in a deque bounded by one read's worth of bytes.
 *
 * <p><b>Ownership:</b> a WRITE payload (a retained slice of the inbound buffer) and a READ reply buffer
 * (header plus room for the data, filled in place by the backend) belong to the request's slot from
 * submit until completion, where they are written out or released. <b>Threading:</b> everything runs on
 * the channel's event loop; a completion that arrives on another thread is handed to it.
 */
public final class TransmissionHandler extends ChannelInboundHandlerAdapter implements RequestCompletion, TagWaiter {
    private static final System.Logger LOG = System.getLogger(TransmissionHandler.class.getName());

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

    /** Per-tag state of the requests this connection has in flight; tags are unique while in flight. */
    private final Slot[] slots;

    /** Reused for BLOCK_STATUS on backends that cannot tell allocation. */
    private final ExtentList allData = new ExtentList(1);

    private final Runnable resumeTask = this::resume;
    private final Runnable flushTask = this::flushNow;

    private ChannelHandlerContext ctx;
    private int inFlight;
    private boolean waitingForTag;
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
        pending.addLast(rq);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        drain();
        ctx.fireChannelReadComplete();
    }

    /** Submits pending commands until none is left or no tag is free. */
    private void drain() {
        boolean runOpen = false;
        while (!pending.isEmpty() && !waitingForTag) {
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
            Request<?> request = queue.tryAllocate(hctx, this);
            if (request == null) {
                waitForTag();
                break;
            }
            pending.pollFirst();
            boolean isLast = pending.isEmpty();
            prepare(request, rq);
            inFlight++;
            // OWNERSHIP: the request and its slot's buffer belong to mq-core and the backend until completed().
            queue.submit(request, isLast);
            runOpen = !isLast;
        }
        if (runOpen) {
            queue.commit(hctx);
        }
        scheduleFlush();
        maybeClose();
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

    private void prepare(Request<?> request, NbdRequest rq) {
        Slot slot = slots[request.tag()];
        slot.extentsInUse = null;
        slot.cookie = rq.cookie();
        slot.command = rq.command();
        slot.offset = rq.offset();
        slot.flags = rq.flags();
        int flags = (rq.flags() & NbdConstants.CMD_FLAG_FUA) != 0 ? ReqFlags.FUA : 0;
        long offset = rq.offset();
        long length = rq.length();
        switch (rq.command()) {
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
                rq.release();
            }
            case WRITE -> {
                // OWNERSHIP: the slot keeps its own reference to the payload (or to a contiguous pooled copy when
                // the payload spans several inbound buffers), released on completion.
                ByteBuf payload = rq.payload();
                int pieces = payload.nioBufferCount();
                if (pieces > 1 && writeSegments) {
                    // A scatter list of the inbound buffers: no copy.
                    ByteBuf owned = payload.retain();
                    rq.release();
                    slot.buffer = owned;
                    ByteBuffer[] segments = owned.nioBuffers();
                    request.prepare(ReqOp.WRITE, flags, offset, length, null).segments(segments, segments.length);
                    return;
                }
                ByteBuf owned = pieces == 1
                        ? payload.retain()
                        : ctx.alloc().directBuffer(payload.readableBytes()).writeBytes(payload, payload.readerIndex(),
                                payload.readableBytes());
                rq.release();
                slot.buffer = owned;
                ByteBuffer data = owned.nioBuffer();
                request.prepare(ReqOp.WRITE, flags, offset, length, data);
            }
            case FLUSH -> {
                request.prepare(ReqOp.FLUSH, flags, 0, 0, null);
                rq.release();
            }
            case TRIM -> {
                request.prepare(ReqOp.DISCARD, flags, offset, length, null);
                rq.release();
            }
            case WRITE_ZEROES -> {
                if ((rq.flags() & NbdConstants.CMD_FLAG_NO_HOLE) != 0) {
                    flags |= ReqFlags.NO_UNMAP;
                }
                if ((rq.flags() & NbdConstants.CMD_FLAG_FAST_ZERO) != 0) {
                    flags |= ReqFlags.FAST_ZERO;
                }
                request.prepare(ReqOp.WRITE_ZEROES, flags, offset, length, null);
                rq.release();
            }
            case CACHE -> {
                request.prepare(ReqOp.CACHE, flags, offset, length, null);
                rq.release();
            }
            case BLOCK_STATUS -> {
                boolean one = (rq.flags() & NbdConstants.CMD_FLAG_REQ_ONE) != 0;
                request.prepare(ReqOp.BLOCK_STATUS, flags, offset, length, null);
                request.extents(slot.extents(one ? 1 : MAX_EXTENTS));
                slot.length = length;
                rq.release();
            }
            default -> throw new IllegalStateException("validated command cannot be submitted: " + rq.command());
        }
    }

    @Override
    public void completed(Request<?> request) {
        Slot slot = slots[request.tag()];
        ByteBuf reply = reply(slot, NbdErrors.code(request.status()), (int) request.length());
        slot.buffer = null;
        if (ctx.executor().inEventLoop()) {
            finish(reply);
        } else {
            ctx.executor().execute(() -> finish(reply));
        }
    }

    /** Encodes the reply of a completed request; its slot's buffer and extents are consumed here. */
    private ByteBuf reply(Slot slot, int error, int length) {
        ByteBuf buffer = slot.buffer;
        if (error != 0) {
            if (buffer != null) {
                buffer.release();
            }
            if (LOG.isLoggable(Level.DEBUG)) {
                LOG.log(Level.DEBUG, "export \"" + export.name() + "\": " + slot.command + " failed with error " + error);
            }
            return replies.failed(ctx.alloc(), slot.cookie, slot.offset, slot.command, error);
        }
        if (slot.command == NbdCommand.READ && buffer.capacity() != replies.dataIndex() + length) {
            // A READ_SEGMENTS driver handed more or fewer bytes than asked: a bug, never sent as data.
            LOG.log(Level.ERROR, "export \"" + export.name() + "\": the backend answered a READ of " + length
                    + " bytes with " + (buffer.capacity() - replies.dataIndex()) + " bytes; replying EIO");
            buffer.release();
            return replies.failed(ctx.alloc(), slot.cookie, slot.offset, slot.command, NbdError.EIO.code());
        }
        return switch (slot.command) {
            case READ -> replies.readSucceeded(ctx.alloc(), buffer, slot.cookie, slot.offset, length,
                    slot.extentsInUse, (slot.flags & NbdConstants.CMD_FLAG_DF) != 0);
            case BLOCK_STATUS -> replies.blockStatus(ctx.alloc(), slot.cookie, slot.offset, slot.length, contextId,
                    slot.extentsInUse, (slot.flags & NbdConstants.CMD_FLAG_REQ_ONE) != 0);
            default -> {
                if (buffer != null) {
                    buffer.release();
                }
                yield replies.succeeded(ctx.alloc(), slot.cookie, slot.offset);
            }
        };
    }

    private void finish(ByteBuf reply) {
        inFlight--;
        write(reply);
        maybeClose();
    }

    /** Queues a reply for the next flush; OWNERSHIP: the channel releases it once written or failed. */
    private void write(ByteBuf reply) {
        if (closed) {
            reply.release();
            return;
        }
        // The void promise saves an allocation per reply; a failed write reaches exceptionCaught instead.
        ctx.write(reply, ctx.voidPromise());
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
        ctx.channel().config().setAutoRead(false);
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
        if (!waitingForTag && !disconnecting && !shuttingDown && !closed) {
            ctx.channel().config().setAutoRead(true);
        }
        // The drain may have taken no tag (the commands were answered without one, or the connection is
        // closing): a tag still free goes to the next waiter.
        queue.wakeNextWaiter(hctx);
    }

    private void beginDisconnect() {
        // proto.md NBD_CMD_DISC: handle every outstanding request, then close.
        disconnecting = true;
        ctx.channel().config().setAutoRead(false);
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
        ctx.channel().config().setAutoRead(false);
        drain();
    }

    private void maybeClose() {
        if ((disconnecting || shuttingDown) && inFlight == 0 && pending.isEmpty() && !closed) {
            closed = true;
            ctx.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        closed = true;
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
        if (cause instanceof NbdCodecException) {
            LOG.log(Level.WARNING, "closing connection from " + ctx.channel().remoteAddress() + " to export \""
                    + export.name() + "\": " + cause.getMessage());
        } else if (cause instanceof java.io.IOException) {
            // The peer went away (reset, broken pipe) while replies were being read or written.
            LOG.log(Level.INFO, "connection from " + ctx.channel().remoteAddress() + " to export \""
                    + export.name() + "\" lost: " + cause.getMessage());
        } else {
            LOG.log(Level.WARNING, "closing connection from " + ctx.channel().remoteAddress() + " to export \""
                    + export.name() + "\"", cause);
        }
        closed = true;
        ctx.close();
    }

    /** Returns the number of this connection's requests in flight; for tests. */
    int inFlight() {
        return inFlight;
    }

    /** What a connection remembers of one of its requests in flight. */
    private static final class Slot {
        long cookie;
        NbdCommand command;
        long offset;
        long length;
        int flags;
        ByteBuf buffer;
        /** The slot's READ segment sink, created on first use and reused. */
        private SegmentSink segments;
        /** The slot's extent sink, created on first use and reused. */
        private ExtentList extents;
        /** The sink handed to the current request, or {@code null}. */
        ExtentList extentsInUse;

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
        CompositeByteBuf reply;

        @Override
        public void add(ByteBuffer segment) {
            if (segment.hasRemaining()) {
                // OWNERSHIP: the wrapper only references the driver's memory; releasing it frees nothing.
                reply.addComponent(true, Unpooled.wrappedBuffer(segment));
            }
        }
    }
}
