package dev.mqnbd.server;

import dev.mqnbd.mq.HctxExecutor;
import io.netty.channel.EventLoop;
import java.util.concurrent.TimeUnit;

/** Runs a hardware context on a Netty event loop, as blk-mq runs a hardware queue on a CPU. */
public record EventLoopHctxExecutor(EventLoop loop) implements HctxExecutor {
    @Override
    public boolean inExecutor() {
        return loop.inEventLoop();
    }

    @Override
    public void execute(Runnable task) {
        loop.execute(task);
    }

    @Override
    public void schedule(Runnable task, long delay, TimeUnit unit) {
        loop.schedule(task, delay, unit);
    }
}
