package dev.mqnbd.storage;

import dev.mqnbd.mq.HctxExecutor;
import java.time.Duration;
import java.util.Objects;
import java.util.function.IntFunction;

/**
 * What the front end asks of every export's queue: its name, hardware queues and their executors,
 * queue depth and request timeout.
 *
 * @param name the export's name, for logs
 * @param hwQueues number of hardware contexts
 * @param queueDepth tags per hardware context
 * @param executors the executor of each hardware context (in the server, its event loop)
 * @param timeout how long a request may be in flight before the driver's timeout handler sees it;
 *     zero for none
 */
public record QueueSetup(
        String name, int hwQueues, int queueDepth, IntFunction<? extends HctxExecutor> executors, Duration timeout) {
    /** Checks the setup. */
    public QueueSetup {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(executors, "executors");
        Objects.requireNonNull(timeout, "timeout");
    }
}
