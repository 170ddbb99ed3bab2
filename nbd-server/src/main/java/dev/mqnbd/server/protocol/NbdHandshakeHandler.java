package dev.mqnbd.server.protocol;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
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
 * <p>Supported: {@code EXPORT_NAME}, {@code ABORT}, {@code LIST}, {@code STARTTLS} (unless {@link NbdTls} is
 * off), {@code INFO}, {@code GO}, {@code STRUCTURED_REPLY}, {@code LIST_META_CONTEXT} and {@code
 * SET_META_CONTEXT} (the {@code base:allocation} context), {@code EXTENDED_HEADERS}. Every other option gets
 * {@code NBD_REP_ERR_UNSUP}. Plain newstyle clients (without {@code C_FIXED_NEWSTYLE}) may only send {@code
 * EXPORT_NAME}.
 *
 * <p>TLS: {@code STARTTLS} is answered {@code ACK} in the clear; then an {@link SslHandler} goes in behind
 * this handler, a fresh handshake handler (which forgets everything negotiated so far, as the spec requires)
 * behind that, and this handler removes itself, passing whatever the client already sent (its TLS
 * ClientHello) to the {@code SslHandler}. In {@link NbdTlsMode#REQUIRE} mode every option but {@code
 * STARTTLS} and {@code ABORT} is answered {@code NBD_REP_ERR_TLS_REQD} until then, without looking at it.
 *
 * <p>Access: an export that {@link NbdExports#allows} refuses to this client is treated exactly as a
 * missing one, and the refusal is logged.
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

    private static final System.Logger LOG = System.getLogger(NbdHandshakeHandler.class.getName());
    /** Refusals and closes a client can cause at will. */
    private static final RateLimitedLog REFUSALS = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    // proto.md "Handshake": the server MUST close if the client sets a flag it does not know or did not get.
    private static final int HANDSHAKE_FLAGS =
            NbdConstants.HANDSHAKE_FLAG_FIXED_NEWSTYLE | NbdConstants.HANDSHAKE_FLAG_NO_ZEROES;
    private static final int KNOWN_CLIENT_FLAGS =
            NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES;
    // Not offered: filtering block status by context needs a payload on BLOCK_STATUS, which is not supported.
    private static final int UNSUPPORTED_FLAGS = NbdConstants.FLAG_BLOCK_STATUS_PAYLOAD;

    private enum State {
        CLIENT_FLAGS,
        OPTION_HEADER,
        OPTION_DATA,
        DISCARD_OPTION_DATA,
        /** Transmission or TLS started, the client aborted, or the connection is closing: input is ignored. */
        DONE
    }

    private final NbdExports exports;
    private final NbdTransmissionStarter starter;
    private final int maximumOptionLength;
    private final NbdTls tls;
    /** Whether this handler sits behind the {@link SslHandler} that {@code STARTTLS} added. */
    private final boolean tlsActive;

    private State state;
    private boolean greeted;
    /** The options read so far on this connection, both sides of STARTTLS. */
    private int options;
    /** Whether reading stopped because the channel is not writable. */
    private boolean paused;
    private int clientFlags;
    // The option being read (OPTION_DATA) or drained (DISCARD_OPTION_DATA): its code, its data length, and
    // how much of that is still to come.
    private int option;
    private long optionLength;
    private long remaining;
    // What the client negotiated so far.
    private boolean structuredReplies;
    private boolean extendedHeaders;
    // The export whose base:allocation context the last SET_META_CONTEXT selected, or null.
    private @Nullable String metaContextExport;

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
    private NbdHandshakeHandler(NbdHandshakeHandler clear) {
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
        for (;; ) {
            switch (state) {
                case CLIENT_FLAGS -> {
                    // <here> u32 client flags
                    if (in.readableBytes() < 4) {
                        return;
                    }
                    int flags = in.readInt();
                    if ((flags & ~KNOWN_CLIENT_FLAGS) != 0) {
                        close(ctx, in, "client flags: 0x" + Integer.toHexString(flags) + " (expected: bits of 0x"
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
                    ctx.writeAndFlush(mustStartTlsFirst()
                            ? tlsRequired(ctx.alloc())
                            : NbdOptionReplies.error(ctx.alloc(), option, NbdConstants.REP_ERR_TOO_BIG,
                                    "option length: " + optionLength + " (expected: <= " + maximumOptionLength + ")"));
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
            close(ctx, in, "option magic: 0x" + Long.toHexString(magic) + " (expected: 0x"
                    + Long.toHexString(NbdConstants.IHAVEOPT) + ")");
            return false;
        }
        option = in.readInt();
        optionLength = in.readUnsignedInt();
        if (++options > maxOptions()) {
            REFUSALS.log(Level.INFO, () -> "closing connection from " + NbdTls.peer(ctx, tlsActive) + ": more than "
                    + maxOptions() + " options in the handshake");
            close(ctx, in, "options: " + options + " (expected: <= " + maxOptions() + ")");
            return false;
        }
        if ((clientFlags & NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE) == 0 && option != NbdConstants.OPT_EXPORT_NAME) {
            // proto.md "Newstyle negotiation": without fixed newstyle an unknown option closes the connection.
            close(ctx, in, "option: " + option + " (expected: EXPORT_NAME from a client without C_FIXED_NEWSTYLE)");
            return false;
        }
        if (option == NbdConstants.OPT_EXPORT_NAME && mustStartTlsFirst()) {
            // proto.md "TLS support", FORCEDTLS: EXPORT_NAME has no error reply, so the server MUST close.
            REFUSALS.log(Level.INFO, () -> "closing connection from " + NbdTls.peer(ctx, tlsActive)
                    + ": NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS, and TLS is required");
            close(ctx, in, "EXPORT_NAME before STARTTLS (expected: STARTTLS first)");
            return false;
        }
        if (option == NbdConstants.OPT_EXPORT_NAME && optionLength > NbdConstants.MAX_STRING_LENGTH) {
            // EXPORT_NAME cannot be answered with an error; an over-long name is a MUST violation.
            close(ctx, in, "export name length: " + optionLength + " (expected: <= "
                    + NbdConstants.MAX_STRING_LENGTH + ")");
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

    /** Returns whether the current option must be refused because TLS is required and not yet started. */
    private boolean mustStartTlsFirst() {
        return tls.required() && !tlsActive && option != NbdConstants.OPT_STARTTLS
                && option != NbdConstants.OPT_ABORT;
    }

    private ByteBuf tlsRequired(ByteBufAllocator alloc) {
        return NbdOptionReplies.error(
                alloc, option, NbdConstants.REP_ERR_TLS_REQD, "TLS is required (expected: NBD_OPT_STARTTLS first)");
    }

    /**
     * Acts on one option whose data has been read whole. Returns false if option haggling ended here
     * (transmission or TLS started, or the connection is closing).
     */
    private boolean handleOption(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        if (mustStartTlsFirst()) {
            // proto.md "TLS support", FORCEDTLS: nothing about the exports is revealed before TLS.
            ctx.writeAndFlush(tlsRequired(alloc));
            return true;
        }
        switch (option) {
            case NbdConstants.OPT_EXPORT_NAME -> {
                return exportName(ctx, data);
            }
            case NbdConstants.OPT_ABORT -> {
                // proto.md "NBD_OPT_ABORT": the server MUST reply ACK (ignoring any data), then close.
                state = State.DONE;
                ctx.writeAndFlush(NbdOptionReplies.ack(alloc, option)).addListener(ChannelFutureListener.CLOSE);
                return false;
            }
            case NbdConstants.OPT_LIST -> list(ctx, data);
            case NbdConstants.OPT_STARTTLS -> {
                return startTls(ctx, data);
            }
            case NbdConstants.OPT_INFO, NbdConstants.OPT_GO -> {
                return infoOrGo(ctx, data);
            }
            case NbdConstants.OPT_STRUCTURED_REPLY -> structuredReply(ctx, data);
            case NbdConstants.OPT_EXTENDED_HEADERS -> extendedHeaders(ctx, data);
            case NbdConstants.OPT_LIST_META_CONTEXT, NbdConstants.OPT_SET_META_CONTEXT -> metaContext(ctx, data);
            default -> ctx.writeAndFlush(NbdOptionReplies.error(
                    alloc, option, NbdConstants.REP_ERR_UNSUP, "option: " + option + " (not supported)"));
        }
        return true;
    }

    /**
     * proto.md "NBD_OPT_STARTTLS": no data; ACK in the clear, then the TLS handshake, then option haggling
     * goes on inside TLS. Returns false if TLS started.
     */
    private boolean startTls(ChannelHandlerContext ctx, ByteBuf data) {
        if (!tls.enabled()) {
            // NOTLS mode: proto.md allows ERR_UNSUP (or ERR_POLICY); answered as any unsupported option.
            ctx.writeAndFlush(NbdOptionReplies.error(
                    ctx.alloc(), option, NbdConstants.REP_ERR_UNSUP, "option: " + option + " (not supported)"));
            return true;
        }
        if (tlsActive) {
            return invalid(ctx, "STARTTLS: TLS is already in use");
        }
        if (data.isReadable()) {
            return invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
        }
        state = State.DONE;
        // ORDER: the ACK leaves from this handler's place, in front of the SslHandler, so it goes out in the
        // clear. Then: head | ... | this | tls | handshake inside TLS. Removing this handler passes the bytes the
        // client sent after STARTTLS (its ClientHello, if it did not wait) to the SslHandler, once decode
        // returns and before any later read, so nothing is lost or reordered.
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), option));
        ChannelPipeline pipeline = ctx.pipeline();
        SslHandler ssl = tls.newHandler(ctx.alloc());
        String sslName = ctx.name() + "-tls";
        pipeline.addAfter(ctx.name(), sslName, ssl);
        pipeline.addAfter(sslName, ctx.name() + "-in-tls", new NbdHandshakeHandler(this));
        pipeline.remove(this);
        return false;
    }

    /** proto.md "NBD_OPT_EXPORT_NAME": data is the name; reply u64 size, u16 flags, 124 zeroes unless NO_ZEROES. */
    private boolean exportName(ChannelHandlerContext ctx, ByteBuf data) {
        if (extendedHeaders) {
            // Extended headers need GO: EXPORT_NAME cannot say how replies will be framed.
            close(ctx, data, "EXPORT_NAME after EXTENDED_HEADERS (expected: GO)");
            return false;
        }
        String name = data.toString(StandardCharsets.UTF_8);
        NbdExportInfo export = find(ctx, name);
        if (export == null) {
            // The option has no error reply: the server MUST terminate the session.
            close(ctx, data, "export: \"" + name + "\" (expected: a known export)");
            return false;
        }
        NbdSession session = session(export, false);
        int padding = session.noZeroes() ? 0 : NbdConstants.EXPORT_NAME_PADDING;
        ByteBuf reply = ctx.alloc().buffer(10 + padding);
        reply.writeLong(export.size());
        reply.writeShort(session.transmissionFlags());
        reply.writeZero(padding);
        ctx.writeAndFlush(reply);
        startTransmission(ctx, export, session);
        return false;
    }

    /** proto.md "NBD_OPT_LIST": no data; one NBD_REP_SERVER per export this client may use, then ACK. */
    private void list(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        if (data.isReadable()) {
            invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
            return;
        }
        NbdPeer peer = NbdTls.peer(ctx, tlsActive);
        for (NbdExportInfo export : exports.list()) {
            if (exports.allows(export, peer)) {
                ctx.write(NbdOptionReplies.server(alloc, option, export));
            }
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(alloc, option));
    }

    /**
     * proto.md "NBD_OPT_INFO and NBD_OPT_GO": replies NBD_INFO_EXPORT (mandatory), the requested
     * NAME/DESCRIPTION, BLOCK_SIZE, then ACK. Returns false if GO started transmission.
     */
    private boolean infoOrGo(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        NbdInfoRequest request = NbdInfoRequest.parse(data);
        if (request.error() != null) {
            return invalid(ctx, request.error());
        }
        NbdExportInfo export = find(ctx, request.exportName());
        if (export == null) {
            ctx.writeAndFlush(unknownExport(alloc, request.exportName()));
            return true;
        }
        boolean go = option == NbdConstants.OPT_GO;
        NbdSession session = session(export, go);
        ctx.write(NbdOptionReplies.infoExport(alloc, option, export.size(), session.transmissionFlags()));
        if (request.wantName()) {
            ctx.write(NbdOptionReplies.infoText(alloc, option, NbdConstants.INFO_NAME, export.name()));
        }
        if (request.wantDescription()) {
            ctx.write(NbdOptionReplies.infoText(alloc, option, NbdConstants.INFO_DESCRIPTION, export.description()));
        }
        ctx.write(NbdOptionReplies.infoBlockSize(alloc, option, export));
        // After GO + ACK, transmission starts with no zero padding, whatever NO_ZEROES says.
        ctx.writeAndFlush(NbdOptionReplies.ack(alloc, option));
        if (go) {
            startTransmission(ctx, export, session);
            return false;
        }
        return true;
    }

    private boolean invalid(ChannelHandlerContext ctx, String message) {
        ctx.writeAndFlush(NbdOptionReplies.error(ctx.alloc(), option, NbdConstants.REP_ERR_INVALID, message));
        return true;
    }

    /** The reply for a missing export, and for one this client may not use: the two must not differ. */
    private ByteBuf unknownExport(ByteBufAllocator alloc, String name) {
        return NbdOptionReplies.error(
                alloc, option, NbdConstants.REP_ERR_UNKNOWN, "export: \"" + name + "\" (expected: a known export)");
    }

    /** Returns export {@code name} if it exists and this client may use it, else {@code null}. */
    private @Nullable NbdExportInfo find(ChannelHandlerContext ctx, String name) {
        NbdExportInfo export = exports.find(name);
        if (export == null) {
            return null;
        }
        NbdPeer peer = NbdTls.peer(ctx, tlsActive);
        if (!exports.allows(export, peer)) {
            REFUSALS.log(Level.INFO, () -> "refused " + peer + " access to export \"" + export.name() + "\"");
            return null;
        }
        return export;
    }

    /** What transmission gets: the flags sent, the reply framing, the selected metadata context. */
    private NbdSession session(NbdExportInfo export, boolean go) {
        int flags = (export.transmissionFlags() | NbdConstants.FLAG_HAS_FLAGS) & ~UNSUPPORTED_FLAGS & 0xffff;
        if (!structuredReplies) {
            // proto.md: SEND_DF MUST be clear unless structured replies were negotiated.
            flags &= ~NbdConstants.FLAG_SEND_DF;
        }
        // A context selected for another export does not carry over (proto.md "NBD_OPT_SET_META_CONTEXT").
        int context = export.name().equals(metaContextExport) ? NbdMetaContexts.BASE_ALLOCATION_ID : 0;
        return new NbdSession(clientFlags, flags, go, structuredReplies, extendedHeaders, context);
    }

    /** proto.md "NBD_OPT_STRUCTURED_REPLY": no data; ACK turns structured replies on. */
    private void structuredReply(ChannelHandlerContext ctx, ByteBuf data) {
        if (data.isReadable()) {
            invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
        } else if (extendedHeaders) {
            // Extended headers already imply (and take precedence over) structured replies.
            ctx.writeAndFlush(NbdOptionReplies.error(ctx.alloc(), option, NbdConstants.REP_ERR_EXT_HEADER_REQD,
                    "structured replies: extended headers are already in use"));
        } else {
            structuredReplies = true;
            ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), option));
        }
    }

    /** Extended headers (proto.md extension-ext-header): no data; ACK turns on 32-byte headers both ways. */
    private void extendedHeaders(ChannelHandlerContext ctx, ByteBuf data) {
        if (data.isReadable()) {
            invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
            return;
        }
        if (!extendedHeaders) {
            extendedHeaders = true;
            structuredReplies = true;
            // Metadata contexts selected before are dropped: their replies would change shape.
            metaContextExport = null;
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), option));
    }

    /** proto.md "NBD_OPT_LIST_META_CONTEXT" / "NBD_OPT_SET_META_CONTEXT": only base:allocation exists. */
    private void metaContext(ChannelHandlerContext ctx, ByteBuf data) {
        boolean list = option == NbdConstants.OPT_LIST_META_CONTEXT;
        if (!structuredReplies) {
            invalid(ctx, "meta contexts need structured replies (expected: NBD_OPT_STRUCTURED_REPLY first)");
            return;
        }
        NbdMetaContexts.Query query = NbdMetaContexts.parse(data, list);
        if (query.error() != null) {
            invalid(ctx, query.error());
            return;
        }
        if (find(ctx, query.exportName()) == null) {
            ctx.writeAndFlush(unknownExport(ctx.alloc(), query.exportName()));
            return;
        }
        if (!list) {
            // SET replaces the selection, also with nothing.
            metaContextExport = query.baseAllocation() ? query.exportName() : null;
        }
        if (query.baseAllocation()) {
            // The id of a LIST reply is reserved and SHOULD be 0.
            int id = list ? 0 : NbdMetaContexts.BASE_ALLOCATION_ID;
            ctx.write(NbdOptionReplies.metaContext(ctx.alloc(), option, id, NbdMetaContexts.BASE_ALLOCATION));
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), option));
    }

    private void startTransmission(ChannelHandlerContext ctx, NbdExportInfo export, NbdSession session) {
        state = State.DONE;
        try {
            starter.start(ctx, export, session);
        } catch (RuntimeException e) {
            ctx.close();
            throw e;
        }
        // ORDER: the starter added the transmission handlers behind this one; removing this handler now makes
        // ByteToMessageDecoder pass what is left of the cumulation (requests the client pipelined after
        // GO/EXPORT_NAME) to them, once decode returns.
        ctx.pipeline().remove(this);
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) throws Exception {
        if (evt instanceof SslHandshakeCompletionEvent done && tlsActive) {
            if (done.isSuccess()) {
                LOG.log(Level.DEBUG,
                        () -> "TLS with " + NbdTls.peer(ctx, tlsActive) + ": " + NbdTls.describeSession(ctx));
            } else {
                // The SslHandler has sent its alert and closes the connection.
                REFUSALS.log(Level.INFO, () -> "TLS handshake with " + NbdTls.peer(ctx, tlsActive) + " failed: "
                        + NbdTls.failureMessage(done.cause()));
                state = State.DONE;
                ctx.close();
            }
        }
        super.userEventTriggered(ctx, evt);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        state = State.DONE;
        if (NbdTls.causedBy(cause, SSLException.class) || NbdTls.causedBy(cause, IOException.class)) {
            // A failed TLS handshake was logged with its completion event; a reset connection is no news.
            LOG.log(Level.DEBUG, () -> "closing connection from " + NbdTls.peer(ctx, tlsActive) + " in the handshake: "
                    + NbdTls.failureMessage(cause));
            ctx.close();
            return;
        }
        ctx.close();
        ctx.fireExceptionCaught(cause);
    }

    private void close(ChannelHandlerContext ctx, ByteBuf in, String reason) {
        LOG.log(Level.DEBUG, () -> ctx.channel() + ": closing in the handshake: " + reason);
        state = State.DONE;
        in.skipBytes(in.readableBytes());
        ctx.close();
    }
}
