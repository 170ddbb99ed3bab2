package dev.mqnbd.server.cli;

import dev.mqnbd.storage.s3.S3Settings;
import java.util.LinkedHashMap;
import java.util.Map;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.Option;

/**
 * The S3 backend's settings of {@code mqnbd serve}, for every {@code s3://} export. Each flag given becomes
 * a backend setting ({@code s3.endpoint}, ...), which the backend checks when the export opens; flags not
 * given leave the backend's default (and the AWS SDK's own configuration: environment, profile, role).
 */
final class S3Options {
    @Option(
            names = "--s3-endpoint",
            paramLabel = "URL",
            description = {
                "The S3-compatible store to use instead of AWS, e.g. http://127.0.0.1:9000 (MinIO, Ceph RGW,"
                        + " S3Proxy). Credentials come from the AWS default chain: AWS_ACCESS_KEY_ID and"
                        + " AWS_SECRET_ACCESS_KEY, a profile, or a role."
            })
    @Nullable
    String endpoint;

    @Option(
            names = "--s3-region",
            paramLabel = "REGION",
            description = "The region (default: the SDK's, or us-east-1 with --s3-endpoint).")
    @Nullable
    String region;

    @Option(
            names = "--s3-path-style",
            description = "Address buckets as http://host/BUCKET (most S3-compatible stores need it).")
    boolean pathStyle;

    @Option(
            names = "--s3-unsigned-payload",
            description = {
                "Over plain http, sign requests without hashing their bodies (UNSIGNED-PAYLOAD, as over"
                        + " https): saves a SHA-256 of every block on both sides, for a store on a trusted"
                        + " network; bodies are then guarded only by TCP and the CRC32C sent with each upload"
                        + " (default: bodies are signed over http)."
            })
    boolean unsignedPayload;

    @Option(
            names = "--s3-block-client",
            paramLabel = "direct|sdk",
            description = {
                "How block reads and writes reach the store: direct (default), over mqnbd's own HTTP/1.1"
                        + " client and SigV4 signer, a body read straight into its block and written from it;"
                        + " or sdk, through the AWS SDK's client, as metadata, lease, delete and list requests"
                        + " always go."
            })
    @Nullable
    String blockClient;

    @Option(
            names = "--s3-cache",
            paramLabel = "SIZE",
            description = "Memory for cached blocks, per export (default: 256M).")
    @Nullable
    String cache;

    @Option(
            names = "--s3-max-dirty",
            paramLabel = "SIZE",
            description = {
                "Written data not yet stored, per export; writers wait beyond it (default: half of the Java"
                        + " heap left beside --s3-cache, from 64M to 2G: 4 KiB random writes coalesce into few"
                        + " uploads when every block they touch fits; give -Xmx or this to change it)."
            })
    @Nullable
    String maxDirty;

    @Option(
            names = "--s3-writeback-age",
            paramLabel = "DURATION",
            description = {
                "How long written data may stay in memory before it is uploaded without a FLUSH or FUA"
                        + " (default: 30s, as the kernel's dirty_expire; 0 uploads at once). Blocks written"
                        + " whole go at once, and FLUSH and FUA still wait for their data to be stored."
            })
    @Nullable
    String writebackAge;

    @Option(
            names = "--s3-uploads",
            paramLabel = "N",
            description = "Store requests in flight at once, per export (default: 16). A writer waits"
                    + " before dirtying another block while as many blocks written whole wait for an upload.")
    @Nullable
    String uploads;

    @Option(
            names = "--s3-timeout",
            paramLabel = "DURATION",
            description = {
                "How long a request may wait on the store, retries included, before the client gets EIO"
                        + " (default: 20s; at most 25s, under the Linux client's 30 s)."
            })
    @Nullable
    String timeout;

    @Option(
            names = "--s3-lease-ttl",
            paramLabel = "DURATION",
            description = "Life of the write lease, renewed every third of it (default: 30s).")
    @Nullable
    String leaseTtl;

    @Option(
            names = "--s3-read-ahead",
            paramLabel = "BLOCKS",
            description = "Blocks fetched ahead of sequential reads (default: 4); each is held beside"
                    + " the cache until read to its end, at most twice this number and at least 16.")
    @Nullable
    String readAhead;

    @Option(
            names = "--s3-rescue-dir",
            paramLabel = "DIR",
            description = {
                "Where written blocks that cannot be stored are saved, with the commands to apply them (the"
                        + " write lease went to another server, or the store stayed down through a shutdown;"
                        + " default: $XDG_STATE_HOME/mqnbd/rescue, else ~/.local/state/mqnbd/rescue)."
            })
    @Nullable
    String rescueDir;

    /** Returns the settings given, by backend key ({@code s3.endpoint}, ...). */
    Map<String, String> settings() {
        Map<String, String> settings = new LinkedHashMap<>();
        put(settings, S3Settings.ENDPOINT, endpoint);
        put(settings, S3Settings.REGION, region);
        if (pathStyle) {
            settings.put(S3Settings.PATH_STYLE, "true");
        }
        if (unsignedPayload) {
            settings.put(S3Settings.UNSIGNED_PAYLOAD, "true");
        }
        put(settings, S3Settings.BLOCK_CLIENT, blockClient);
        put(settings, S3Settings.CACHE, cache);
        put(settings, S3Settings.MAX_DIRTY, maxDirty);
        put(settings, S3Settings.WRITEBACK_AGE, writebackAge);
        put(settings, S3Settings.UPLOADS, uploads);
        put(settings, S3Settings.TIMEOUT, timeout);
        put(settings, S3Settings.LEASE_TTL, leaseTtl);
        put(settings, S3Settings.READ_AHEAD, readAhead);
        put(settings, S3Settings.RESCUE_DIR, rescueDir);
        return settings;
    }

    private static void put(Map<String, String> settings, String key, @Nullable String value) {
        if (value != null) {
            settings.put(key, value);
        }
    }
}
