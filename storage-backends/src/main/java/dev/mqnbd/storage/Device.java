package dev.mqnbd.storage;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import java.lang.System.Logger.Level;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * An opened export before its queue is built: the top driver of its stack, the data the queue is built
 * on, and the limits the stack advertises. A backend opens one ({@link Backend#open}); each filter wraps
 * it ({@link #wrap}); {@link #build} turns it into the export's {@link BlockQueue}.
 *
 * <p><b>Ownership:</b> the device owns {@code queueData} until {@link #build} hands it to the queue; a
 * device that is never built must be {@link #close()}d.
 *
 * @param driver the driver mq-core calls: the backend's, or the filter closest to the client
 * @param tagSetData the data handed to every {@code initHctx}
 * @param queueData the per-queue data; the queue closes it last when it is {@link AutoCloseable}
 * @param limits what the whole stack supports, as the handshake advertises it
 * @param description the stack as the log shows it, e.g. {@code rate(iops=5000) -> file:/srv/vm.img}
 */
public record Device<H, Q, T, R>(
        Operations<H, Q, T, R> driver,
        @Nullable T tagSetData,
        @Nullable Q queueData,
        QueueLimits limits,
        String description)
        implements AutoCloseable {
    /** Checks the parts; {@code tagSetData} and {@code queueData} may be null. */
    public Device {
        Objects.requireNonNull(driver, "driver");
        Objects.requireNonNull(limits, "limits");
        Objects.requireNonNull(description, "description");
    }

    /**
     * Returns this device behind {@code top}, a driver that wraps this one's, with the limits it
     * advertises and the description of the new stack. This device's data moves to the result.
     */
    public <G> Device<G, Q, T, R> wrap(Operations<G, Q, T, R> top, QueueLimits newLimits, String newDescription) {
        return new Device<>(top, tagSetData, queueData, newLimits, newDescription);
    }

    /**
     * Builds the export's queue as {@code setup} asks.
     *
     * <p><b>Ownership:</b> the queue owns the queue data from here; if the build fails, it is closed.
     *
     * @throws MqException if a hardware context cannot be set up
     */
    public BlockQueue<H, Q, T, R> build(QueueSetup setup) throws MqException {
        return setup.build(driver, tagSetData, queueData, limits);
    }

    /** Closes the queue data of a device that was not built; failures are suppressed into none. */
    @Override
    public void close() {
        if (queueData instanceof AutoCloseable closeable) {
            try {
                closeable.close();
            } catch (Exception e) {
                System.getLogger(Device.class.getName()).log(Level.WARNING, "closing " + description + " failed", e);
            }
        }
    }

    @Override
    public String toString() {
        return description;
    }
}
