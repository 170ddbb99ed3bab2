package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.URI;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.core.checksums.RequestChecksumCalculation;
import software.amazon.awssdk.core.checksums.ResponseChecksumValidation;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.retry.RetryMode;
import software.amazon.awssdk.http.apache.ApacheHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.regions.providers.AwsProfileRegionProvider;
import software.amazon.awssdk.regions.providers.AwsRegionProviderChain;
import software.amazon.awssdk.regions.providers.DefaultAwsRegionProviderChain;
import software.amazon.awssdk.regions.providers.SystemSettingsRegionProvider;
import software.amazon.awssdk.services.s3.LegacyMd5Plugin;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.S3Configuration;

/**
 * The SDK clients of every S3 export in this process: one per (endpoint, region, path-style), shared
 * and reference-counted, because building one costs about two seconds and each holds a connection pool.
 *
 * <p>Each client is synchronous, over the Apache HTTP client, with the SDK's {@code standard} retry mode
 * (exponential backoff with jitter on throttling, 5xx and connection errors); timeouts are set per
 * request (see {@link SdkObjectStore}). Checksums are computed only where an operation requires one
 * ({@code WHEN_REQUIRED}), as {@code Content-MD5} ({@link LegacyMd5Plugin}), which every S3-compatible
 * store understands (batch deletes); uploads set their own CRC32C ({@code x-amz-checksum-crc32c}).
 *
 * <p><b>Upload CPU.</b> The SDK signs the payload whenever the endpoint is plain http (over https it
 * sends {@code UNSIGNED-PAYLOAD}: TLS protects the bytes). With its default aws-chunked encoding that
 * costs a SHA-256 and an HMAC per 128 KiB chunk plus the chunk framing
 * ({@code STREAMING-AWS4-HMAC-SHA256-PAYLOAD}); chunked encoding is turned off here, so the body is
 * hashed once and sent as it is, its SHA-256 in the signed {@code x-amz-content-sha256}, which the
 * store checks against the bytes it received. With the separate MD5 pass gone as well (uploads carry
 * the CRC32C they already had), the server's CPU per GiB written fell by about a quarter (README, S3
 * section). With {@code s3.unsigned-payload} ({@link UnsignedPayload}) the body is not hashed at all.
 *
 * <p><b>Ownership:</b> {@link #acquire} hands out a {@link Handle}; the client is closed when the last
 * handle of its key is closed.
 *
 * <p><b>Threading:</b> safe for concurrent use; acquiring and releasing take a global lock (building a
 * client happens under it, so two exports never build the same client twice).
 */
final class S3Clients {
    private static final System.Logger LOG = System.getLogger(S3Clients.class.getName());

    /** Connections per client: the uploads in flight plus reads, lease and listing. */
    static final int MAX_CONNECTIONS = 256;

    /** What makes two exports share a client. */
    record Key(Optional<URI> endpoint, Region region, boolean pathStyle, boolean unsignedPayload) {}

    private static final class Entry {
        final S3Client client;
        final DefaultCredentialsProvider credentials;
        int refs;

        Entry(S3Client client, DefaultCredentialsProvider credentials) {
            this.client = client;
            this.credentials = credentials;
        }
    }

    // Guarded by S3Clients.class.
    private static final Map<Key, Entry> CLIENTS = new HashMap<>();

    private S3Clients() {}

    /**
     * Returns a handle on the client for {@code settings}, building it if no export uses it yet.
     *
     * <p><b>Ownership:</b> the caller closes the handle.
     *
     * @throws IOException if no region is set and none can be found
     */
    static Handle acquire(S3Settings settings) throws IOException {
        Key key = new Key(settings.endpoint(), region(settings), settings.pathStyle(), settings.unsignedPayload());
        synchronized (S3Clients.class) {
            Entry entry = CLIENTS.get(key);
            if (entry == null) {
                entry = build(key);
                CLIENTS.put(key, entry);
            }
            entry.refs++;
            return new Handle(key, entry);
        }
    }

    /** Returns the number of clients alive, for tests. */
    static synchronized int clients() {
        return CLIENTS.size();
    }

