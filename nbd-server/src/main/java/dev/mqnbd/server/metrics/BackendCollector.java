package dev.mqnbd.server.metrics;

import dev.mqnbd.storage.file.FileStore;
import dev.mqnbd.storage.memory.MemoryStore;
import dev.mqnbd.storage.s3.S3Export;
import dev.mqnbd.storage.s3.S3Stats;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.util.List;

/**
 * Reads the counters each backend keeps of its own work (the same ones its stop log line prints), at
 * scrape time: the export's queue data is the backend's shared state.
 */
final class BackendCollector {
    private final Snapshots.Counter fdatasyncs = new Snapshots.Counter(
            "mqnbd_file_fdatasync_calls",
            "fdatasync calls made by a file export (group commit and close); one covers every FLUSH and FUA write"
                    + " waiting for it.");
    private final Snapshots.Gauge memoryBytes = new Snapshots.Gauge(
            "mqnbd_memory_allocated_bytes", "Bytes of pages a memory export holds (written, not trimmed or zeroed).");
    private final Snapshots.Counter s3Requests = new Snapshots.Counter(
            "mqnbd_s3_requests",
            "Block object requests an S3 export made, by type (put, get, delete); a retried request counts once.");
    private final Snapshots.Counter s3Up =
            new Snapshots.Counter("mqnbd_s3_uploaded_bytes", "Bytes uploaded in block PUTs.");
    private final Snapshots.Counter s3Down =
            new Snapshots.Counter("mqnbd_s3_downloaded_bytes", "Bytes downloaded in block GETs.");
    private final Snapshots.Counter s3Deleted = new Snapshots.Counter(
            "mqnbd_s3_deleted_objects", "Block objects deleted (a batch DELETE removes up to 1000).");
    private final Snapshots.Counter s3Failures =
            new Snapshots.Counter("mqnbd_s3_upload_failures", "Block uploads or deletes that failed and were retried.");
    private final Snapshots.Counter s3Checksum =
            new Snapshots.Counter("mqnbd_s3_checksum_failures", "Downloaded blocks whose CRC32C did not match.");
    private final Snapshots.Counter s3DirtyWaits = new Snapshots.Counter(
            "mqnbd_s3_dirty_limit_waits", "Times a writer waited because the export's dirty bound was reached.");
    private final Snapshots.Counter s3ReadAheads =
            new Snapshots.Counter("mqnbd_s3_read_aheads", "Blocks fetched by read-ahead or CACHE.");
    private final Snapshots.Counter s3Barriers =
            new Snapshots.Counter("mqnbd_s3_flush_barriers", "FLUSH barriers taken (one per batch of FLUSH requests).");
    private final Snapshots.Gauge s3Dirty =
            new Snapshots.Gauge("mqnbd_s3_dirty_bytes", "Bytes written and not yet uploaded.");
    private final Snapshots.Gauge s3Cached = new Snapshots.Gauge("mqnbd_s3_cached_bytes", "Bytes of blocks cached.");
    private final Snapshots.Gauge s3Writable = new Snapshots.Gauge(
            "mqnbd_s3_lease_held", "1 while the export holds the write lease of its prefix, else 0.");

    /** Adds export {@code name}'s backend counters; backends without any add nothing. */
    void add(String name, Object queueData) {
        Labels export = Labels.of("export", name);
        switch (queueData) {
            case FileStore file -> fdatasyncs.add(export, file.fdatasyncCalls());
            case MemoryStore memory -> memoryBytes.add(export, memory.allocatedBytes());
            case S3Export s3 -> {
                S3Stats stats = s3.stats();
                s3Requests.add(Labels.of("export", name, "type", "put"), stats.puts());
                s3Requests.add(Labels.of("export", name, "type", "get"), stats.gets());
                s3Requests.add(Labels.of("export", name, "type", "delete"), stats.deleteRequests());
                s3Up.add(export, stats.bytesUploaded());
                s3Down.add(export, stats.bytesDownloaded());
                s3Deleted.add(export, stats.deletes());
                s3Failures.add(export, stats.uploadFailures());
                s3Checksum.add(export, stats.checksumFailures());
                s3DirtyWaits.add(export, stats.dirtyWaits());
                s3ReadAheads.add(export, stats.readAheads());
                s3Barriers.add(export, stats.flushBarriers());
                s3Dirty.add(export, s3.dirtyBytes());
                s3Cached.add(export, s3.cachedBytes());
                s3Writable.add(export, s3.writable() ? 1 : 0);
            }
            case null, default -> {}
        }
    }

    void addTo(List<MetricSnapshot> out) {
        fdatasyncs.addTo(out);
        memoryBytes.addTo(out);
        for (Snapshots.Counter c : List.of(
                s3Requests, s3Up, s3Down, s3Deleted, s3Failures, s3Checksum, s3DirtyWaits, s3ReadAheads, s3Barriers)) {
            c.addTo(out);
        }
        s3Dirty.addTo(out);
        s3Cached.addTo(out);
        s3Writable.addTo(out);
    }
}
