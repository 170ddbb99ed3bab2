package dev.mqnbd.server.protocol;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLException;
import org.jspecify.annotations.Nullable;

/**
 * The server side of the fixed newstyle handshake (proto.md "Handshake", "Fixed newstyle negotiation",
 * "Option types", "TLS support"): sends the greeting, reads the client flags, answers options, and hands the
 * connection to an {@link NbdTransmissionStarter} on {@code NBD_OPT_GO} or {@code NBD_OPT_EXPORT_NAME}. Then
 * it removes itself; bytes the client sent after that option go to the handlers the starter added.
 *
 * <p>Supported: {@code ABORT} here, and the families of {@link NbdExportOptions} ({@code EXPORT_NAME},
 * {@code LIST}, {@code INFO}, {@code GO}), {@link NbdMetaContextOptions} ({@code STRUCTURED_REPLY}, {@code
 * EXTENDED_HEADERS}, {@code LIST_META_CONTEXT}, {@code SET_META_CONTEXT}) and {@link NbdStartTls} ({@code
 * STARTTLS} unless {@link NbdTls} is off, and the switch to TLS), each in its class, split by phase as
 * nbdkit's {@code protocol-handshake-newstyle.c}; this class is the option framing state machine. Every
 * other option gets {@code NBD_REP_ERR_UNSUP}. Plain newstyle clients (without {@code C_FIXED_NEWSTYLE})
 * may only send {@code EXPORT_NAME}.
 *
 * <p>TLS: see {@link NbdStartTls}. In {@link NbdTlsMode#REQUIRE} mode every option but {@code STARTTLS}
 * and {@code ABORT} is answered {@code NBD_REP_ERR_TLS_REQD} until then, without looking at it.
 *
 * <p>Violations of a MUST, which leave no way to answer, close the connection: unknown client flags, a
 * bad option magic, an unknown or refused export in {@code EXPORT_NAME}, {@code EXPORT_NAME} before TLS when
 * TLS is required, any other option from a plain newstyle client, and option data above {@link
 * #OPTION_LENGTH_LIMIT} (taken for a denial-of-service attempt). Option data above the handler's maximum,
 * but within the limit, is drained unbuffered and answered {@code NBD_REP_ERR_TOO_BIG}.
 *
 * <p>Abuse: a connection may send at most {@link #MAX_OPTIONS} options, plus {@link #MAX_OPTIONS_PER_EXPORT}
 * for each export listed (STARTTLS does not reset the count); the next one closes it. While the channel
 * is not writable (the client does not read its replies and they are above the channel's high-water
 * mark), no further option is read or answered until they drain. Per-event log lines are rate-limited.
 *
 * <p><b>Ownership:</b> option data is read whole into the cumulation and acted on at once; nothing is
 * kept across calls, so a client closing mid-option leaks nothing ({@link ByteToMessageDecoder} releases
 * the cumulation). Replies are handed to the channel.
 *
 * <p><b>Threading:</b> one instance per channel, used on its event loop only.
 *
 * <p><b>Length:</b> about 440 lines, over the ~400 the project aims at, on purpose: what is left after
 * the option families moved out is one state machine (greeting, client flags, option header, option
 * data, drain) whose every transition carries an abuse bound (option count, length limits, pausing on
 * an unwritable channel). Splitting it would spread one set of invariants over several files.
 */
public final class NbdHandshakeHandler extends ByteToMessageDecoder {
    /** The default largest option data buffered: room for INFO/GO and meta-context queries of long names. */
    public static final int DEFAULT_MAXIMUM_OPTION_LENGTH = 16 * 1024;
    /** Option data longer than this (1 MiB) closes the connection: no NBD option needs that much. */
    public static final int OPTION_LENGTH_LIMIT = 1024 * 1024;

