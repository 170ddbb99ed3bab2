package dev.mqnbd.server.protocol;

import io.netty.channel.ChannelHandlerContext;

/**
 * Sets up the transmission phase when a client ends option haggling with {@code NBD_OPT_GO} or {@code
 * NBD_OPT_EXPORT_NAME}.
 *
 * <p>The implementation adds the transmission handlers right behind the handshake handler, e.g. {@code
 * ctx.pipeline().addAfter(ctx.name(), "nbd-decoder", new NbdRequestDecoder(max))}. It must not remove the
 * handshake handler: that handler removes itself afterwards and passes any bytes the client already sent
 * to the handlers just added.
 *
 * <p><b>Threading:</b> called on the channel's event loop; must not block.
 */
@FunctionalInterface
public interface NbdTransmissionStarter {
    /**
     * Starts transmission for {@code export}. The handshake replies have already been flushed.
     *
     * @param ctx the handshake handler's context
     * @param export the export the client chose
     * @param session what the handshake negotiated
     */
    void start(ChannelHandlerContext ctx, NbdExportInfo export, NbdSession session);
}
