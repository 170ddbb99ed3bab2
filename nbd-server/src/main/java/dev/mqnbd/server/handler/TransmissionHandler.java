package dev.mqnbd.server.handler;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.RequestCompletion;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagWaiter;
import dev.mqnbd.server.Export;
import dev.mqnbd.server.protocol.NbdCodecException;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import dev.mqnbd.server.protocol.NbdRequest;
import io.netty.buffer.ByteBuf;
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
 * becomes a simple reply.
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
    private static final int HEADER = NbdConstants.SIMPLE_REPLY_HEADER_LENGTH;

    private final Export export;
    private final BlockQueue<?, ?, ?, ?> queue;
    private final int hctx;
    private final RequestValidator validator;
    private final ArrayDeque<NbdRequest> pending = new ArrayDeque<>();

    /** Per-tag state of the requests this connection has in flight; tags are unique while in flight. */
    private final Slot[] slots;

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
     * @param hctx the hardware context serving this connection's event loop
     */
    public TransmissionHandler(Export export, int hctx) {
        this.export = export;
        this.queue = export.queue();
        this.hctx = hctx;
        this.validator = new RequestValidator(export.info());
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
                reply(rq.cookie(), NbdError.ESHUTDOWN.code());
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
                reply(rq.cookie(), error.code());
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

    private void prepare(Request<?> request, NbdRequest rq) {
        Slot slot = slots[request.tag()];
        slot.cookie = rq.cookie();
        slot.command = rq.command();
        int flags = (rq.flags() & NbdConstants.CMD_FLAG_FUA) != 0 ? ReqFlags.FUA : 0;
        long offset = rq.offset();
        long length = rq.length();
        switch (rq.command()) {
            case READ -> {
                int len = (int) length;
                ByteBuf reply = NbdReplyEncoder.readReply(ctx.alloc(), rq.cookie(), len);
                slot.buffer = reply;
                request.prepare(ReqOp.READ, flags, offset, length, reply.nioBuffer(HEADER, len));
                rq.release();
            }
            case WRITE -> {
                // OWNERSHIP: the slot keeps its own reference to the payload, released on completion.
                ByteBuf payload = rq.payload().retain();
                rq.release();
                slot.buffer = payload;
                ByteBuffer data = payload.nioBufferCount() == 1
                        ? payload.nioBuffer()
                        : ByteBuffer.allocateDirect(payload.readableBytes()).put(payload.nioBuffer()).flip();
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
                request.prepare(ReqOp.WRITE_ZEROES, flags, offset, length, null);
                rq.release();
            }
            default -> throw new IllegalStateException("validated command cannot be submitted: " + rq.command());
        }
    }

    @Override
    public void completed(Request<?> request) {
        Slot slot = slots[request.tag()];
        long cookie = slot.cookie;
        NbdCommand command = slot.command;
        ByteBuf buffer = slot.buffer;
        slot.buffer = null;
        int error = NbdErrors.code(request.status());
        int length = (int) request.length();
        if (ctx.executor().inEventLoop()) {
            finish(cookie, command, buffer, error, length);
        } else {
            ctx.executor().execute(() -> finish(cookie, command, buffer, error, length));
        }
    }

    private void finish(long cookie, NbdCommand command, ByteBuf buffer, int error, int length) {
        inFlight--;
        if (command == NbdCommand.READ && error == 0) {
            // OWNERSHIP: the filled reply buffer goes to the channel, which releases it once written.
            buffer.writerIndex(HEADER + length);
            ctx.write(buffer);
        } else {
            if (buffer != null) {
                buffer.release();
            }
            if (error != 0 && LOG.isLoggable(Level.DEBUG)) {
                LOG.log(Level.DEBUG, "export \"" + export.name() + "\": " + command + " failed with error " + error);
            }
            reply(cookie, error);
        }
        scheduleFlush();
        maybeClose();
    }

    private void reply(long cookie, int error) {
        if (!closed) {
            ctx.write(NbdReplyEncoder.simpleReply(ctx.alloc(), cookie, error));
        }
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
            return;
        }
        waitingForTag = false;
        drain();
        if (!waitingForTag && !disconnecting && !shuttingDown && !closed) {
            ctx.channel().config().setAutoRead(true);
        }
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
        ByteBuf buffer;
    }
}
