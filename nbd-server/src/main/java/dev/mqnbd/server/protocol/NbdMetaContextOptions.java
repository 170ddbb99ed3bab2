package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;

/**
 * The options that shape transmission replies: {@code NBD_OPT_STRUCTURED_REPLY}, {@code
 * NBD_OPT_EXTENDED_HEADERS}, and the metadata contexts ({@code NBD_OPT_LIST_META_CONTEXT}, {@code
 * NBD_OPT_SET_META_CONTEXT}; only {@code base:allocation} exists). What they select is kept in the handler
 * until {@link NbdExportOptions#session} hands it to transmission.
 *
 * <p><b>Threading:</b> part of one {@link NbdHandshakeHandler}, on its channel's event loop.
 */
final class NbdMetaContextOptions {
    private final NbdHandshakeHandler h;

    NbdMetaContextOptions(NbdHandshakeHandler h) {
        this.h = h;
    }

    /** proto.md "NBD_OPT_STRUCTURED_REPLY": no data; ACK turns structured replies on. */
    void structuredReply(ChannelHandlerContext ctx, ByteBuf data) {
        if (data.isReadable()) {
            h.invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
        } else if (h.extendedHeaders) {
            // Extended headers already imply (and take precedence over) structured replies.
            ctx.writeAndFlush(NbdOptionReplies.error(
                    ctx.alloc(),
                    h.option,
                    NbdConstants.REP_ERR_EXT_HEADER_REQD,
                    "structured replies: extended headers are already in use"));
        } else {
            h.structuredReplies = true;
            ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), h.option));
        }
    }

    /** Extended headers (proto.md extension-ext-header): no data; ACK turns on 32-byte headers both ways. */
    void extendedHeaders(ChannelHandlerContext ctx, ByteBuf data) {
        if (data.isReadable()) {
            h.invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
            return;
        }
        if (!h.extendedHeaders) {
            h.extendedHeaders = true;
            h.structuredReplies = true;
            // Metadata contexts selected before are dropped: their replies would change shape.
            h.metaContextExport = null;
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), h.option));
    }

    /** proto.md "NBD_OPT_LIST_META_CONTEXT" / "NBD_OPT_SET_META_CONTEXT": only base:allocation exists. */
    void metaContext(ChannelHandlerContext ctx, ByteBuf data) {
        boolean list = h.option == NbdConstants.OPT_LIST_META_CONTEXT;
        if (!h.structuredReplies) {
            h.invalid(ctx, "meta contexts need structured replies (expected: NBD_OPT_STRUCTURED_REPLY first)");
            return;
        }
        NbdMetaContexts.Query query = NbdMetaContexts.parse(data, list);
        if (query.error() != null) {
            h.invalid(ctx, query.error());
            return;
        }
        if (h.exportOptions.find(ctx, query.exportName()) == null) {
            ctx.writeAndFlush(h.exportOptions.unknownExport(ctx.alloc(), query.exportName()));
            return;
        }
        if (!list) {
            // SET replaces the selection, also with nothing.
            h.metaContextExport = query.baseAllocation() ? query.exportName() : null;
        }
        if (query.baseAllocation()) {
            // The id of a LIST reply is reserved and SHOULD be 0.
            int id = list ? 0 : NbdMetaContexts.BASE_ALLOCATION_ID;
            ctx.write(NbdOptionReplies.metaContext(ctx.alloc(), h.option, id, NbdMetaContexts.BASE_ALLOCATION));
        }
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), h.option));
    }
}
