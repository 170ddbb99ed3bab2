package dev.mqnbd.server.metrics;

import dev.mqnbd.server.protocol.ConnectionEvents;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counts connection events ({@link ConnectionEvents}) for the metrics endpoint: accepted, refused by
 * reason, handshake failures by reason, and the modes negotiated.
 *
 * <p><b>Threading:</b> thread-safe; an event costs a map lookup by a constant string and a striped add.
 */
final class ConnectionMetrics implements ConnectionEvents {
    private final LongAdder accepted = new LongAdder();
    private final Map<String, LongAdder> refused = new ConcurrentHashMap<>();
    private final Map<String, LongAdder> failed = new ConcurrentHashMap<>();
    private final Map<String, LongAdder> negotiated = new ConcurrentHashMap<>();

    ConnectionMetrics() {
        // Series that exist from the start, at 0, so that rate() and alerts see them before the first event.
        for (String reason : List.of("limit", "client_limit", "access", "tls")) {
            refused.put(reason, new LongAdder());
        }
        for (String reason : List.of("protocol", "tls", "timeout", "io")) {
            failed.put(reason, new LongAdder());
        }
    }

    @Override
    public void accepted() {
        accepted.increment();
    }

    @Override
    public void refused(String reason) {
        refused.computeIfAbsent(reason, r -> new LongAdder()).increment();
    }

    @Override
    public void handshakeFailed(String reason) {
        failed.computeIfAbsent(reason, r -> new LongAdder()).increment();
    }

    @Override
    public void negotiated(String mode, boolean tls) {
        negotiated
                .computeIfAbsent(mode + (tls ? "/tls" : "/plain"), m -> new LongAdder())
                .increment();
    }

    /** Appends the connection counters to {@code out}. */
    void collect(List<MetricSnapshot> out) {
        out.add(CounterSnapshot.builder()
                .name("mqnbd_connections_accepted")
                .help("Connections accepted (within the connection limits).")
                .dataPoint(Snapshots.counter(Labels.EMPTY, accepted.sum()))
                .build());
        out.add(byLabel(
                "mqnbd_connections_refused",
                "Connections, or requests for an export, refused, by reason.",
                "reason",
                refused));
        out.add(byLabel(
                "mqnbd_handshake_failures", "Connections closed in the handshake, by reason.", "reason", failed));
        CounterSnapshot.Builder modes = CounterSnapshot.builder()
                .name("mqnbd_connections_negotiated")
                .help("Connections that entered transmission, by reply mode and whether TLS is on.");
        negotiated.forEach((key, count) -> {
            int slash = key.indexOf('/');
            modes.dataPoint(Snapshots.counter(
                    Labels.of("mode", key.substring(0, slash), "tls", Boolean.toString(key.endsWith("/tls"))),
                    count.sum()));
        });
        out.add(modes.build());
    }

    private static CounterSnapshot byLabel(String name, String help, String label, Map<String, LongAdder> counts) {
        CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
        counts.forEach((value, count) -> b.dataPoint(Snapshots.counter(Labels.of(label, value), count.sum())));
        return b.build();
    }
}
