package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandlerContext;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import org.jspecify.annotations.Nullable;

/**
 * The export options of the handshake: {@code NBD_OPT_EXPORT_NAME}, {@code NBD_OPT_LIST}, {@code
 * NBD_OPT_INFO} and {@code NBD_OPT_GO}, and what they share: finding an export this client may use (a
 * refused export is treated exactly as a missing one, and the refusal logged) and the {@link NbdSession}
 * that transmission gets.
 *
 * <p><b>Threading:</b> part of one {@link NbdHandshakeHandler}, on its channel's event loop.
 */
final class NbdExportOptions {
    private final NbdHandshakeHandler h;

    NbdExportOptions(NbdHandshakeHandler h) {
        this.h = h;
    }

    /** proto.md "NBD_OPT_EXPORT_NAME": data is the name; reply u64 size, u16 flags, 124 zeroes unless NO_ZEROES. */
    boolean exportName(ChannelHandlerContext ctx, ByteBuf data) {
        if (h.extendedHeaders) {
            // Extended headers need GO: EXPORT_NAME cannot say how replies will be framed.
            h.close(ctx, data, "EXPORT_NAME after EXTENDED_HEADERS (expected: GO)");
            return false;
        }
        String name = data.toString(StandardCharsets.UTF_8);
        NbdExportInfo export = find(ctx, name);
        if (export == null) {
            // The option has no error reply: the server MUST terminate the session.
            h.close(ctx, data, "export: \"" + name + "\" (expected: a known export)");
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
    void list(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        if (data.isReadable()) {
            h.invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
            return;
        }
        NbdPeer peer = NbdTls.peer(ctx, h.tlsActive);
        for (NbdExportInfo export : h.exports.list()) {
            if (h.exports.allows(export, peer)) {
                ctx.write(NbdOptionReplies.server(alloc, h.option, export));
            }
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(alloc, h.option));
    }

    /**
     * proto.md "NBD_OPT_INFO and NBD_OPT_GO": replies NBD_INFO_EXPORT (mandatory), the requested
     * NAME/DESCRIPTION, BLOCK_SIZE, then ACK. Returns false if GO started transmission.
     */
    boolean infoOrGo(ChannelHandlerContext ctx, ByteBuf data) {
        ByteBufAllocator alloc = ctx.alloc();
        NbdInfoRequest request = NbdInfoRequest.parse(data);
        if (request.error() != null) {
            return h.invalid(ctx, request.error());
        }
        NbdExportInfo export = find(ctx, request.exportName());
        if (export == null) {
            ctx.writeAndFlush(unknownExport(alloc, request.exportName()));
            return true;
        }
        boolean go = h.option == NbdConstants.OPT_GO;
        NbdSession session = session(export, go);
        ctx.write(NbdOptionReplies.infoExport(alloc, h.option, export.size(), session.transmissionFlags()));
        if (request.wantName()) {
            ctx.write(NbdOptionReplies.infoText(alloc, h.option, NbdConstants.INFO_NAME, export.name()));
        }
        if (request.wantDescription()) {
            ctx.write(NbdOptionReplies.infoText(alloc, h.option, NbdConstants.INFO_DESCRIPTION, export.description()));
        }
        ctx.write(NbdOptionReplies.infoBlockSize(alloc, h.option, export));
        // After GO + ACK, transmission starts with no zero padding, whatever NO_ZEROES says.
        ctx.writeAndFlush(NbdOptionReplies.ack(alloc, h.option));
        if (go) {
            startTransmission(ctx, export, session);
            return false;
        }
        return true;
    }

    /** The reply for a missing export, and for one this client may not use: the two must not differ. */
    ByteBuf unknownExport(ByteBufAllocator alloc, String name) {
        return NbdOptionReplies.error(
                alloc, h.option, NbdConstants.REP_ERR_UNKNOWN, "export: \"" + name + "\" (expected: a known export)");
    }

    /** Returns export {@code name} if it exists and this client may use it, else {@code null}. */
    @Nullable
    NbdExportInfo find(ChannelHandlerContext ctx, String name) {
        NbdExportInfo export = h.exports.find(name);
        if (export == null) {
            return null;
        }
        NbdPeer peer = NbdTls.peer(ctx, h.tlsActive);
        if (!h.exports.allows(export, peer)) {
            ConnectionEvents.of(ctx.channel()).refused("access");
            NbdHandshakeHandler.REFUSALS.log(
                    Level.INFO, () -> "refused " + peer + " access to export \"" + export.name() + "\"");
            return null;
        }
        return export;
    }

    /** What transmission gets: the flags sent, the reply framing, the selected metadata context. */
    NbdSession session(NbdExportInfo export, boolean go) {
        int flags = (export.transmissionFlags() | NbdConstants.FLAG_HAS_FLAGS)
                & ~NbdHandshakeHandler.UNSUPPORTED_FLAGS
                & 0xffff;
        if (!h.structuredReplies) {
            // proto.md: SEND_DF MUST be clear unless structured replies were negotiated.
            flags &= ~NbdConstants.FLAG_SEND_DF;
        }
        // A context selected for another export does not carry over (proto.md "NBD_OPT_SET_META_CONTEXT").
        int context = export.name().equals(h.metaContextExport) ? NbdMetaContexts.BASE_ALLOCATION_ID : 0;
        return new NbdSession(h.clientFlags, flags, go, h.structuredReplies, h.extendedHeaders, context);
    }

    private void startTransmission(ChannelHandlerContext ctx, NbdExportInfo export, NbdSession session) {
        h.state = NbdHandshakeHandler.State.DONE;
        try {
            h.starter.start(ctx, export, session);
        } catch (RuntimeException e) {
            ctx.close();
            throw e;
        }
        // ORDER: the starter added the transmission handlers behind the handshake handler; removing it now makes
        // ByteToMessageDecoder pass what is left of the cumulation (requests the client pipelined after
        // GO/EXPORT_NAME) to them, once decode returns.
        ctx.pipeline().remove(h);
    }
}
