package dev.mqnbd.server.metrics;

import com.sun.net.httpserver.HttpExchange;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.handler.BufferBudget;
import dev.mqnbd.server.protocol.ConnectionEvents;
import io.prometheus.metrics.exporter.httpserver.HTTPServer;
import io.prometheus.metrics.model.registry.MultiCollector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * The {@code /metrics} endpoint: the Prometheus text format (OpenMetrics when the scraper asks for it)
 * of every export, hardware queue, backend and connection of a server, read from their counters when
 * scraped.
 *
 * <p>Use: create it with the registry before the exports are opened (they must be opened by a registry
 * that counts requests, {@code new ExportRegistry(true)}), pass {@link #connectionEvents()} to the server's
 * config, then {@link #start} it once the server runs.
 *
 * <p>Safety: the endpoint answers only {@code /metrics} (everything else is 404); a scrape reads counters
 * and never waits for I/O; two threads serve scrapes, with at most 8 more waiting (others are refused),
 * and the JDK server drops a client that takes over 10 s to send its request or read the answer.
 *
 * <p><b>Ownership:</b> {@link #close()} stops the HTTP server. <b>Threading:</b> scrapes run on the
 * endpoint's own threads.
 */
public final class MetricsEndpoint implements AutoCloseable {
    private static final int THREADS = 2;
    private static final int BACKLOG = 8;

    static {
        // The JDK HTTP server's per-exchange time limits (seconds), read once when its classes load.
        setDefault("sun.net.httpserver.maxReqTime", "10");
        setDefault("sun.net.httpserver.maxRspTime", "10");
    }

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final ConnectionMetrics connections = new ConnectionMetrics();
    private volatile IntSupplier openConnections = () -> 0;
    private volatile @Nullable BufferBudget buffers;
    private volatile Supplier<Map<String, BufferBudget>> exportBuffers = Map::of;
    private @Nullable HTTPServer http;

    /** Creates the endpoint over the exports of {@code exports}. */
    public MetricsEndpoint(ExportRegistry exports) {
        ExportCollector collector = new ExportCollector(Objects.requireNonNull(exports, "exports"));
        registry.register(new MultiCollector() {
            @Override
            public MetricSnapshots collect() {
                List<MetricSnapshot> out = new ArrayList<>();
                collector.collect(out);
                out.add(GaugeSnapshot.builder()
                        .name("mqnbd_connections_open")
                        .help("Client connections open now (in the handshake or transmission).")
                        .dataPoint(Snapshots.gauge(Labels.EMPTY, openConnections.getAsInt()))
                        .build());
                connections.collect(out);
                collectBuffers(out);
                return new MetricSnapshots(out);
            }
        });
    }

    /** Returns the listener that counts connection events; give it to the server ({@code NbdServerConfig.events}). */
    public ConnectionEvents connectionEvents() {
        return connections;
    }

    /** Reads the number of open connections from {@code open} at each scrape (the server's count). */
    public void openConnections(IntSupplier open) {
        this.openConnections = Objects.requireNonNull(open, "open");
    }

    /**
     * Reads the server's bound on READ and WRITE buffers in flight ({@code server}) and its exports' parts
     * ({@code exports}, by export name) at each scrape.
     */
    public void buffers(BufferBudget server, Supplier<Map<String, BufferBudget>> exports) {
        this.buffers = Objects.requireNonNull(server, "server");
        this.exportBuffers = Objects.requireNonNull(exports, "exports");
    }

    private void collectBuffers(List<MetricSnapshot> out) {
        BufferBudget server = buffers;
        if (server == null) {
            return;
        }
        var limit = new Snapshots.Gauge(
                "mqnbd_payload_buffer_limit_bytes",
                "The bound on READ and WRITE buffers in flight, all exports together (--payload-memory); each export"
                        + " may take half.");
        var held = new Snapshots.Gauge(
                "mqnbd_payload_buffer_bytes", "Bytes of READ and WRITE buffers in flight to the backend, by export.");
        var waits = new Snapshots.Counter(
                "mqnbd_payload_buffer_waits", "Times a request waited for room under the bound, by export.");
        limit.add(Labels.EMPTY, server.limit());
        exportBuffers.get().forEach((name, budget) -> {
            Labels export = Labels.of("export", name);
            held.add(export, budget.held());
            waits.add(export, budget.waits());
        });
        limit.addTo(out);
        held.addTo(out);
        waits.addTo(out);
    }

    /** Returns the registry the endpoint serves, for tests and embedders that add their own collectors. */
    public PrometheusRegistry registry() {
        return registry;
    }

    /**
     * Starts serving {@code /metrics} on {@code address} (port 0 picks a free one).
     *
     * @throws IOException if the address cannot be bound
     * @throws IllegalStateException if already started
     */
    public synchronized void start(InetSocketAddress address) throws IOException {
        if (http != null) {
            throw new IllegalStateException("metrics endpoint already started on port " + http.getPort());
        }
        ExecutorService executor = new ThreadPoolExecutor(
                THREADS,
                THREADS,
                60,
                TimeUnit.SECONDS,
                new ArrayBlockingQueue<>(BACKLOG),
                r -> {
                    Thread t = new Thread(r, "mqnbd-metrics");
                    t.setDaemon(true);
                    return t;
                },
                new ThreadPoolExecutor.DiscardPolicy());
        try {
            http = HTTPServer.builder()
                    .inetAddress(address.getAddress())
                    .port(address.getPort())
                    .registry(registry)
                    .executorService(executor)
                    .metricsHandlerPath("/metrics")
                    .registerHealthHandler(false)
                    .defaultHandler(MetricsEndpoint::notFound)
                    .buildAndStart();
        } catch (IOException | RuntimeException e) {
            executor.shutdownNow();
            throw e;
        }
    }

    /** Returns the port the endpoint listens on, or -1 before {@link #start}. */
    public synchronized int port() {
        return http == null ? -1 : http.getPort();
    }

    @Override
    public synchronized void close() {
        if (http != null) {
            http.close();
            http = null;
        }
    }

    private static void notFound(HttpExchange exchange) throws IOException {
        try (exchange) {
            exchange.sendResponseHeaders(404, -1);
        }
    }

    private static void setDefault(String property, String value) {
        if (System.getProperty(property) == null) {
            System.setProperty(property, value);
        }
    }
}
