package dev.mqnbd.storage;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.HctxExecutor;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.TagSet;
import java.time.Duration;
import java.util.Objects;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;

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

    /**
     * Builds the tag set of {@code driver} and the queue over {@code queueData} as this setup asks.
     *
     * <p><b>Ownership:</b> from a successful build on, the queue owns {@code queueData} and closes it last;
     * if the build fails, the hardware contexts already built are undone and {@code queueData} is closed
     * here (when it is {@link AutoCloseable}) before the failure is rethrown.
     *
     * @throws MqException if a hardware context cannot be set up
     */
    public <H, Q, T, R> BlockQueue<H, Q, T, R> build(
            Operations<H, Q, T, R> driver, @Nullable T tagSetData, @Nullable Q queueData, QueueLimits limits)
            throws MqException {
        try {
            TagSet<H, Q, T, R> tags = TagSet.builder(driver)
                    .hwQueues(hwQueues)
                    .queueDepth(queueDepth)
                    .timeout(timeout)
                    .tagSetData(tagSetData)
                    .build();
            return BlockQueue.builder(tags)
                    .name(name)
                    .queueData(queueData)
                    .limits(limits)
                    .executors(executors)
                    .build();
        } catch (MqException | RuntimeException e) {
            if (queueData instanceof AutoCloseable closeable) {
                try {
                    closeable.close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            throw e;
        }
    }
}
