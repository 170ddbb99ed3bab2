package dev.mqnbd.server;

import dev.mqnbd.filter.ExportStats;
import dev.mqnbd.filter.Filter;
import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdExports;
import dev.mqnbd.server.protocol.NbdPeer;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * The exports a server offers, by name, and who may use each; the default export is the one named {@code ""}.
 *
 * <p><b>Ownership:</b> owns every export's queue from {@link #add} on and closes them in {@link
 * #close()}, last added first. <b>Threading:</b> filled before the server starts, read-only afterwards.
 */
public final class ExportRegistry implements NbdExports, AutoCloseable {
    private static final System.Logger LOG = System.getLogger(ExportRegistry.class.getName());

    private final Map<String, Export> exports = new LinkedHashMap<>();
    private final List<NbdExportInfo> infos = new ArrayList<>();
    private final Map<String, AccessList> access = new HashMap<>();
    private final Map<String, String> stacks = new HashMap<>();
    private final Map<String, ExportStats> stats = new HashMap<>();
    private final Map<String, List<Filter<?, ?, ?, ?, ?>>> layers = new HashMap<>();
    private final boolean countRequests;

    /** Creates a registry whose exports do not count their requests. */
    public ExportRegistry() {
        this(false);
    }

    /**
     * Creates a registry.
     *
     * @param countRequests whether every export {@link #open}ed here counts its requests ({@link #stats})
     */
    public ExportRegistry(boolean countRequests) {
        this.countRequests = countRequests;
    }

    /**
     * Adds an export.
     *
     * @throws IllegalArgumentException if an export of that name exists
     */
    public void add(Export export) {
        if (exports.putIfAbsent(export.name(), export) != null) {
            throw new IllegalArgumentException("export name: \"" + export.name() + "\" (expected: unique)");
        }
        infos.add(export.info());
    }

    /**
     * Opens the backend {@code spec} (e.g. {@code memory:1G}) without filters and adds it as export {@code name}.
     *
     * @see #open(String, String, List, String, DeviceOptions, QueueSetup, int)
     */
    public Export open(
            String name, String spec, String description, DeviceOptions options, QueueSetup setup, int maxPayload)
            throws IOException, MqException {
        return open(name, spec, List.of(), description, options, setup, maxPayload);
    }

    /**
     * Opens the backend {@code spec} (e.g. {@code memory:1G}) with {@code filters} stacked on it, the first
     * closest to the client, and adds it as export {@code name}.
     *
     * @param filters the export's filters in command-line order; empty for none
     * @param maxPayload the server's largest READ/WRITE payload, advertised with the export's block sizes
     * @throws IllegalArgumentException if the name is taken, or the spec or a filter setting is malformed;
     *     nothing stays open then
     * @throws IOException if the backend or a filter cannot open its storage
     * @throws MqException if the export's queue cannot be set up
     */
    public Export open(
            String name,
            String spec,
            List<FilterSpec> filters,
            String description,
            DeviceOptions options,
            QueueSetup setup,
            int maxPayload)
            throws IOException, MqException {
        if (exports.containsKey(name)) {
            throw new IllegalArgumentException("export name: \"" + name + "\" (expected: unique)");
        }
        return open(name, Filters.open(name, spec, filters, options, setup), description, setup, maxPayload);
    }

    /**
     * Builds the queue of {@code device}, a backend with whatever filters the caller stacked on it, and adds
     * it as export {@code name}; its filters become {@link #filters(String)}.
     *
     * <p><b>Ownership:</b> takes {@code device}: it is built into the export's queue, or closed if that fails.
     *
     * @throws IllegalArgumentException if the name is taken; the device is closed then
     * @throws MqException if the export's queue cannot be set up
     */
    public Export open(String name, Device<?, ?, ?, ?> opened, String description, QueueSetup setup, int maxPayload)
            throws MqException {
        if (exports.containsKey(name)) {
            opened.close();
            throw new IllegalArgumentException("export name: \"" + name + "\" (expected: unique)");
        }
        Device<?, ?, ?, ?> device = opened;
        String stack = device.description();
        List<Filter<?, ?, ?, ?, ?>> filterLayers = new ArrayList<>();
        for (Operations<?, ?, ?, ?> layer = device.driver();
                layer instanceof Filter<?, ?, ?, ?, ?> f;
                layer = f.next()) {
            filterLayers.add(f);
        }
        ExportStats counters = null;
        if (countRequests) {
            counters = new ExportStats();
            device = ExportStats.on(device, counters);
        }
        BlockQueue<?, ?, ?, ?> queue = device.build(setup);
        Export export = Export.of(name, description, queue, maxPayload);
        add(export);
        stacks.put(name, stack);
        layers.put(name, List.copyOf(filterLayers));
        if (counters != null) {
            stats.put(name, counters);
        }
        return export;
    }

    /**
     * Returns what export {@code name}'s clients asked of it, or {@code null} when the registry does not
     * count requests or the export was added ready-built.
     */
    public @Nullable ExportStats stats(String name) {
        return stats.get(name);
    }

    /**
     * Returns export {@code name}'s stack as the log shows it, the layer closest to the client first
     * ({@code cow(overlay=memory) -> file:/srv/vm.img}), or {@code null} for an export added ready-built.
     */
    public @Nullable String stack(String name) {
        return stacks.get(name);
    }

    /**
     * Returns export {@code name}'s filters, the one closest to the client first (the request-counting layer
     * is not among them); empty for an export without filters or added ready-built.
     */
    public List<Filter<?, ?, ?, ?, ?>> filters(String name) {
        return layers.getOrDefault(name, List.of());
    }

    /** Returns the export called {@code name}, or {@code null}. */
    public @Nullable Export get(String name) {
        return exports.get(name);
    }

    /**
     * Lets only the clients {@code list} admits see and use export {@code name}; replaces an earlier list.
     *
     * @throws IllegalArgumentException if there is no such export
     */
    public void restrict(String name, AccessList list) {
        if (!exports.containsKey(name)) {
            throw new IllegalArgumentException("export name: \"" + name + "\" (expected: an export)");
        }
        access.put(name, list);
    }

    /** Returns who may use export {@code name}: {@link AccessList#ANYONE} unless {@link #restrict}ed. */
    public AccessList access(String name) {
        return access.getOrDefault(name, AccessList.ANYONE);
    }

    /** Returns every export, in the order added. */
    public List<Export> all() {
        return List.copyOf(exports.values());
    }

    @Override
    public @Nullable NbdExportInfo find(String name) {
        Export export = exports.get(name);
        return export == null ? null : export.info();
    }

    @Override
    public List<NbdExportInfo> list() {
        return Collections.unmodifiableList(infos);
    }

    @Override
    public boolean allows(NbdExportInfo export, NbdPeer peer) {
        return access(export.name()).allows(peer);
    }

    /** Closes every export's queue, waiting for requests in flight; failures are logged, not thrown. */
    @Override
    public void close() {
        List<Export> reversed = new ArrayList<>(exports.values());
        Collections.reverse(reversed);
        for (Export export : reversed) {
            try {
                export.queue().close();
            } catch (MqException | RuntimeException e) {
                LOG.log(Level.ERROR, "closing export \"" + export.name() + "\" failed", e);
            }
        }
    }
}
