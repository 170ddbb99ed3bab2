package dev.mqnbd.server.handler;

import io.netty.channel.ChannelHandlerContext;

/**
 * Flushes one connection's replies once per batch: the first reply written after a flush schedules the
 * next as a task of the event loop, so replies written in one turn (a batch of completions, the answers of
 * one drain) leave in one system call.
 *
 * <p><b>Threading:</b> the channel's event loop.
 */
final class FlushScheduler {
    private final ChannelHandlerContext ctx;
    private final Runnable flushTask = this::flushNow;
    private boolean flushScheduled;

    FlushScheduler(ChannelHandlerContext ctx) {
        this.ctx = ctx;
    }

    /** Makes sure a flush follows what was written so far. */
    void schedule() {
        if (!flushScheduled) {
            flushScheduled = true;
            ctx.executor().execute(flushTask);
        }
    }

    private void flushNow() {
        flushScheduled = false;
        ctx.flush();
    }
}