    /**
     * Resolves the region: {@code s3.region}; else the SDK's chain; else, with an endpoint, {@code us-east-1}
     * (S3-compatible stores rarely care). Without an endpoint the chain may ask the instance metadata
     * service, as every AWS tool does.
     */
    static Region region(S3Settings settings) throws IOException {
        if (settings.region().isPresent()) {
            return Region.of(settings.region().get());
        }
        if (settings.endpoint().isPresent()) {
            try {
                Region found = new AwsRegionProviderChain(
                                new SystemSettingsRegionProvider(), new AwsProfileRegionProvider())
                        .getRegion();
                if (found != null) {
                    return found;
                }
            } catch (SdkClientException e) {
                // None configured: the default below.
            }
            return Region.US_EAST_1;
        }
        try {
            return DefaultAwsRegionProviderChain.builder().build().getRegion();
        } catch (SdkClientException e) {
            throw new IOException(
                    "s3: no AWS region found (expected: the setting " + S3Settings.REGION
                            + ", AWS_REGION, or a profile; or " + S3Settings.ENDPOINT + " for an S3-compatible store)",
                    e);
        }
    }

    // ApacheHttpClient (Apache HttpClient 4) is deprecated since SDK 2.5x in favour of apache5-client. It is
    // kept on purpose: it is the long-proven blocking client, and it needs no Netty; moving to
    // Apache5HttpClient is a one-line change here plus the dependency.
    @SuppressWarnings("deprecation")
    private static Entry build(Key key) {
        long start = System.nanoTime();
        DefaultCredentialsProvider credentials =
                DefaultCredentialsProvider.builder().build();
        S3ClientBuilder builder = S3Client.builder()
                .region(key.region())
                .forcePathStyle(key.pathStyle())
                .credentialsProvider(credentials)
                .httpClientBuilder(ApacheHttpClient.builder()
                        .maxConnections(MAX_CONNECTIONS)
                        .connectionTimeout(Duration.ofSeconds(5))
                        .connectionAcquisitionTimeout(S3Settings.MAX_TIMEOUT)
                        .socketTimeout(S3Settings.MAX_TIMEOUT))
                .overrideConfiguration(
                        o -> o.retryStrategy(RetryMode.STANDARD).addExecutionInterceptor(new RetryCounter()))
                .requestChecksumCalculation(RequestChecksumCalculation.WHEN_REQUIRED)
                .responseChecksumValidation(ResponseChecksumValidation.WHEN_REQUIRED)
                .addPlugin(LegacyMd5Plugin.create())
                // One SHA-256 of the whole body over http instead of aws-chunked signing, chunk by chunk.
                .serviceConfiguration(
                        S3Configuration.builder().chunkedEncodingEnabled(false).build());
        key.endpoint().ifPresent(builder::endpointOverride);
        if (key.unsignedPayload()) {
            builder.putAuthScheme(new UnsignedPayload());
        }
        S3Client client = builder.build();
        LOG.log(
                Level.DEBUG,
                () -> "s3: built a client for " + key + " in "
                        + Duration.ofNanos(System.nanoTime() - start).toMillis() + " ms");
        return new Entry(client, credentials);
    }

    /**
     * One export's use of a shared client.
     *
     * <p><b>Threading:</b> {@link #client()} from any thread; {@link #close()} once, after the last request.
     */
    static final class Handle implements AutoCloseable {
        private final Key key;
        private final Entry entry;
        private boolean closed;

        private Handle(Key key, Entry entry) {
            this.key = key;
            this.entry = entry;
        }

        /** Returns the client; valid until this handle is closed. */
        S3Client client() {
            return entry.client;
        }

        /** Returns the credentials the client signs with (the SDK's default chain). */
        AwsCredentialsProvider credentials() {
            return entry.credentials;
        }

        /** Returns what the client was built for. */
        Key key() {
            return key;
        }

        /** Releases the client; the last handle closes it. A second call does nothing. */
        @Override
        public void close() {
            synchronized (S3Clients.class) {
                if (closed) {
                    return;
                }
                closed = true;
                if (--entry.refs > 0) {
                    return;
                }
                CLIENTS.remove(key);
            }
            entry.client.close();
            entry.credentials.close();
        }
    }
}
