package dev.mqnbd.server.metrics;

import dev.mqnbd.filter.ExportStats;
import dev.mqnbd.filter.Filter;
import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.HwContext;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.handler.Export;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Reads every export's request counters ({@link ExportStats}), its hardware queues' counters and its
 * backend's at scrape time; nothing here runs on the I/O path.
 *
 * <p><b>Threading:</b> called on the endpoint's threads; reads counters the event loops write, never
 * waits for them.
 */
final class ExportCollector {
    /** The latency buckets' upper bounds, +Inf last. */
    private static final double[] BOUNDS = withInfinity(ExportStats.latencyBoundsSeconds());

    private static final Status[] STATUSES = Status.values();
    private static final ReqOp[] OPS = ReqOp.values();

    private final ExportRegistry registry;

    ExportCollector(ExportRegistry registry) {
        this.registry = registry;
    }

    private static double[] withInfinity(double[] bounds) {
        double[] all = Arrays.copyOf(bounds, bounds.length + 1);
        all[bounds.length] = Double.POSITIVE_INFINITY;
        return all;
    }

    void collect(List<MetricSnapshot> out) {
        var requests = new Snapshots.Counter(
                "mqnbd_export_requests",
                "Requests that ended, by export, operation and result status (ok, or the error).");
        var readBytes = new Snapshots.Counter("mqnbd_export_read_bytes", "Bytes read by READ requests that succeeded.");
        var writtenBytes =
                new Snapshots.Counter("mqnbd_export_written_bytes", "Bytes written by WRITE requests that succeeded.");
        var fua = new Snapshots.Counter("mqnbd_export_fua_requests", "Requests with the FUA flag that ended.");
        var inFlight = new Snapshots.Gauge(
                "mqnbd_export_requests_in_flight", "Requests taken by the export and not yet ended.");
        var size = new Snapshots.Gauge("mqnbd_export_size_bytes", "The export's size.");
        var latency = new Snapshots.Distribution(
                "mqnbd_export_request_duration_seconds",
                "Request latency by export and operation, from when the export takes the request to its end"
                        + " (before the reply is encoded).");
        var dispatched = new Snapshots.Counter(
                "mqnbd_hw_queue_dispatched",
                "Requests handed to the export's driver stack by hardware queue, BUSY retries included.");
        var busy = new Snapshots.Counter(
                "mqnbd_hw_queue_busy",
                "Times the driver stack answered BUSY (the request was requeued), by hardware queue.");
        var completed = new Snapshots.Counter("mqnbd_hw_queue_completed", "Requests that ended, by hardware queue.");
        var tagsInUse =
                new Snapshots.Gauge("mqnbd_hw_queue_tags_in_use", "Tags (request slots) taken now, by hardware queue.");
        var tags = new Snapshots.Gauge(
                "mqnbd_hw_queue_tags", "Tags (request slots) of each hardware queue: the queue depth.");
        BackendCollector backends = new BackendCollector();
        var filterEvents = new Snapshots.Counter(
                "mqnbd_filter_events",
                "What a filter did, by export, filter (layer 0 is closest to the client) and event: rate deferred"
                        + " (requests told to wait), error/delay injected.");
        var filterGauges = new Snapshots.Gauge(
                "mqnbd_filter_state",
                "A filter's current level, by export, filter and name: cow overlay_runs (separate runs written).");

        for (Export export : registry.all()) {
            String name = export.name();
            Labels exportLabel = Labels.of("export", name);
            BlockQueue<?, ?, ?, ?> queue = export.queue();
            size.add(exportLabel, export.info().size());
            ExportStats stats = registry.stats(name);
            if (stats != null) {
                for (ReqOp op : OPS) {
                    String opName = op.name().toLowerCase(Locale.ROOT);
                    for (Status status : STATUSES) {
                        long n = stats.requests(op, status);
                        // OK series always exist; an error series appears with its first request.
                        if (n > 0 || status == Status.OK) {
                            requests.add(
                                    Labels.of(
                                            "export",
                                            name,
                                            "op",
                                            opName,
                                            "status",
                                            status.name().toLowerCase(Locale.ROOT)),
                                    n);
                        }
                    }
                    latency.add(
                            Labels.of("export", name, "op", opName),
                            BOUNDS,
                            stats.latencyBuckets(op),
                            stats.latencySumSeconds(op));
                }
                readBytes.add(exportLabel, stats.bytes(ReqOp.READ));
                writtenBytes.add(exportLabel, stats.bytes(ReqOp.WRITE));
                fua.add(exportLabel, stats.fuaRequests());
                inFlight.add(exportLabel, stats.inFlight());
            }
            for (int i = 0; i < queue.hwQueues(); i++) {
                HwContext<?> h = queue.hctx(i);
                Labels hw = Labels.of("export", name, "hw_queue", Integer.toString(i));
                dispatched.add(hw, h.dispatched());
                busy.add(hw, h.busy());
                completed.add(hw, h.completed());
                tagsInUse.add(hw, queue.tagsInUse(i));
                tags.add(hw, queue.tagSet().queueDepth());
            }
            backends.add(name, queue.queueData());
            List<Filter<?, ?, ?, ?, ?>> filters = registry.filters(name);
            for (int i = 0; i < filters.size(); i++) {
                Filter<?, ?, ?, ?, ?> f = filters.get(i);
                String kind = f.toString().split("[(\\[]", 2)[0];
                String layer = Integer.toString(i);
                f.counters()
                        .forEach((event, n) -> filterEvents.add(
                                Labels.of("export", name, "filter", kind, "layer", layer, "event", event), n));
                f.gauges()
                        .forEach((gauge, n) -> filterGauges.add(
                                Labels.of("export", name, "filter", kind, "layer", layer, "name", gauge), n));
            }
        }
        requests.addTo(out);
        readBytes.addTo(out);
        writtenBytes.addTo(out);
        fua.addTo(out);
        inFlight.addTo(out);
        latency.addTo(out);
        size.addTo(out);
        dispatched.addTo(out);
        busy.addTo(out);
        completed.addTo(out);
        tagsInUse.addTo(out);
        tags.addTo(out);
        backends.addTo(out);
        filterEvents.addTo(out);
        filterGauges.addTo(out);
    }
}
