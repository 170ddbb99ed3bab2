package dev.mqnbd.server;

import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.ConnectionEvents;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.concurrent.ScheduledFuture;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * Closes a connection that has not started transmission within a deadline of its arrival: a client that
 * stalls in option haggling or in the TLS handshake holds a connection slot, and the server drops it. The
 * server removes this handler when transmission starts, so idle transmission connections are never dropped.
 *
 * <p><b>Threading:</b> one instance per channel, used on its event loop only.
 */
final class HandshakeDeadline extends ChannelInboundHandlerAdapter {
    private final long timeoutNanos;
    private final RateLimitedLog log;
    private @Nullable ScheduledFuture<?> timer;

    HandshakeDeadline(long timeoutNanos, RateLimitedLog log) {
        if (timeoutNanos <= 0) {
            throw new IllegalArgumentException("timeoutNanos: " + timeoutNanos + " (expected: > 0)");
        }
        this.timeoutNanos = timeoutNanos;
        this.log = log;
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
        if (timer == null) {
            timer = ctx.executor().schedule(() -> expire(ctx), timeoutNanos, TimeUnit.NANOSECONDS);
        }
    }

    private void expire(ChannelHandlerContext ctx) {
        if (ctx.isRemoved() || !ctx.channel().isOpen()) {
            return;
        }
        ConnectionEvents.of(ctx.channel()).handshakeFailed("timeout");
        log.log(
                Level.INFO,
                () -> "closing connection from "
                        + NbdServer.describe(ctx.channel().remoteAddress()) + ": no export chosen within "
                        + format(timeoutNanos) + " (handshake timeout)");
        ctx.close();
    }

    /** Formats a timeout for logs: {@code 10 s}, {@code 1500 ms}. */
    static String format(long nanos) {
        long millis = TimeUnit.NANOSECONDS.toMillis(nanos);
        return millis % 1000 == 0 ? millis / 1000 + " s" : millis + " ms";
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        cancel();
        ctx.fireChannelInactive();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        cancel();
    }

    private void cancel() {
        if (timer != null) {
            timer.cancel(false);
        }
    }
}
