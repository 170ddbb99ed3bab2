package dev.mqnbd.storage;

/**
 * How an export's storage is opened, independent of the backend.
 *
 * @param readOnly refuse every write, discard and zeroing, and open the storage without write access
 */
public record DeviceOptions(boolean readOnly) {
    /** Read-write, the defaults. */
    public static final DeviceOptions DEFAULT = new DeviceOptions(false);
}