    /**
     * The options any connection may send (nbdkit closes after 32); with many exports, {@link
     * #MAX_OPTIONS_PER_EXPORT} more per export, since {@code nbdinfo --list} asks about each.
     */
    public static final int MAX_OPTIONS = 64;
    /** The options a connection may send for each export, on top of {@link #MAX_OPTIONS}. */
    public static final int MAX_OPTIONS_PER_EXPORT = 8;

    static final System.Logger LOG = System.getLogger(NbdHandshakeHandler.class.getName());
    /** Refusals and closes a client can cause at will. */
    static final RateLimitedLog REFUSALS = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    // proto.md "Handshake": the server MUST close if the client sets a flag it does not know or did not get.
    private static final int HANDSHAKE_FLAGS =
            NbdConstants.HANDSHAKE_FLAG_FIXED_NEWSTYLE | NbdConstants.HANDSHAKE_FLAG_NO_ZEROES;
    private static final int KNOWN_CLIENT_FLAGS =
            NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES;
    // Not offered: filtering block status by context needs a payload on BLOCK_STATUS, which is not supported.
    static final int UNSUPPORTED_FLAGS = NbdConstants.FLAG_BLOCK_STATUS_PAYLOAD;

    enum State {
        CLIENT_FLAGS,
        OPTION_HEADER,
        OPTION_DATA,
        DISCARD_OPTION_DATA,
        /** Transmission or TLS started, the client aborted, or the connection is closing: input is ignored. */
        DONE
    }

    final NbdExports exports;
    final NbdTransmissionStarter starter;
    private final int maximumOptionLength;
    final NbdTls tls;
    /** Whether this handler sits behind the {@code SslHandler} that {@code STARTTLS} added. */
    final boolean tlsActive;

    State state;
    private boolean greeted;
    /** The options read so far on this connection, both sides of STARTTLS. */
    private int options;
    /** Whether reading stopped because the channel is not writable. */
    private boolean paused;

    int clientFlags;
    // The option being read (OPTION_DATA) or drained (DISCARD_OPTION_DATA): its code, its data length, and
    // how much of that is still to come.
    int option;
    private long optionLength;
    private long remaining;
    // What the client negotiated so far.
    boolean structuredReplies;
    boolean extendedHeaders;
    // The export whose base:allocation context the last SET_META_CONTEXT selected, or null.
    @Nullable
    String metaContextExport;

    // The option families: export info and GO, reply framing and meta contexts, STARTTLS.
    final NbdExportOptions exportOptions = new NbdExportOptions(this);
    final NbdMetaContextOptions metaOptions = new NbdMetaContextOptions(this);
    final NbdStartTls tlsOption = new NbdStartTls(this);

    /** Creates a handler without TLS that buffers at most {@link #DEFAULT_MAXIMUM_OPTION_LENGTH} bytes of options. */
    public NbdHandshakeHandler(NbdExports exports, NbdTransmissionStarter starter) {
        this(exports, starter, DEFAULT_MAXIMUM_OPTION_LENGTH);
    }

    /**
     * Creates a handler without TLS.
     *
     * @param maximumOptionLength the largest option data to buffer; longer data is answered {@code
     *     NBD_REP_ERR_TOO_BIG}
     * @throws IllegalArgumentException if {@code maximumOptionLength} is negative or above {@link
     *     #OPTION_LENGTH_LIMIT}
     */
    public NbdHandshakeHandler(NbdExports exports, NbdTransmissionStarter starter, int maximumOptionLength) {
        this(exports, starter, maximumOptionLength, NbdTls.off());
    }

