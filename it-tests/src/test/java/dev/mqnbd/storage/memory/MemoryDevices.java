package dev.mqnbd.storage.memory;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.storage.QueueSetup;
import java.util.function.UnaryOperator;

/**
 * Test-side adapter: builds a memory export's queue with a filter between mq-core and {@link
 * MemoryBlockDevice}, e.g. {@link dev.mqnbd.mq.FaultInjectingOperations}. It lives in the backend's package
 * because the driver's constructor is package-private and the public {@link MemoryBackend#open} offers no
 * way to put a filter in front of the driver it builds.
 */
public final class MemoryDevices {
    private MemoryDevices() {}

    /**
     * Opens an empty read-write memory device of {@code capacity} bytes whose driver is {@code filter}
     * applied to the memory driver.
     *
     * <p><b>Ownership:</b> the caller owns the queue; closing it releases the store.
     *
     * @throws MqException if a hardware context cannot be set up; the store is closed then
     */
    public static BlockQueue<MemoryHwData, MemoryStore, Void, Void> open(long capacity, QueueSetup setup,
            UnaryOperator<Operations<MemoryHwData, MemoryStore, Void, Void>> filter) throws MqException {
        MemoryStore store = new MemoryStore(capacity);
        MemoryBlockDevice device;
        Operations<MemoryHwData, MemoryStore, Void, Void> driver;
        try {
            device = new MemoryBlockDevice(capacity, false);
            driver = filter.apply(device);
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        return setup.build(driver, null, store, device.limits());
    }
}
