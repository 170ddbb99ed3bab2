package dev.mqnbd.storage;

import java.util.Map;
import java.util.Objects;

/**
 * How an export's storage is opened, independent of the backend, plus the backend settings the command
 * line gave (for example {@code s3.endpoint}); each backend reads the keys under its own scheme and
 * ignores the others.
 *
 * @param readOnly refuse every write, discard and zeroing, and open the storage without write access
 * @param settings backend settings by key ({@code scheme.name}), as typed by the user; never null
 */
public record DeviceOptions(boolean readOnly, Map<String, String> settings) {
    /** Read-write, no settings: the defaults. */
    public static final DeviceOptions DEFAULT = new DeviceOptions(false);

    /** Copies the settings. */
    public DeviceOptions {
        settings = Map.copyOf(Objects.requireNonNull(settings, "settings"));
    }

    /** Options without backend settings. */
    public DeviceOptions(boolean readOnly) {
        this(readOnly, Map.of());
    }

    /** Returns the setting {@code key}, or {@code fallback} when it was not given. */
    public String setting(String key, String fallback) {
        return settings.getOrDefault(key, fallback);
    }
}
