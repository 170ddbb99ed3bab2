package dev.mqnbd.mq;

import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * The thread a hardware context runs on: in the server a Netty event loop, in tests a {@link
 * ThreadHctxExecutor}. Its tasks run one at a time, in order.
 */
public interface HctxExecutor extends Executor {
    /** Returns whether the calling thread is this executor's thread. */
    boolean inExecutor();

    /** Runs {@code task} once after {@code delay}. */
    void schedule(Runnable task, long delay, TimeUnit unit);
}