    /**
     * Creates a handler.
     *
     * @param maximumOptionLength the largest option data to buffer; longer data is answered {@code
     *     NBD_REP_ERR_TOO_BIG}
     * @param tls whether {@code NBD_OPT_STARTTLS} is offered or required, and with what context
     * @throws IllegalArgumentException if {@code maximumOptionLength} is negative or above {@link
     *     #OPTION_LENGTH_LIMIT}
     */
    public NbdHandshakeHandler(
            NbdExports exports, NbdTransmissionStarter starter, int maximumOptionLength, NbdTls tls) {
        if (maximumOptionLength < 0 || maximumOptionLength > OPTION_LENGTH_LIMIT) {
            throw new IllegalArgumentException("maximumOptionLength: " + maximumOptionLength
                    + " (expected: >= 0 and <= " + OPTION_LENGTH_LIMIT + ")");
        }
        this.exports = exports;
        this.starter = starter;
        this.maximumOptionLength = maximumOptionLength;
        this.tls = tls;
        this.tlsActive = false;
        this.state = State.CLIENT_FLAGS;
    }

    /**
     * The handler that goes on inside TLS after {@code clear} answered {@code STARTTLS}. proto.md
     * "NBD_OPT_STARTTLS": the server MUST forget what was negotiated before TLS (structured replies,
     * metadata contexts, extended headers); greeting and client flags stand.
     */
    NbdHandshakeHandler(NbdHandshakeHandler clear) {
        this.exports = clear.exports;
        this.starter = clear.starter;
        this.maximumOptionLength = clear.maximumOptionLength;
        this.tls = clear.tls;
        this.tlsActive = true;
        this.greeted = true;
        this.clientFlags = clear.clientFlags;
        this.options = clear.options;
        this.state = State.OPTION_HEADER;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            greet(ctx);
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        greet(ctx);
        super.channelActive(ctx);
    }

    private void greet(ChannelHandlerContext ctx) {
        if (greeted) {
            return;
        }
        greeted = true;
        // proto.md "Newstyle negotiation": u64 NBDMAGIC | u64 IHAVEOPT | u16 handshake flags
        ByteBuf greeting = ctx.alloc().buffer(NbdConstants.GREETING_LENGTH);
        greeting.writeLong(NbdConstants.NBDMAGIC);
        greeting.writeLong(NbdConstants.IHAVEOPT);
        greeting.writeShort(HANDSHAKE_FLAGS);
        ctx.writeAndFlush(greeting);
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        for (; ; ) {
            switch (state) {
                case CLIENT_FLAGS -> {
                    // <here> u32 client flags
                    if (in.readableBytes() < 4) {
                        return;
                    }
                    int flags = in.readInt();
                    if ((flags & ~KNOWN_CLIENT_FLAGS) != 0) {
                        close(
                                ctx,
                                in,
                                "client flags: 0x" + Integer.toHexString(flags) + " (expected: bits of 0x"
                                        + Integer.toHexString(KNOWN_CLIENT_FLAGS) + ")");
                        return;
                    }
                    clientFlags = flags;
                    state = State.OPTION_HEADER;
                }
                case OPTION_HEADER -> {
                    // <here> u64 IHAVEOPT | u32 option | u32 length | data
                    if (in.readableBytes() < NbdConstants.OPTION_HEADER_LENGTH) {
                        return;
                    }
                    if (!ctx.channel().isWritable()) {
                        // Back-pressure: the client is not reading its replies; answer more once it does.
                        pause(ctx);
                        return;
                    }
                    if (!decodeOptionHeader(ctx, in)) {
                        return;
                    }
                }
                case OPTION_DATA -> {
                    // header <here> {data: optionLength bytes}
                    if (in.readableBytes() < optionLength) {
                        return;
                    }
                    // OWNERSHIP: an unretained slice, used only until handleOption returns.
                    ByteBuf data = in.readSlice((int) optionLength);
                    state = State.OPTION_HEADER;
                    if (!handleOption(ctx, data)) {
                        // Transmission or TLS started (this handler is being removed and the rest of `in` goes to
                        // the next handler), or the connection is closing: touch nothing more.
                        return;
                    }
                }
                case DISCARD_OPTION_DATA -> {
                    // header {data: <here> optionLength bytes}: skipped as they arrive, never buffered.
                    int skip = (int) Math.min(remaining, in.readableBytes());
                    in.skipBytes(skip);
                    remaining -= skip;
                    if (remaining > 0) {
                        return;
                    }
                    state = State.OPTION_HEADER;
                    ctx.writeAndFlush(
                            tlsOption.mustStartTlsFirst()
                                    ? tlsOption.tlsRequired(ctx.alloc())
                                    : NbdOptionReplies.error(
                                            ctx.alloc(),
                                            option,
                                            NbdConstants.REP_ERR_TOO_BIG,
                                            "option length: " + optionLength + " (expected: <= " + maximumOptionLength
                                                    + ")"));
                }
                case DONE -> {
                    in.skipBytes(in.readableBytes());
                    return;
                }
            }
        }
    }

