package dev.mqnbd.mq;

import static dev.mqnbd.mq.Checks.requireArgument;

import java.util.Set;

/**
 * The geometry and features of a device, the kernel's {@code struct queue_limits} plus its capacity.
 *
 * @param capacity size of the device in bytes
 * @param logicalBlockSize smallest unit the device can address, a power of two
 * @param physicalBlockSize the unit that avoids read-modify-write, a power of two, at least the logical one
 * @param maxTransferBytes largest READ or WRITE the device takes in one request
 * @param discardGranularity unit in which DISCARD frees space (0 when discard is not supported)
 * @param features what the device supports beyond reads and writes
 * @param readOnly whether writes, discards and zeroing are refused
 */
public record QueueLimits(
        long capacity,
        int logicalBlockSize,
        int physicalBlockSize,
        int maxTransferBytes,
        int discardGranularity,
        Set<Feature> features,
        boolean readOnly) {

    /**
     * Checks the limits.
     *
     * @throws IllegalArgumentException if a size is negative or a block size is not a power of two
     */
    public QueueLimits {
        requireArgument(capacity >= 0, "capacity: %s (expected: >= 0)", capacity);
        requirePowerOfTwo("logicalBlockSize", logicalBlockSize);
        requirePowerOfTwo("physicalBlockSize", physicalBlockSize);
        requireArgument(
                physicalBlockSize >= logicalBlockSize,
                "physicalBlockSize: %s (expected: >= logicalBlockSize %s)",
                physicalBlockSize,
                logicalBlockSize);
        requireArgument(
                maxTransferBytes >= logicalBlockSize,
                "maxTransferBytes: %s (expected: >= %s)",
                maxTransferBytes,
                logicalBlockSize);
        requireArgument(discardGranularity >= 0, "discardGranularity: %s (expected: >= 0)", discardGranularity);
        features = Set.copyOf(features);
    }

    /** Returns whether the device supports {@code feature}. */
    public boolean has(Feature feature) {
        return features.contains(feature);
    }

    /** Returns these limits with {@code readOnly} set. */
    public QueueLimits withReadOnly(boolean readOnly) {
        return new QueueLimits(
                capacity,
                logicalBlockSize,
                physicalBlockSize,
                maxTransferBytes,
                discardGranularity,
                features,
                readOnly);
    }

    private static void requirePowerOfTwo(String name, int value) {
        requireArgument(value > 0 && Integer.bitCount(value) == 1, "%s: %s (expected: a power of two)", name, value);
    }
}
