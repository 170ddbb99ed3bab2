package dev.mqnbd.server.handler;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Request;
import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdReplyEncoder;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.server.protocol.PayloadAdmission;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.jspecify.annotations.Nullable;

/**
 * The transmission phase of one connection: each decoded {@link NbdRequest} becomes one mq-core {@link
 * Request} on the hardware context that serves this connection's event loop (large READs and WRITEs
 * may go to the other contexts in turn, see {@link #allocate}), and each completion becomes a reply in
 * the framing the handshake negotiated ({@link NbdReplyEncoder}).
 *
 * <p>This class takes the commands in and submits them; each other job has its own class: preparing a
 * request for a command ({@link RequestPreparer}), back-pressure ({@link BackPressure}), splitting long
 * TRIMs and WRITE_ZEROES ({@link ZeroChunks}), replies ({@link ReplyDispatch}, {@link ReplyWriter}, {@link
 * FlushScheduler}), and the end of the connection ({@link ConnectionEnd}).
 *
 * <p>Batching: the commands decoded from one socket read are one batch; the last one is submitted with
 * {@code isLast}, and a batch cut short (an invalid last command, no free tag) is closed with {@link
 * BlockQueue#commit}. Replies are written as requests complete and flushed once per batch of
 * completions.
 *
 * <p>Errors: a request whose preparation fails (no memory for its reply buffer) gives its tag back and
 * is answered {@code ENOMEM}; a reply that cannot be encoded or written closes the connection ({@link
 * ReplyWriter}). Per-event log lines are rate-limited.
 *
 * <p><b>Ownership:</b> a WRITE payload (a retained slice of the inbound buffer) and a READ reply buffer
 * (header plus room for the data, filled in place by the backend) belong to the request's slot from
 * submit until completion, where they are written out or released. <b>Threading:</b> everything runs on
 * the channel's event loop but the two callbacks mq-core may run on another thread: a completion, when
 * the hardware context runs on another loop, and a freed tag; each hands a preallocated task to the
 * channel's loop ({@link ReplyDispatch}, {@link BackPressure}).
 */
public final class TransmissionHandler extends ChannelInboundHandlerAdapter {
    static final System.Logger LOG = System.getLogger(TransmissionHandler.class.getName());
    /** Lost connections and protocol violations: a client can cause them at will. */
    static final RateLimitedLog CLOSES = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    /** Requests that could not be prepared or answered for want of memory. */
    static final RateLimitedLog NO_MEMORY = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /** The most READ bytes one connection keeps in flight before it stops submitting (one READ is always allowed). */
    public static final long MAX_READ_BYTES_IN_FLIGHT = 64L << 20;
    /** The most WRITE bytes one connection keeps in flight before it stops submitting (one WRITE is always allowed). */
    public static final long MAX_WRITE_BYTES_IN_FLIGHT = 64L << 20;
    /** The longest range one TRIM or WRITE_ZEROES dispatch covers; longer ones are split. */
    public static final long MAX_ZERO_CHUNK = 1L << 30;
    /** The longest range one BLOCK_STATUS reply covers. */
    public static final long MAX_BLOCK_STATUS_SPAN = 1L << 30;

    final Export export;
    final BlockQueue<?, ?, ?, ?> queue;
    final int hctx;
    final NbdReplyEncoder encoder;
    final int contextId;
    private final RequestValidator validator;
    private final boolean backendCache;
    private final boolean backendExtents;
    /** Commands decoded and not yet submitted or answered. */
    final ArrayDeque<NbdRequest> pending = new ArrayDeque<>();
    /**
     * Per-tag state of the requests this connection has in flight, per hardware context (tags are unique
     * within a context while in flight); a context's slots are made when the connection first uses it,
     * and it has none until then.
     */
    private final Slot[][] slots;
    /** READs of at least this many bytes may go to any hardware context; 0: never. */
    private final int spreadReads;
    /** WRITEs of at least this many bytes may go to any hardware context; 0: never. */
    private final int spreadWrites;
    /** The context the next large request goes to, in turn. */
    private int spreadNext;
    /** Reused for BLOCK_STATUS on backends that cannot tell allocation. */
    private final ExtentList allData = new ExtentList(1);

    final ReplyDispatch dispatch = new ReplyDispatch(this);
    final BackPressure flow;
    final ZeroChunks chunks = new ZeroChunks(this);
    final ConnectionEnd end = new ConnectionEnd(this);
    private final RequestPreparer preparer;

    ChannelHandlerContext ctx;
    private ReplyWriter writer;
    private FlushScheduler flusher;
    /** Requests submitted and not yet answered, and split requests between two pieces. */
    int inFlight;

