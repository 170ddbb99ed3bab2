package dev.mqnbd.server;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.channel.ChannelDuplexHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.util.concurrent.ScheduledFuture;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * What the per-connection timers ({@link HandshakeDeadline}, {@link IdleTimeout}) share: the timeout, one
 * pending check on the channel's event loop, and the rate-limited line that says why a connection was
 * closed.
 *
 * <p><b>Threading:</b> one instance per channel, used on its event loop only.
 */
abstract class ConnectionTimer extends ChannelDuplexHandler {
    final long timeoutNanos;
    private final RateLimitedLog log;
    private @Nullable ScheduledFuture<?> timer;

    ConnectionTimer(long timeoutNanos, RateLimitedLog log) {
        if (timeoutNanos <= 0) {
            throw new IllegalArgumentException("timeoutNanos: " + timeoutNanos + " (expected: > 0)");
        }
        this.timeoutNanos = timeoutNanos;
        this.log = log;
    }

    /** Runs {@link #check} on the channel's event loop after {@code delayNanos}. */
    final void schedule(ChannelHandlerContext ctx, long delayNanos) {
        timer = ctx.executor().schedule(() -> fire(ctx), delayNanos, TimeUnit.NANOSECONDS);
    }

    /** Returns whether a check is pending. */
    final boolean scheduled() {
        return timer != null;
    }

    private void fire(ChannelHandlerContext ctx) {
        if (!ctx.isRemoved() && ctx.channel().isOpen()) {
            check(ctx);
        }
    }

    /** The timer fired on a connection still open with this handler in place: close it, or reschedule. */
    abstract void check(ChannelHandlerContext ctx);

    /** Logs why, rate-limited, and closes the connection. */
    final void close(ChannelHandlerContext ctx, String why) {
        log.log(
                Level.INFO,
                () -> "closing connection from "
                        + NbdServer.describe(ctx.channel().remoteAddress()) + ": " + why);
        ctx.close();
    }

    /** Formats a timeout for logs: {@code 10 s}, {@code 1500 ms}. */
    static String format(long nanos) {
        long millis = TimeUnit.NANOSECONDS.toMillis(nanos);
        return millis % 1000 == 0 ? millis / 1000 + " s" : millis + " ms";
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        cancel();
        super.channelInactive(ctx);
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
