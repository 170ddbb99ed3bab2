package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.Sizes;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * The S3 backend's settings, read from {@link DeviceOptions#settings()} (the command line's {@code
 * --set s3.KEY=VALUE} or however the front end spells them). Every key is optional:
 *
 * <table>
 *   <caption>S3 settings</caption>
 *   <tr><th>key</th><th>default</th><th>meaning</th></tr>
 *   <tr><td>{@code s3.endpoint}</td><td>AWS</td><td>URL of an S3-compatible store, e.g.
 *       {@code http://127.0.0.1:9000}</td></tr>
 *   <tr><td>{@code s3.region}</td><td>SDK chain</td><td>signing region; without it the SDK's chain
 *       ({@code AWS_REGION}, {@code aws.region}, the profile) decides, and {@code us-east-1} is taken
 *       when an endpoint is given and the chain finds none</td></tr>
 *   <tr><td>{@code s3.path-style}</td><td>false</td><td>{@code true}: {@code http://host/bucket/key}
 *       addressing, which most S3-compatible stores (S3Proxy, MinIO) need</td></tr>
 *   <tr><td>{@code s3.unsigned-payload}</td><td>false</td><td>{@code true}: send {@code
 *       UNSIGNED-PAYLOAD} over plain http too, as the SDK does over https, instead of hashing every body
 *       into the signature (for a store on a trusted network; see {@link UnsignedPayload})</td></tr>
 *   <tr><td>{@code s3.block-client}</td><td>direct</td><td>how block GETs and PUTs reach the store:
 *       {@code direct}, over mqnbd's own HTTP/1.1 client and SigV4 signer ({@link DirectObjectStore});
 *       {@code sdk}, through the AWS SDK like every other request</td></tr>
 *   <tr><td>{@code s3.cache}</td><td>256M</td><td>bytes of clean blocks kept in memory</td></tr>
 *   <tr><td>{@code s3.max-dirty}</td><td>half of the JVM's heap left beside {@code s3.cache}, from 64M
 *       to 2G ({@link #defaultMaxDirty})</td><td>bytes of written blocks not yet uploaded; past it writers
 *       wait (at least one block)</td></tr>
 *   <tr><td>{@code s3.writeback-age}</td><td>30s</td><td>how long a block stays dirty before it is
 *       uploaded without a FLUSH, FUA or memory pressure (0 to 1h); blocks written whole go at
 *       once</td></tr>
 *   <tr><td>{@code s3.uploads}</td><td>16</td><td>uploads and deletes in flight at once; also the streaming window (see {@code DirtyBlocks})</td></tr>
 *   <tr><td>{@code s3.timeout}</td><td>20s</td><td>how long one request may wait for the store,
 *       retries included, before it ends with EIO (100ms to 25s: under the kernel client's 30 s)</td></tr>
 *   <tr><td>{@code s3.lease-ttl}</td><td>30s</td><td>lifetime of the write lease, renewed every third
 *       of it (1s to 1h)</td></tr>
 *   <tr><td>{@code s3.read-ahead}</td><td>4</td><td>blocks fetched ahead of sequential reads (0 to
 *       1024); each is held beside the cache until read to its end (at most twice this, at least 16)</td></tr>
 *   <tr><td>{@code s3.rescue-dir}</td><td>{@code $XDG_STATE_HOME/mqnbd/rescue} (else {@code
 *       ~/.local/state/mqnbd/rescue})</td><td>where dirty blocks that cannot be stored are saved (the
 *       lease went to another server, or the store stayed down through a shutdown)</td></tr>
 * </table>
 *
 * Credentials are not settings: the SDK's default chain finds them ({@code AWS_ACCESS_KEY_ID} and
 * {@code AWS_SECRET_ACCESS_KEY}, the {@code aws.accessKeyId} system properties, a profile, a web
 * identity, a container or instance role).
 *
 * @param endpoint the store's URL, or empty for AWS itself
 * @param region the region, or empty for the SDK's chain
 * @param pathStyle whether to use path-style addressing
 * @param unsignedPayload whether to leave bodies out of the signature over plain http too
 * @param directBlocks whether block GETs and PUTs bypass the SDK ({@code s3.block-client=direct})
 * @param cacheBytes bound of the clean block cache
 * @param maxDirtyBytes bound of the written blocks not uploaded yet
 * @param writebackAge how long a block may stay dirty without pressure
 * @param uploads uploads in flight at once
 * @param timeout the longest a request waits for the store
 * @param leaseTtl the write lease's lifetime
 * @param readAhead blocks fetched ahead of a sequential read
 * @param rescueDir where dirty blocks that cannot be stored are saved
 */
public record S3Settings(
        Optional<URI> endpoint,
        Optional<String> region,
        boolean pathStyle,
        boolean unsignedPayload,
        boolean directBlocks,
        long cacheBytes,
        long maxDirtyBytes,
        Duration writebackAge,
        int uploads,
        Duration timeout,
        Duration leaseTtl,
        int readAhead,
        Path rescueDir) {
    /** Key of the endpoint URL. */
    public static final String ENDPOINT = "s3.endpoint";
    /** Key of the region. */
    public static final String REGION = "s3.region";
    /** Key of the path-style switch. */
    public static final String PATH_STYLE = "s3.path-style";
    /** Key of the unsigned-payload switch. */
    public static final String UNSIGNED_PAYLOAD = "s3.unsigned-payload";
    /** Key of the block client: {@code direct} or {@code sdk}. */
    public static final String BLOCK_CLIENT = "s3.block-client";
    /** Key of the cache size. */
    public static final String CACHE = "s3.cache";
    /** Key of the dirty bound. */
    public static final String MAX_DIRTY = "s3.max-dirty";
    /** Key of the age at which a dirty block is uploaded. */
    public static final String WRITEBACK_AGE = "s3.writeback-age";
    /** Key of the number of uploads in flight. */
    public static final String UPLOADS = "s3.uploads";
    /** Key of the per-request timeout. */
    public static final String TIMEOUT = "s3.timeout";
    /** Key of the lease lifetime. */
    public static final String LEASE_TTL = "s3.lease-ttl";
    /** Key of the read-ahead in blocks. */
    public static final String READ_AHEAD = "s3.read-ahead";
    /** Key of the rescue directory. */
    public static final String RESCUE_DIR = "s3.rescue-dir";

    /** Every key this backend reads. */
    public static final List<String> KEYS = List.of(
            ENDPOINT,
            REGION,
            PATH_STYLE,
            UNSIGNED_PAYLOAD,
            BLOCK_CLIENT,
            CACHE,
            MAX_DIRTY,
            WRITEBACK_AGE,
            UPLOADS,
            TIMEOUT,
            LEASE_TTL,
            READ_AHEAD,
            RESCUE_DIR);

    /** Least default {@code s3.max-dirty}. */
    static final long MIN_DEFAULT_MAX_DIRTY = 64L << 20;

    /** Most default {@code s3.max-dirty}. */
    static final long MAX_DEFAULT_MAX_DIRTY = 2L << 30;

    static final Duration MAX_WRITEBACK_AGE = Duration.ofHours(1);

    /** Shortest {@code s3.timeout}. */
    static final Duration MIN_TIMEOUT = Duration.ofMillis(100);

    /** Longest {@code s3.timeout}: leaves 5 s of the kernel client's 30 s for everything else. */
    static final Duration MAX_TIMEOUT = Duration.ofSeconds(25);

    static final Duration MIN_LEASE_TTL = Duration.ofSeconds(1);
    static final Duration MAX_LEASE_TTL = Duration.ofHours(1);

    /** The defaults: AWS, the SDK's region, virtual-host addressing, and the sizes in the table above. */
    public static final S3Settings DEFAULT = parse(DeviceOptions.DEFAULT);

    /**
     * Reads the {@code s3.*} settings of {@code options}; other schemes' keys are ignored.
     *
     * @throws IllegalArgumentException if an {@code s3.*} key is unknown or a value is malformed or out of
     *     range; the message names the key and what was expected
     */
    public static S3Settings parse(DeviceOptions options) {
        for (String key : options.settings().keySet()) {
            if (key.startsWith("s3.") && !KEYS.contains(key)) {
                throw new IllegalArgumentException(
                        "setting " + key + ": unknown (expected: one of " + String.join(", ", KEYS) + ")");
            }
        }
        Optional<URI> endpoint =
                Optional.ofNullable(options.settings().get(ENDPOINT)).map(S3Settings::parseEndpoint);
        Optional<String> region =
                Optional.ofNullable(options.settings().get(REGION)).map(S3Settings::parseRegion);
        boolean pathStyle = parseBoolean(PATH_STYLE, options.setting(PATH_STYLE, "false"));
        boolean unsignedPayload = parseBoolean(UNSIGNED_PAYLOAD, options.setting(UNSIGNED_PAYLOAD, "false"));
        boolean directBlocks =
                switch (options.setting(BLOCK_CLIENT, "direct").strip().toLowerCase(Locale.ROOT)) {
                    case "direct" -> true;
                    case "sdk" -> false;
                    default ->
                        throw new IllegalArgumentException(BLOCK_CLIENT + ": \"" + options.setting(BLOCK_CLIENT, "")
                                + "\" (expected: direct or sdk)");
                };
        long cache = parseBytes(CACHE, options.setting(CACHE, "256M"), 0);
        String maxDirtyText = options.settings().get(MAX_DIRTY);
        long maxDirty = maxDirtyText == null
                ? defaultMaxDirty(Runtime.getRuntime().maxMemory(), cache)
                : parseBytes(MAX_DIRTY, maxDirtyText, 1);
        Duration writebackAge = parseDuration(
                WRITEBACK_AGE, options.setting(WRITEBACK_AGE, "30s"), Duration.ZERO, MAX_WRITEBACK_AGE, "");
        int uploads = parseInt(UPLOADS, options.setting(UPLOADS, "16"), 1, 1024);
        Duration timeout = parseDuration(
                TIMEOUT,
                options.setting(TIMEOUT, "20s"),
                MIN_TIMEOUT,
                MAX_TIMEOUT,
                ", so that every request ends before the kernel client's 30 s timeout");
        Duration leaseTtl =
                parseDuration(LEASE_TTL, options.setting(LEASE_TTL, "30s"), MIN_LEASE_TTL, MAX_LEASE_TTL, "");
        int readAhead = parseInt(READ_AHEAD, options.setting(READ_AHEAD, "4"), 0, 1024);
        Path rescueDir = parseDirectory(
                RESCUE_DIR,
                options.settings().getOrDefault(RESCUE_DIR, defaultRescueDir().toString()));
        return new S3Settings(
                endpoint,
                region,
                pathStyle,
                unsignedPayload,
                directBlocks,
                cache,
                maxDirty,
                writebackAge,
                uploads,
                timeout,
                leaseTtl,
                readAhead,
                rescueDir);
    }

    /**
     * Returns the default {@code s3.max-dirty}: half of what a heap of {@code maxHeap} bytes leaves beside
     * a clean cache of {@code cacheBytes}, rounded down to a MiB, from 64 MiB to 2 GiB. Random writes coalesce best when every block
     * they touch fits (a 1 GiB export's 4 KiB random writes then cost a PUT per block per {@code
     * s3.writeback-age}), while the other half keeps a small machine's heap from running out. Per export:
     * a server of several exports may want a smaller value.
     */
    static long defaultMaxDirty(long maxHeap, long cacheBytes) {
        long half = Math.max(0, maxHeap - cacheBytes) / 2;
        return Math.clamp(half & -(1L << 20), MIN_DEFAULT_MAX_DIRTY, MAX_DEFAULT_MAX_DIRTY);
    }

    /** Returns {@code $XDG_STATE_HOME/mqnbd/rescue}, or {@code ~/.local/state/mqnbd/rescue} without it. */
    static Path defaultRescueDir() {
        String state = System.getenv("XDG_STATE_HOME");
        Path base = state != null && !state.isBlank()
                ? Path.of(state)
                : Path.of(System.getProperty("user.home", "."), ".local", "state");
        return base.resolve("mqnbd").resolve("rescue");
    }

    private static Path parseDirectory(String key, String text) {
        try {
            if (!text.isBlank()) {
                return Path.of(text.strip()).toAbsolutePath();
            }
        } catch (InvalidPathException e) {
            // Reported below.
        }
        throw new IllegalArgumentException(key + ": \"" + text + "\" (expected: a directory path)");
    }

    private static URI parseEndpoint(String text) {
        String expected = " (expected: an http or https URL such as http://127.0.0.1:9000)";
        URI uri;
        try {
            uri = new URI(text.strip());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException(ENDPOINT + ": \"" + text + "\"" + expected);
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        if (!(scheme.equals("http") || scheme.equals("https")) || uri.getHost() == null) {
            throw new IllegalArgumentException(ENDPOINT + ": \"" + text + "\"" + expected);
        }
        return uri;
    }

    private static String parseRegion(String text) {
        String region = text.strip();
        if (region.isEmpty()
                || !region.chars().allMatch(c -> (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            throw new IllegalArgumentException(
                    REGION + ": \"" + text + "\" (expected: a region name such as eu-west-1)");
        }
        return region;
    }

    private static boolean parseBoolean(String key, String text) {
        return switch (text.strip().toLowerCase(Locale.ROOT)) {
            case "true" -> true;
            case "false" -> false;
            default -> throw new IllegalArgumentException(key + ": \"" + text + "\" (expected: true or false)");
        };
    }

    private static long parseBytes(String key, String text, long min) {
        long bytes;
        try {
            bytes = Sizes.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(key + ": \"" + text + "\" (expected: a size such as 64M)", e);
        }
        if (bytes < min) {
            throw new IllegalArgumentException(key + ": \"" + text + "\" (expected: at least " + min + " bytes)");
        }
        return bytes;
    }

    private static int parseInt(String key, String text, int min, int max) {
        int value;
        try {
            value = Integer.parseInt(text.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    key + ": \"" + text + "\" (expected: a number from " + min + " to " + max + ")");
        }
        if (value < min || value > max) {
            throw new IllegalArgumentException(key + ": " + value + " (expected: " + min + " to " + max + ")");
        }
        return value;
    }

    /** Parses {@code 20}, {@code 20s}, {@code 500ms}, {@code 2m}: seconds unless a unit follows. */
    static Duration parseDuration(String key, String text, Duration min, Duration max, String why) {
        String s = text.strip().toLowerCase(Locale.ROOT);
        long factorMillis = 1000;
        if (s.endsWith("ms")) {
            factorMillis = 1;
            s = s.substring(0, s.length() - 2);
        } else if (s.endsWith("s")) {
            s = s.substring(0, s.length() - 1);
        } else if (s.endsWith("m")) {
            factorMillis = 60_000;
            s = s.substring(0, s.length() - 1);
        } else if (s.endsWith("h")) {
            factorMillis = 3_600_000;
            s = s.substring(0, s.length() - 1);
        }
        String range = " (expected: " + describe(min) + " to " + describe(max) + why + ")";
        long value;
        try {
            value = Long.parseLong(s.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + ": \"" + text + "\" (expected: a duration such as 20s or 500ms)");
        }
        if (value < 0 || value > Long.MAX_VALUE / factorMillis) {
            throw new IllegalArgumentException(key + ": \"" + text + "\"" + range);
        }
        Duration d = Duration.ofMillis(value * factorMillis);
        if (d.compareTo(min) < 0 || d.compareTo(max) > 0) {
            throw new IllegalArgumentException(key + ": \"" + text + "\"" + range);
        }
        return d;
    }

    private static String describe(Duration d) {
        if (!d.isZero() && d.toMillis() % 3_600_000 == 0) {
            return d.toHours() + "h";
        }
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + "s" : d.toMillis() + "ms";
    }
}