    private boolean draining;
    private boolean redrain;

    /** What each request carries as its attachment: which connection it came from. */
    String peer = "-";

    /**
     * Creates the handler of one connection.
     *
     * @param session what the handshake negotiated (reply framing, metadata context)
     * @param hctx the hardware context serving this connection's event loop
     * @param spreadReads READs of at least this many bytes go to the export's hardware contexts in turn,
     *     so one connection's large transfers run on several threads; 0 keeps them on {@code hctx}
     * @param spreadWrites the same for WRITEs. Both only where a FLUSH on one context covers writes
     *     completed on every other ({@link Feature#SHARED_FLUSH}).
     * @param bufferBudget the export's bound on READ and WRITE buffers in flight ({@link BufferBudget#forExport}), shared by its connections
     */
    public TransmissionHandler(
            Export export, NbdSession session, int hctx, int spreadReads, int spreadWrites, BufferBudget bufferBudget) {
        this.export = export;
        this.flow = new BackPressure(this, bufferBudget);
        this.queue = export.queue();
        this.hctx = hctx;
        boolean spreads = queue.hwQueues() > 1 && queue.limits().has(Feature.SHARED_FLUSH);
        this.spreadReads = spreads ? spreadReads : 0;
        this.spreadWrites = spreads ? spreadWrites : 0;
        this.spreadNext = hctx;
        this.validator = new RequestValidator(export.info(), session);
        this.encoder = NbdReplyEncoder.forSession(session);
        this.contextId = session.baseAllocationContext();
        this.backendCache = queue.limits().has(Feature.CACHE);
        this.backendExtents = queue.limits().has(Feature.BLOCK_STATUS);
        this.preparer = new RequestPreparer(this, queue.limits());
        this.slots = new Slot[queue.hwQueues()][0];
        slotsOf(hctx);
    }

    /** Creates the handler of one connection with no server-wide bound on request buffers in flight. */
    public TransmissionHandler(Export export, NbdSession session, int hctx, int spreadReads, int spreadWrites) {
        this(export, session, hctx, spreadReads, spreadWrites, BufferBudget.UNLIMITED);
    }

    private Slot[] slotsOf(int index) {
        Slot[] of = slots[index];
        if (of.length == 0) {
            of = new Slot[queue.tagSet().queueDepth()];
            for (int i = 0; i < of.length; i++) {
                of[i] = new Slot(dispatch);
            }
            slots[index] = of;
        }
        return of;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        this.ctx = ctx;
        this.writer = new ReplyWriter(ctx, export.name());
        this.flusher = new FlushScheduler(ctx);
        this.peer = peer(ctx);
    }

    /** Names the connection for the filters below (the log filter's {@code conn=}): the client's address and port. */
    private static String peer(ChannelHandlerContext ctx) {
        SocketAddress remote = ctx.channel().remoteAddress();
        if (remote instanceof InetSocketAddress inet) {
            return inet.getAddress().getHostAddress() + ":" + inet.getPort();
        }
        return "unix#" + ctx.channel().id().asShortText();
    }

    /** Returns the slot of a request this connection took; safe from any thread once the slot exists. */
    Slot slot(Request<?> request) {
        return slots[request.hwIndex()][request.tag()];
    }

