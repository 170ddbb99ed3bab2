package dev.mqnbd.server;

import dev.mqnbd.server.handler.TransmissionHandler;
import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPromise;
import io.netty.util.concurrent.ScheduledFuture;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * Closes a connection in transmission that has been idle for a timeout: no whole request arrived, no
 * reply went out, and nothing is in flight. A client that trickles a WRITE payload a byte at a time sends
 * no whole request, so it counts as idle. Off by default ({@code --idle-timeout}): kernel clients keep
 * idle connections open for days.
 *
 * <p>Sits between the request decoder and the {@link TransmissionHandler}, so it sees decoded requests
 * and replies, not bytes. <b>Threading:</b> one instance per channel, used on its event loop only.
 */
final class IdleTimeout extends ChannelDuplexHandler {
    private final long timeoutNanos;
    private final RateLimitedLog log;
    private long lastActivity;
    private @Nullable ScheduledFuture<?> timer;

    IdleTimeout(long timeoutNanos, RateLimitedLog log) {
        if (timeoutNanos <= 0) {
            throw new IllegalArgumentException("timeoutNanos: " + timeoutNanos + " (expected: > 0)");
        }
        this.timeoutNanos = timeoutNanos;
        this.log = log;
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

    private void schedule(ChannelHandlerContext ctx, long delayNanos) {
        timer = ctx.executor().schedule(() -> check(ctx), delayNanos, TimeUnit.NANOSECONDS);
    }

    private void check(ChannelHandlerContext ctx) {
        if (ctx.isRemoved() || !ctx.channel().isOpen()) {
            return;
        }
        long idle = System.nanoTime() - lastActivity;
        TransmissionHandler transmission = ctx.pipeline().get(TransmissionHandler.class);
        if (transmission != null && transmission.busy()) {
            schedule(ctx, timeoutNanos);
            return;
        }
        if (idle < timeoutNanos) {
            schedule(ctx, timeoutNanos - idle);
            return;
        }
        log.log(
                Level.INFO,
                () -> "closing connection from "
                        + NbdServer.describe(ctx.channel().remoteAddress()) + ": idle for "
                        + HandshakeDeadline.format(timeoutNanos) + " (idle timeout)");
        ctx.close();
    }

    @Override
    public void handlerRemoved(ChannelHandlerContext ctx) {
        if (timer != null) {
            timer.cancel(false);
        }
    }
}
