package dev.mqnbd.server;

import dev.mqnbd.server.handler.TransmissionHandler;
import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;

/**
 * Closes a connection in transmission that has been idle for a timeout: no whole request arrived, no
 * reply went out, and nothing is in flight. A client that trickles a WRITE payload a byte at a time sends
 * no whole request, so it counts as idle. Off by default ({@code --idle-timeout}): kernel clients keep
 * idle connections open for days.
 *
 * <p>Sits between the request decoder and the {@link TransmissionHandler}, so it sees decoded requests
 * and replies, not bytes. <b>Threading:</b> one instance per channel, used on its event loop only.
 */
final class IdleTimeout extends ConnectionTimer {
    private long lastActivity;

    IdleTimeout(long timeoutNanos, RateLimitedLog log) {
        super(timeoutNanos, log);
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        lastActivity = System.nanoTime();
        schedule(ctx, timeoutNanos);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        lastActivity = System.nanoTime();
        ctx.fireChannelRead(msg);
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        lastActivity = System.nanoTime();
        ctx.write(msg, promise);
    }

    @Override
    void check(ChannelHandlerContext ctx) {
        long idle = System.nanoTime() - lastActivity;
        TransmissionHandler transmission = ctx.pipeline().get(TransmissionHandler.class);
        if (transmission != null && transmission.busy()) {
            schedule(ctx, timeoutNanos);
        } else if (idle < timeoutNanos) {
            schedule(ctx, timeoutNanos - idle);
        } else {
            close(ctx, "idle for " + format(timeoutNanos) + " (idle timeout)");
        }
    }
}