    /** Reads an option header; returns false if the connection is being closed. */
    private boolean decodeOptionHeader(ChannelHandlerContext ctx, ByteBuf in) {
        long magic = in.readLong();
        if (magic != NbdConstants.IHAVEOPT) {
            close(
                    ctx,
                    in,
                    "option magic: 0x" + Long.toHexString(magic) + " (expected: 0x"
                            + Long.toHexString(NbdConstants.IHAVEOPT) + ")");
            return false;
        }
        option = in.readInt();
        optionLength = in.readUnsignedInt();
        if (++options > maxOptions()) {
            REFUSALS.log(
                    Level.INFO,
                    () -> "closing connection from " + NbdTls.peer(ctx, tlsActive) + ": more than " + maxOptions()
                            + " options in the handshake");
            close(ctx, in, "options: " + options + " (expected: <= " + maxOptions() + ")");
            return false;
        }
        if ((clientFlags & NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE) == 0 && option != NbdConstants.OPT_EXPORT_NAME) {
            // proto.md "Newstyle negotiation": without fixed newstyle an unknown option closes the connection.
            close(ctx, in, "option: " + option + " (expected: EXPORT_NAME from a client without C_FIXED_NEWSTYLE)");
            return false;
        }
        if (option == NbdConstants.OPT_EXPORT_NAME && tlsOption.mustStartTlsFirst()) {
            // proto.md "TLS support", FORCEDTLS: EXPORT_NAME has no error reply, so the server MUST close.
            ConnectionEvents.of(ctx.channel()).refused("tls");
            REFUSALS.log(
                    Level.INFO,
                    () -> "closing connection from " + NbdTls.peer(ctx, tlsActive)
                            + ": NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS, and TLS is required");
            close(ctx, in, "EXPORT_NAME before STARTTLS (expected: STARTTLS first)");
            return false;
        }
        if (option == NbdConstants.OPT_EXPORT_NAME && optionLength > NbdConstants.MAX_STRING_LENGTH) {
            // EXPORT_NAME cannot be answered with an error; an over-long name is a MUST violation.
            close(
                    ctx,
                    in,
                    "export name length: " + optionLength + " (expected: <= " + NbdConstants.MAX_STRING_LENGTH + ")");
            return false;
        }
        if (optionLength > OPTION_LENGTH_LIMIT) {
            close(ctx, in, "option length: " + optionLength + " (expected: <= " + OPTION_LENGTH_LIMIT + ")");
            return false;
        }
        remaining = optionLength;
        state = optionLength > maximumOptionLength ? State.DISCARD_OPTION_DATA : State.OPTION_DATA;
        return true;
    }

    /** Returns the most options this connection may send: {@link #MAX_OPTIONS} plus some per export. */
    private int maxOptions() {
        return MAX_OPTIONS + MAX_OPTIONS_PER_EXPORT * exports.list().size();
    }

