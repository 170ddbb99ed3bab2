package dev.mqnbd.storage;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import java.io.IOException;
import java.util.List;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

/** Finds backends with {@link ServiceLoader} and opens export specs of the form {@code scheme:rest}. */
public final class Backends {
    private static final List<Backend> ALL = ServiceLoader.load(Backend.class, Backends.class.getClassLoader()).stream()
            .map(ServiceLoader.Provider::get)
            .toList();

    private Backends() {}

    /** Returns every backend on the class path. */
    public static List<Backend> all() {
        return ALL;
    }

    /**
     * Returns the backend for the scheme of {@code spec} ({@code memory} for {@code memory:1G}).
     *
     * @throws IllegalArgumentException if the spec has no scheme or no backend serves it
     */
    public static Backend forSpec(String spec) {
        int colon = spec.indexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException(
                    "export spec: \"" + spec + "\" (expected: SCHEME:..., one of " + schemes() + ")");
        }
        String scheme = spec.substring(0, colon);
        for (Backend backend : ALL) {
            if (backend.scheme().equals(scheme)) {
                return backend;
            }
        }
        throw new IllegalArgumentException("export spec: \"" + spec + "\": unknown backend \"" + scheme
                + "\" (expected: one of " + schemes() + ")");
    }

    /**
     * Opens an export spec such as {@code memory:1G} as a device that filters can wrap.
     *
     * <p><b>Ownership:</b> the caller builds or closes the device.
     *
     * @throws IllegalArgumentException if the spec is malformed
     * @throws IOException if the storage cannot be opened
     */
    public static Device<?, ?, ?, ?> device(String spec, DeviceOptions options, QueueSetup setup) throws IOException {
        Backend backend = forSpec(spec);
        return backend.open(spec.substring(backend.scheme().length() + 1), options, setup);
    }

    /**
     * Opens an export spec such as {@code memory:1G} and builds its queue, with no filter.
     *
     * <p><b>Ownership:</b> the caller owns the returned queue; closing it releases the storage.
     *
     * @throws IllegalArgumentException if the spec is malformed
     * @throws IOException if the storage cannot be opened
     * @throws MqException if the queue cannot be set up
     */
    public static BlockQueue<?, ?, ?, ?> open(String spec, DeviceOptions options, QueueSetup setup)
            throws IOException, MqException {
        return device(spec, options, setup).build(setup);
    }

    private static String schemes() {
        return ALL.stream().map(Backend::scheme).collect(Collectors.joining(", "));
    }
}
