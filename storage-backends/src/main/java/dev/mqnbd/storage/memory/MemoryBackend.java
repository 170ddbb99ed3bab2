package dev.mqnbd.storage.memory;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.Sizes;

/**
 * The {@code memory} backend: a RAM disk of the size the spec names ({@code memory:1T}), empty (all
 * zeroes) when opened, whose contents live as long as its queue. See the package documentation for the
 * spec grammar.
 *
 * <p><b>Ownership:</b> {@link #open} hands the caller a queue that owns its {@link MemoryStore};
 * closing the queue drops every page.
 *
 * <p><b>Threading:</b> stateless; safe to share.
 */
public final class MemoryBackend implements Backend {
    /** The spec scheme: {@code memory}. */
    public static final String SCHEME = "memory";

    /** Creates the backend; {@link java.util.ServiceLoader} calls this. */
    public MemoryBackend() {}

    @Override
    public String scheme() {
        return SCHEME;
    }

    @Override
    public String usage() {
        return "memory:SIZE  a RAM disk of SIZE bytes (K, M, G, T, P suffixes; a multiple of 512 up to "
                + Sizes.format(MemoryStore.MAX_CAPACITY) + "), e.g. memory:1T";
    }

    /**
     * Opens an empty memory device of the size {@code spec} names.
     *
     * <p><b>Ownership:</b> the caller builds or closes the device; the built queue owns the store.
     *
     * @throws IllegalArgumentException if {@code spec} is not a size, or the size is not a positive
     *     multiple of 512 of at most 4 PiB
     */
    @Override
    public Device<MemoryHwData, MemoryStore, Void, Void> open(String spec, DeviceOptions options, QueueSetup setup) {
        return device(new MemoryStore(parseSize(spec)), options);
    }

    /**
     * Parses a memory spec: a {@link Sizes} size that is a positive multiple of 512 (the sector every
     * client can address) and at most {@link MemoryStore#MAX_CAPACITY}.
     *
     * @throws IllegalArgumentException if it is not
     */
    static long parseSize(String spec) {
        long size = Sizes.parse(spec);
        if (size <= 0 || size % 512 != 0) {
            throw new IllegalArgumentException("size: " + spec.strip() + " (expected: a positive multiple of 512)");
        }
        if (size > MemoryStore.MAX_CAPACITY) {
            throw new IllegalArgumentException(
                    "size: " + spec.strip() + " (expected: at most " + Sizes.format(MemoryStore.MAX_CAPACITY) + ")");
        }
        return size;
    }

    /** Returns the device over {@code store}; closes the store if that fails. */
    static Device<MemoryHwData, MemoryStore, Void, Void> device(MemoryStore store, DeviceOptions options) {
        MemoryBlockDevice device;
        try {
            device = new MemoryBlockDevice(store.capacity(), options.readOnly());
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        return new Device<>(device, null, store, device.limits(), SCHEME + ":" + Sizes.format(store.capacity()));
    }

    /** Builds the tag set and the queue over {@code store}; closes the store if that fails. */
    static BlockQueue<MemoryHwData, MemoryStore, Void, Void> open(
            MemoryStore store, DeviceOptions options, QueueSetup setup) throws MqException {
        return device(store, options).build(setup);
    }
}
