package dev.mqnbd.server;

import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.ConnectionEvents;
import io.netty.channel.ChannelHandlerContext;

/**
 * Closes a connection that has not started transmission within a deadline of its arrival: a client that
 * stalls in option haggling or in the TLS handshake holds a connection slot, and the server drops it. The
 * server removes this handler when transmission starts, so idle transmission connections are never dropped.
 *
 * <p><b>Threading:</b> one instance per channel, used on its event loop only.
 */
final class HandshakeDeadline extends ConnectionTimer {
    HandshakeDeadline(long timeoutNanos, RateLimitedLog log) {
        super(timeoutNanos, log);
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            arm(ctx);
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        arm(ctx);
        ctx.fireChannelActive();
    }

    private void arm(ChannelHandlerContext ctx) {
        if (!scheduled()) {
            schedule(ctx, timeoutNanos);
        }
    }

    @Override
    void check(ChannelHandlerContext ctx) {
        ConnectionEvents.of(ctx.channel()).handshakeFailed("timeout");
        close(ctx, "no export chosen within " + format(timeoutNanos) + " (handshake timeout)");
    }
}