    /** Stops reading until the channel is writable again ({@link #channelWritabilityChanged}). */
    private void pause(ChannelHandlerContext ctx) {
        paused = true;
        ctx.channel().config().setAutoRead(false);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) throws Exception {
        if (paused && ctx.channel().isWritable() && state != State.DONE) {
            paused = false;
            ctx.channel().config().setAutoRead(true);
            // Answer what was read before the pause: an empty read runs the decoder over the cumulation.
            channelRead(ctx, Unpooled.EMPTY_BUFFER);
        }
        super.channelWritabilityChanged(ctx);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) throws Exception {
        if (paused) {
            // ByteToMessageDecoder would ask for another read when a read produced no message (it never does
            // here) and auto-read is off: while paused, nothing more is read.
            discardSomeReadBytes();
            ctx.fireChannelReadComplete();
            return;
        }
        super.channelReadComplete(ctx);
    }

    /**
     * Acts on one option whose data has been read whole. Returns false if option haggling ended here
     * (transmission or TLS started, or the connection is closing).
     */
    private boolean handleOption(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        if (tlsOption.mustStartTlsFirst()) {
            // proto.md "TLS support", FORCEDTLS: nothing about the exports is revealed before TLS.
            ctx.writeAndFlush(tlsOption.tlsRequired(alloc));
            return true;
        }
        switch (option) {
            case NbdConstants.OPT_EXPORT_NAME -> {
                return exportOptions.exportName(ctx, data);
            }
            case NbdConstants.OPT_ABORT -> {
                // proto.md "NBD_OPT_ABORT": the server MUST reply ACK (ignoring any data), then close.
                state = State.DONE;
                ctx.writeAndFlush(NbdOptionReplies.ack(alloc, option)).addListener(ChannelFutureListener.CLOSE);
                return false;
            }
            case NbdConstants.OPT_LIST -> exportOptions.list(ctx, data);
            case NbdConstants.OPT_STARTTLS -> {
                return tlsOption.startTls(ctx, data);
            }
            case NbdConstants.OPT_INFO, NbdConstants.OPT_GO -> {
                return exportOptions.infoOrGo(ctx, data);
            }
            case NbdConstants.OPT_STRUCTURED_REPLY -> metaOptions.structuredReply(ctx, data);
            case NbdConstants.OPT_EXTENDED_HEADERS -> metaOptions.extendedHeaders(ctx, data);
            case NbdConstants.OPT_LIST_META_CONTEXT, NbdConstants.OPT_SET_META_CONTEXT ->
                metaOptions.metaContext(ctx, data);
            default ->
                ctx.writeAndFlush(NbdOptionReplies.error(
                        alloc, option, NbdConstants.REP_ERR_UNSUP, "option: " + option + " (not supported)"));
        }
        return true;
    }

    boolean invalid(ChannelHandlerContext ctx, String message) {
        ctx.writeAndFlush(NbdOptionReplies.error(ctx.alloc(), option, NbdConstants.REP_ERR_INVALID, message));
        return true;
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
        if (evt instanceof SslHandshakeCompletionEvent done && tlsActive) {
            tlsOption.handshakeCompleted(ctx, done);
        }
        super.userEventTriggered(ctx, evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        if (state != State.DONE) {
            ConnectionEvents.of(ctx.channel()).handshakeFailed("io");
        }
        state = State.DONE;
        if (NbdTls.causedBy(cause, SSLException.class) || NbdTls.causedBy(cause, IOException.class)) {
            // A failed TLS handshake was logged with its completion event; a reset connection is no news.
            LOG.log(
                    Level.DEBUG,
                    () -> "closing connection from " + NbdTls.peer(ctx, tlsActive) + " in the handshake: "
                            + NbdTls.failureMessage(cause));
            ctx.close();
            return;
        }
        ctx.close();
        ctx.fireExceptionCaught(cause);
    }

    void close(ChannelHandlerContext ctx, ByteBuf in, String reason) {
        LOG.log(Level.DEBUG, () -> ctx.channel() + ": closing in the handshake: " + reason);
        ConnectionEvents.of(ctx.channel()).handshakeFailed("protocol");
        state = State.DONE;
        in.skipBytes(in.readableBytes());
        ctx.close();
    }
}
