package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslHandshakeCompletionEvent;
import java.lang.System.Logger.Level;

/**
 * {@code NBD_OPT_STARTTLS} and the switch to TLS: the {@code ACK} goes out in the clear, then an {@link
 * SslHandler} goes in behind the handshake handler, a fresh handshake handler (which forgets what was
 * negotiated so far, as proto.md requires) behind that, and the old handler removes itself, passing
 * whatever the client already sent (its TLS ClientHello) to the {@code SslHandler}.
 *
 * <p><b>Threading:</b> part of one {@link NbdHandshakeHandler}, on its channel's event loop.
 */
final class NbdStartTls {
    private final NbdHandshakeHandler h;

    NbdStartTls(NbdHandshakeHandler h) {
        this.h = h;
    }

    /**
     * proto.md "NBD_OPT_STARTTLS": no data; ACK in the clear, then the TLS handshake, then option haggling
     * goes on inside TLS. Returns false if TLS started.
     */
    boolean startTls(ChannelHandlerContext ctx, ByteBuf data) {
        if (!h.tls.enabled()) {
            // NOTLS mode: proto.md allows ERR_UNSUP (or ERR_POLICY); answered as any unsupported option.
            ctx.writeAndFlush(NbdOptionReplies.error(
                    ctx.alloc(), h.option, NbdConstants.REP_ERR_UNSUP, "option: " + h.option + " (not supported)"));
            return true;
        }
        if (h.tlsActive) {
            return h.invalid(ctx, "STARTTLS: TLS is already in use");
        }
        if (data.isReadable()) {
            return h.invalid(ctx, "option length: " + data.readableBytes() + " (expected: 0)");
        }
        h.state = NbdHandshakeHandler.State.DONE;
        // ORDER: the ACK leaves from the handshake handler's place, in front of the SslHandler, so it goes out in the
        // clear. Then: head | ... | handshake | tls | handshake inside TLS. Removing the first passes the bytes the
        // client sent after STARTTLS (its ClientHello, if it did not wait) to the SslHandler, once decode
        // returns and before any later read, so nothing is lost or reordered.
        ctx.writeAndFlush(NbdOptionReplies.ack(ctx.alloc(), h.option));
        ChannelPipeline pipeline = ctx.pipeline();
        SslHandler ssl = h.tls.newHandler(ctx.alloc());
        String sslName = ctx.name() + "-tls";
        pipeline.addAfter(ctx.name(), sslName, ssl);
        pipeline.addAfter(sslName, ctx.name() + "-in-tls", new NbdHandshakeHandler(h));
        pipeline.remove(h);
        return false;
    }

    /** Returns whether the current option must be refused because TLS is required and not yet started. */
    boolean mustStartTlsFirst() {
        return h.tls.required()
                && !h.tlsActive
                && h.option != NbdConstants.OPT_STARTTLS
                && h.option != NbdConstants.OPT_ABORT;
    }

    ByteBuf tlsRequired(ByteBufAllocator alloc) {
        return NbdOptionReplies.error(
                alloc, h.option, NbdConstants.REP_ERR_TLS_REQD, "TLS is required (expected: NBD_OPT_STARTTLS first)");
    }

    /** The TLS handshake inside the handler behind the {@code SslHandler} ended. */
    void handshakeCompleted(ChannelHandlerContext ctx, SslHandshakeCompletionEvent done) {
        if (done.isSuccess()) {
            NbdHandshakeHandler.LOG.log(
                    Level.DEBUG,
                    () -> "TLS with " + NbdTls.peer(ctx, h.tlsActive) + ": " + NbdTls.describeSession(ctx));
        } else {
            // The SslHandler has sent its alert and closes the connection.
            ConnectionEvents.of(ctx.channel()).handshakeFailed("tls");
            NbdHandshakeHandler.REFUSALS.log(
                    Level.INFO,
                    () -> "TLS handshake with " + NbdTls.peer(ctx, h.tlsActive) + " failed: "
                            + NbdTls.failureMessage(done.cause()));
            h.state = NbdHandshakeHandler.State.DONE;
            ctx.close();
        }
    }
}