    /** Returns the slot of a request just taken, making its context's slots on first use. Event loop only. */
    Slot newSlot(Request<?> request) {
        return slotsOf(request.hwIndex())[request.tag()];
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof NbdRequest rq)) {
            ctx.fireChannelRead(msg);
            return;
        }
        if (end.disconnecting || end.closed || end.handingOver) {
            // proto.md: after NBD_CMD_DISC the client sends nothing more; drop what it sent anyway. After a
            // hand-over began, what the client sends is left to the next server: a reconnecting client resends it.
            rq.release();
            return;
        }
        if (rq.command() == NbdCommand.DISC) {
            // What follows DISC is not read as requests; a decoding error it causes must not cut the replies
            // to the requests before it short (exceptionCaught).
            end.discReceived = true;
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
     * bytes as it may ({@link BackPressure#throttled}).
     */
    void drain() {
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
        chunks.submit();
        boolean runOpen = false;
        while (!pending.isEmpty() && !flow.waitingForTag && !end.closed) {
            NbdRequest rq = pending.peekFirst();
            if (end.shuttingDown) {
                pending.pollFirst();
                write(encoder.failed(ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), NbdError.ESHUTDOWN.code()));
                rq.release();
                continue;
            }
            if (rq.command() == NbdCommand.DISC) {
                pending.pollFirst();
                rq.release();
                end.beginDisconnect();
                break;
            }
            NbdError error = validator.validate(rq);
            if (error != null) {
                pending.pollFirst();
                write(encoder.failed(ctx.alloc(), rq.cookie(), rq.offset(), rq.command(), error.code()));
                rq.release();
                continue;
            }
            if (answeredHere(rq)) {
                pending.pollFirst();
                rq.release();
                continue;
            }
            if (flow.throttled(rq)) {
                break;
            }
            Request<?> request = allocate(rq);
            if (request == null) {
                flow.waitForTag();
                break;
            }
            pending.pollFirst();
            request.attach(peer);
            Slot slot = dispatch.claim(request);
            boolean home = request.hwIndex() == hctx;
            // A request on another context is a batch of its own; the home context's batch stays open.
            boolean isLast = !home || pending.isEmpty();
            boolean prepared;
            try {
                prepared = preparer.prepare(request, slot, rq);
            } finally {
                rq.release();
            }
            if (!prepared) {
                continue;
            }
            inFlight++;
            // OWNERSHIP: the request and its slot's buffer belong to mq-core and the backend until completed().
            queue.submit(request, isLast);
            if (home) {
                runOpen = !isLast;
            }
        }
        if (runOpen) {
            queue.commit(hctx);
        }
        flusher.schedule();
        flow.update();
        end.maybeClose();
    }

    /**
     * Takes a request for {@code rq}: on the next context in turn for a READ of at least {@link
     * #spreadReads} or a WRITE of at least {@link #spreadWrites} bytes (blk-mq's submitter is not its
     * hardware queue: the backend's copy then runs on that context's thread while this loop goes on),
     * else, or when that context has no free tag, on this connection's own context.
     */
    private @Nullable Request<?> allocate(NbdRequest rq) {
        int min = rq.command() == NbdCommand.READ ? spreadReads : rq.command() == NbdCommand.WRITE ? spreadWrites : 0;
        if (min > 0 && rq.length() >= min) {
            int to = spreadNext;
            spreadNext = to + 1 == slots.length ? 0 : to + 1;
            if (to != hctx) {
                Request<?> request = queue.tryAllocate(to, dispatch);
                if (request != null) {
                    return request;
                }
            }
        }
        return queue.tryAllocate(hctx, dispatch);
    }

    /**
     * Answers the commands the backend need not see: CACHE where it does nothing, and BLOCK_STATUS where
     * it cannot tell allocation (everything is "data", always true). Returns whether it answered.
     */
    private boolean answeredHere(NbdRequest rq) {
        if (rq.command() == NbdCommand.CACHE && !backendCache) {
            write(encoder.succeeded(ctx.alloc(), rq.cookie(), rq.offset()));
            return true;
        }
        if (rq.command() == NbdCommand.BLOCK_STATUS && !backendExtents) {
            // An empty list is answered as one "data" extent over the whole request.
            write(dispatch.blockStatus(rq.cookie(), rq.offset(), rq.length(), allData.reset(1), true));
            return true;
        }
        return false;
    }

    /** Queues a reply for the next flush; OWNERSHIP: the channel releases it once written or failed. */
    void write(ByteBuf reply) {
        if (end.closed) {
            reply.release();
            return;
        }
        writer.write(reply);
        flusher.schedule();
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        flow.writabilityChanged();
        ctx.fireChannelWritabilityChanged();
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
        end.shutdown();
    }

    /**
     * Starts handing this connection over to the next server process: commands already read finish and are
     * answered (added to {@code answered}), later ones are dropped unanswered, then the connection closes
     * without an error reply. Runs on the channel's event loop.
     */
    public void handOver(LongAdder answered) {
        if (!ctx.executor().inEventLoop()) {
            ctx.executor().execute(() -> handOver(answered));
            return;
        }
        end.handOver(answered);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        end.closed = true;
        chunks.clear();
        releasePending();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        releasePending();
    }

    void releasePending() {
        NbdRequest rq;
        while ((rq = pending.pollFirst()) != null) {
            rq.release();
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        end.exceptionCaught(ctx, cause);
    }

    /** Returns what reserves room for this connection's payloads before the decoder reads them. */
    public PayloadAdmission payloadAdmission() {
        return flow;
    }

    /** Whether a READ of {@code length} bytes takes a reply buffer of its own ({@link BufferBudget}). */
    boolean readTakesBuffer(long length) {
        return preparer.takesBuffer(length);
    }

    /** Returns whether this connection has work in flight or waiting; an idle connection has none. */
    public boolean busy() {
        return inFlight > 0 || !pending.isEmpty() || !chunks.isEmpty() || flow.waitingForRoom();
    }

    /** Returns the number of this connection's requests in flight; for tests. */
    int inFlight() {
        return inFlight;
    }
}
