package dev.mqnbd.filter;

import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import java.util.stream.Collectors;

/**
 * The filter kinds on the class path, and the one way every export is built: a backend with its filters
 * stacked on it, the first named closest to the client. A backend with no filter is a stack of one.
 */
public final class Filters {
    private static final List<FilterKind> ALL =
            ServiceLoader.load(FilterKind.class, Filters.class.getClassLoader()).stream()
                    .map(ServiceLoader.Provider::get)
                    .toList();

    private Filters() {}

    /** Returns every filter kind, in the order they are listed. */
    public static List<FilterKind> all() {
        return ALL;
    }

    /**
     * Returns the kind called {@code name}.
     *
     * @throws IllegalArgumentException if there is none
     */
    public static FilterKind kind(String name) {
        for (FilterKind kind : ALL) {
            if (kind.name().equals(name)) {
                return kind;
            }
        }
        throw new IllegalArgumentException("filter: unknown kind \"" + name + "\" (expected: one of "
                + ALL.stream().map(FilterKind::name).collect(Collectors.joining(", ")) + ")");
    }

    /** Returns the setting names of {@code kind}: what precedes {@code =} in each of its {@link FilterKind#keys()}. */
    static List<String> keyNames(FilterKind kind) {
        List<String> names = new ArrayList<>();
        for (String key : kind.keys()) {
            int eq = key.indexOf('=');
            names.add((eq < 0 ? key : key.substring(0, eq)).strip());
        }
        return names;
    }

    /**
     * Opens export {@code name}: the backend {@code spec} with {@code filters} stacked on it, the first
     * closest to the client. Layers below a filter that never writes them (cow) are opened read-only.
     *
     * <p><b>Ownership:</b> the caller builds or closes the returned device; if a layer fails to open,
     * what was opened is closed before the failure propagates.
     *
     * @param filters the filters of this export, in command-line order
     * @throws IllegalArgumentException if the spec or a filter setting is malformed
     * @throws IOException if the backend or a filter cannot open its storage
     */
    public static Device<?, ?, ?, ?> open(
            String name, String spec, List<FilterSpec> filters, DeviceOptions options, QueueSetup setup)
            throws IOException {
        boolean belowReadOnly = options.readOnly();
        for (FilterSpec filter : filters) {
            belowReadOnly |= kind(filter.kind()).opensBelowReadOnly();
        }
        DeviceOptions below =
                belowReadOnly == options.readOnly() ? options : new DeviceOptions(true, options.settings());
        Device<?, ?, ?, ?> device = Backends.device(spec, below, setup);
        StackContext context = new StackContext(name, options.readOnly());
        for (int i = filters.size() - 1; i >= 0; i--) {
            FilterSpec filter = filters.get(i);
            try {
                device = stack(kind(filter.kind()), filter.settings(), device, context);
            } catch (IOException | RuntimeException e) {
                device.close();
                throw e;
            }
        }
        return device;
    }

    /** Stacks one filter of {@code kind} on {@code below}. */
    public static <H, Q, T, R> Device<?, Q, T, R> stack(
            FilterKind kind, FilterSettings settings, Device<H, Q, T, R> below, StackContext context)
            throws IOException {
        return on(kind.create(below.driver(), below.limits(), settings, context), below);
    }

    /** Puts {@code filter}, built over {@code below}'s driver, on top of {@code below}. */
    public static <C extends FilterContext<H>, H, Q, T, R> Device<C, Q, T, R> on(
            Filter<C, H, Q, T, R> filter, Device<H, Q, T, R> below) {
        if (filter.next() != below.driver()) {
            throw new IllegalArgumentException("filter: " + filter + " (expected: built over " + below + ")");
        }
        return below.wrap(filter, filter.limits(), filter + " -> " + below.description());
    }
}
