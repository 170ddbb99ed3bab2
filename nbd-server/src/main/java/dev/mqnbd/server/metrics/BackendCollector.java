package dev.mqnbd.server.metrics;

import dev.mqnbd.storage.file.FileStore;
import dev.mqnbd.storage.memory.MemoryStore;
import dev.mqnbd.storage.s3.S3Export;
import dev.mqnbd.storage.s3.S3Requests;
import dev.mqnbd.storage.s3.S3Stats;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.util.List;

/**
 * Reads the counters each backend keeps of its own work (the same ones its stop log line prints), at
 * scrape time: the export's queue data is the backend's shared state.
 */
final class BackendCollector {
    private static final S3Requests.Type[] TYPES = S3Requests.Type.values();

    /** Every family below, in the order the scrape lists them. */
    private final List<Snapshots.Family<?>> families;

    private final Snapshots.Counter fdatasyncs = new Snapshots.Counter(
            "mqnbd_file_fdatasync_calls",
            "fdatasync calls made by a file export (group commit and close); one covers every FLUSH and FUA write"
                    + " waiting for it.");
    private final Snapshots.Distribution fdatasyncBatches = new Snapshots.Distribution(
            "mqnbd_file_fdatasync_batch_requests",
            "FLUSH and FUA requests covered by each group-commit fdatasync of a file export.");
    private final Snapshots.Counter punchHoles = new Snapshots.Counter(
            "mqnbd_file_punch_hole_calls", "fallocate(PUNCH_HOLE) calls that succeeded (TRIM, WRITE_ZEROES).");
    private final Snapshots.Counter zeroRanges = new Snapshots.Counter(
            "mqnbd_file_zero_range_calls", "fallocate(ZERO_RANGE) calls that succeeded (WRITE_ZEROES with NO_HOLE).");
    private final Snapshots.Counter zeroesWritten = new Snapshots.Counter(
            "mqnbd_file_zeroes_written_bytes", "Bytes of zeroes written where the file system refused fallocate.");
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
    private final Snapshots.Counter s3StreamWaits = new Snapshots.Counter(
            "mqnbd_s3_stream_window_waits",
            "Times a writer waited for uploads because s3.uploads blocks written whole already waited for one.");
    private final Snapshots.Counter s3ReadAheads =
            new Snapshots.Counter("mqnbd_s3_read_aheads", "Blocks fetched by read-ahead or CACHE.");
    private final Snapshots.Counter s3Barriers =
            new Snapshots.Counter("mqnbd_s3_flush_barriers", "FLUSH barriers taken (one per batch of FLUSH requests).");
    private final Snapshots.Counter s3CacheHits = new Snapshots.Counter(
            "mqnbd_s3_cache_hits", "Blocks READ requests read without a GET (in memory, or known never written).");
    private final Snapshots.Counter s3CacheMisses = new Snapshots.Counter(
            "mqnbd_s3_cache_misses", "Blocks READ requests had to GET from the store (read-ahead not included).");
    private final Snapshots.Counter s3HttpRequests = new Snapshots.Counter(
            "mqnbd_s3_http_requests",
            "Every request an S3 export made of its store (blocks, metadata, lease, listing), by type and the HTTP"
                    + " status of its last attempt (code 0: no reply); a retried request counts once.");
    private final Snapshots.Distribution s3HttpLatency = new Snapshots.Distribution(
            "mqnbd_s3_http_request_duration_seconds",
            "Latency of the requests an S3 export made of its store, by type, retries included.");
    private final Snapshots.Counter s3Retries = new Snapshots.Counter(
            "mqnbd_s3_http_retries", "Attempts the S3 client sent again after a failed one, by request type.");
    private final Snapshots.Gauge s3InFlight = new Snapshots.Gauge(
            "mqnbd_s3_http_requests_in_flight",
            "Requests to the store begun and not yet ended, by type (type=put: block uploads in flight).");
    private final Snapshots.Counter s3BodyUp =
            new Snapshots.Counter("mqnbd_s3_http_uploaded_bytes", "Bytes of object bodies sent in every kind of PUT.");
    private final Snapshots.Counter s3BodyDown =
            new Snapshots.Counter("mqnbd_s3_http_downloaded_bytes", "Bytes of object bodies received in GETs.");
    private final Snapshots.Counter s3Renewals =
            new Snapshots.Counter("mqnbd_s3_lease_renewals", "Renewals of the write lease that succeeded.");
    private final Snapshots.Counter s3RenewalFailures = new Snapshots.Counter(
            "mqnbd_s3_lease_renewal_failures", "Attempts to renew the write lease that failed (each is retried).");
    private final Snapshots.Gauge s3Dirty =
            new Snapshots.Gauge("mqnbd_s3_dirty_bytes", "Bytes written and not yet uploaded.");
    private final Snapshots.Gauge s3Cached = new Snapshots.Gauge("mqnbd_s3_cached_bytes", "Bytes of blocks cached.");
    private final Snapshots.Gauge s3Writable = new Snapshots.Gauge(
            "mqnbd_s3_lease_held", "1 while the export holds the write lease of its prefix, else 0.");
    private final Snapshots.Gauge s3Lost = new Snapshots.Gauge(
            "mqnbd_s3_lease_lost", "1 once another server took the export's write lease (for good), else 0.");

    BackendCollector() {
        families = List.of(
                fdatasyncs,
                fdatasyncBatches,
                punchHoles,
                zeroRanges,
                zeroesWritten,
                memoryBytes,
                s3Requests,
                s3Up,
                s3Down,
                s3Deleted,
                s3Failures,
                s3Checksum,
                s3DirtyWaits,
                s3StreamWaits,
                s3ReadAheads,
                s3Barriers,
                s3CacheHits,
                s3CacheMisses,
                s3HttpRequests,
                s3HttpLatency,
                s3Retries,
                s3InFlight,
                s3BodyUp,
                s3BodyDown,
                s3Renewals,
                s3RenewalFailures,
                s3Dirty,
                s3Cached,
                s3Writable,
                s3Lost);
    }

    /** Adds export {@code name}'s backend counters; backends without any add nothing. */
    void add(String name, Object queueData) {
        Labels export = Labels.of("export", name);
        switch (queueData) {
            case FileStore file -> {
                fdatasyncs.add(export, file.fdatasyncCalls());
                fdatasyncBatches.add(export, file.fdatasyncBatchSizes());
                punchHoles.add(export, file.punchHoleCalls());
                zeroRanges.add(export, file.zeroRangeCalls());
                zeroesWritten.add(export, file.zeroesWrittenBytes());
            }
            case MemoryStore memory -> memoryBytes.add(export, memory.allocatedBytes());
            case S3Export s3 -> addS3(name, export, s3);
            case null, default -> {}
        }
    }

    private void addS3(String name, Labels export, S3Export s3) {
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
        s3StreamWaits.add(export, stats.streamWaits());
        s3ReadAheads.add(export, stats.readAheads());
        s3Barriers.add(export, stats.flushBarriers());
        s3CacheHits.add(export, stats.cacheHits());
        s3CacheMisses.add(export, stats.cacheMisses());
        S3Requests requests = stats.requests();
        for (S3Requests.Type type : TYPES) {
            Labels typed = Labels.of("export", name, "type", type.label());
            for (int status = 0; status < S3Requests.STATUSES; status++) {
                long n = requests.requests(type, status);
                // A status series appears with its first request.
                if (n > 0) {
                    s3HttpRequests.add(
                            Labels.of("export", name, "type", type.label(), "code", Integer.toString(status)), n);
                }
            }
            s3HttpLatency.add(typed, requests.latency(type));
            s3Retries.add(typed, requests.retries(type));
            s3InFlight.add(typed, requests.inFlight(type));
        }
        s3BodyUp.add(export, requests.bytesUploaded());
        s3BodyDown.add(export, requests.bytesDownloaded());
        s3Renewals.add(export, s3.leaseRenewals());
        s3RenewalFailures.add(export, s3.leaseRenewalFailures());
        s3Dirty.add(export, s3.dirtyBytes());
        s3Cached.add(export, s3.cachedBytes());
        s3Writable.add(export, s3.writable() ? 1 : 0);
        s3Lost.add(export, s3.leaseLost() ? 1 : 0);
    }

    void addTo(List<MetricSnapshot> out) {
        for (Snapshots.Family<?> family : families) {
            family.addTo(out);
        }
    }
}
