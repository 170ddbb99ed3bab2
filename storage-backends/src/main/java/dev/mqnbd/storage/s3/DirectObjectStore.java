package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.s3.S3Requests.Type;
import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.time.Duration;
import java.time.Instant;
import java.util.Collection;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;
import software.amazon.awssdk.auth.credentials.AwsCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.AwsSessionCredentials;
import software.amazon.awssdk.core.exception.SdkException;

/**
 * The {@link ObjectStore} of one bucket whose block GETs and PUTs, the data path, go over mqnbd's own
 * HTTP/1.1 client ({@link HttpConnections}) signed by {@link SigV4}; conditional PUTs (metadata, lease),
 * deletes and listings go through the AWS SDK ({@link SdkObjectStore}), where its XML handling and the
 * stores' quirks are.
 *
 * <p>Why: the SDK's per-request pipeline (endpoint and auth-scheme resolution, interceptors, marshalling,
 * {@code Expect: 100-continue}, a copy of each body through its streams) cost more CPU than moving the
 * bytes, about twice s3backer's per GiB read. Here a GET's body is read from the socket straight into an
 * array of the announced length, a PUT's body is written from the caller's array as it is, and a request
 * costs one SHA-256 of its canonical request and one HMAC with a signing key kept for the day.
 *
 * <p>As the SDK does: the endpoint and addressing (path-style or virtual-host) are the SDK's own ({@link
 * software.amazon.awssdk.services.s3.S3Utilities#getUrl}); credentials come from the SDK's default chain,
 * session tokens included; over plain http the body's SHA-256 is signed unless {@code s3.unsigned-payload}
 * is set, over https {@code UNSIGNED-PAYLOAD} is sent; a PUT carries the CRC32C of its body; a request is
 * tried at most {@link #MAX_ATTEMPTS} times, each attempt given half of the timeout (the whole of it below
 * two seconds), with exponential backoff and jitter between attempts, on no reply, 5xx, 408, 409, 429,
 * {@code BadDigest} and {@code RequestTimeout}. A pooled connection the store closed while idle is replaced
 * without counting as an attempt.
 *
 * <p><b>Ownership:</b> holds one reference to the shared SDK client (through its {@link SdkObjectStore})
 * and its own connections; {@link #close()} releases both.
 *
 * <p><b>Threading:</b> safe for concurrent use; every call blocks its thread (virtual threads here).
 */
final class DirectObjectStore implements ObjectStore {
    /** Attempts per request, as the SDK's {@code standard} retry mode. */
    static final int MAX_ATTEMPTS = 3;

    private static final String BINARY = "application/octet-stream";

    private final SdkObjectStore sdk;
    private final S3Requests requests;
    private final AwsCredentialsProvider credentials;
    private final SigV4 signer;
    private final HttpConnections connections;
    private final String bucket;
    /** The encoded path before an object's key: {@code /bucket/} (path-style) or {@code /}. */
    private final String pathPrefix;
    /** Whether bodies are hashed into the signature (plain http without {@code s3.unsigned-payload}). */
    private final boolean signPayload;

    /**
     * Wraps {@code handle}'s client for {@code bucket}, counting its requests in {@code requests}.
     *
     * <p><b>Ownership:</b> takes over {@code handle}; {@link #close()} closes it.
     */
    DirectObjectStore(S3Clients.Handle handle, String bucket, S3Requests requests) {
        this.sdk = new SdkObjectStore(handle, bucket, requests);
        this.requests = requests;
        this.credentials = handle.credentials();
        this.bucket = bucket;
        String probe = "mqnbd-probe";
        URI url;
        try {
            url = handle.client()
                    .utilities()
                    .getUrl(b -> b.bucket(bucket).key(probe))
                    .toURI();
        } catch (URISyntaxException | SdkException e) {
            sdk.close();
            throw new IllegalArgumentException("s3: no URL for bucket " + bucket + ": " + e.getMessage(), e);
        }
        String path = url.getRawPath();
        this.pathPrefix = path.substring(0, path.length() - probe.length());
        boolean tls = "https".equalsIgnoreCase(url.getScheme());
        int port = url.getPort() > 0 ? url.getPort() : tls ? 443 : 80;
        this.connections = new HttpConnections(url.getHost(), port, tls);
        this.signPayload = !tls && !handle.key().unsignedPayload();
        this.signer = new SigV4(handle.key().region().id(), "s3");
    }

    @Override
    public @Nullable StoredObject get(String key, Duration timeout, IntFunction<byte[]> buffers) throws StoreException {
        long start = requests.begin(Type.GET);
        int[] status = {0};
        try {
            HttpConnections.Response r = send(Type.GET, "GET", key, null, Map.of(), timeout, status, buffers);
            if (r.status() == 200) {
                requests.downloaded(r.body().length);
                // OWNERSHIP: the array is ours alone.
                return new StoredObject(r.body(), r.header("etag", ""), r.metadata());
            }
            return null; // 404 NoSuchKey: send() threw for every other status
        } finally {
            requests.end(Type.GET, start, status[0]);
        }
    }

    @Override
    public String put(String key, byte[] data, Map<String, String> metadata, Duration timeout) throws StoreException {
        long start = requests.begin(Type.PUT);
        int[] status = {0};
        try {
            HttpConnections.Response r = send(Type.PUT, "PUT", key, data, metadata, timeout, status, byte[]::new);
            requests.uploaded(data.length);
            return r.header("etag", "");
        } finally {
            requests.end(Type.PUT, start, status[0]);
        }
    }

    /**
     * Sends one request, retried as the class describes, and returns its successful reply (or, for a GET,
     * a 404 {@code NoSuchKey}); {@code status[0]} is left at the last attempt's status (0: no reply).
     */
    private HttpConnections.Response send(
            Type type,
            String method,
            String key,
            byte @Nullable [] body,
            Map<String, String> metadata,
            Duration timeout,
            int[] status,
            IntFunction<byte[]> bodies)
            throws StoreException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long attemptNanos = timeout.compareTo(Duration.ofSeconds(2)) < 0 ? timeout.toNanos() : timeout.toNanos() / 2;
        String path = pathPrefix + SigV4.encodePath(key);
        String payloadHash =
                body == null ? SigV4.EMPTY_SHA256 : signPayload ? SigV4.sha256Hex(body) : SigV4.UNSIGNED_PAYLOAD;
        String crc = body == null ? null : SdkObjectStore.crc32c(body, metadata.get(BlockCache.CRC_KEY));
        for (int attempt = 1; ; attempt++) {
            StoreException failure;
            boolean throttled = false;
            try {
                long attemptDeadline = Math.min(deadline, System.nanoTime() + attemptNanos);
                HttpConnections.Response r = connections.exchange(
                        method,
                        path,
                        headers(method, path, body, metadata, payloadHash, crc),
                        body,
                        attemptDeadline,
                        bodies);
                status[0] = r.status();
                if (r.status() / 100 == 2) {
                    return r;
                }
                String code = r.code();
                if (r.status() == 404 && body == null && !"NoSuchBucket".equals(code)) {
                    return r;
                }
                boolean retryable = StoreException.retryableReply(r.status(), code);
                throttled = r.status() == 429 || r.status() == 503 || "SlowDown".equals(code);
                failure = new StoreException(
                        what(method, body) + " " + where(key) + ": " + r.status() + " " + code + " (" + r.message()
                                + ")",
                        r.status(),
                        retryable);
            } catch (IOException e) {
                status[0] = 0;
                failure = new StoreException(
                        what(method, body) + " " + where(key) + ": no reply (" + e.getMessage() + ")", 0, true, e);
            }
            if (!failure.retryable()
                    || attempt >= MAX_ATTEMPTS
                    || Thread.currentThread().isInterrupted()) {
                throw failure;
            }
            long base = throttled ? 500_000_000L : 100_000_000L;
            long delay = (long) ((base << (attempt - 1))
                    * (0.5 + 0.5 * ThreadLocalRandom.current().nextDouble()));
            long left = deadline - System.nanoTime();
            if (left <= delay + 1_000_000) {
                throw failure;
            }
            requests.retryCounter(type).increment();
            try {
                Thread.sleep(Duration.ofNanos(delay));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw failure;
            }
        }
    }

    /** Returns the request's headers but {@code Host}, {@code Content-Length} and the signature's own. */
    private TreeMap<String, String> headers(
            String method,
            String path,
            byte @Nullable [] body,
            Map<String, String> metadata,
            String payloadHash,
            @Nullable String crc) {
        AwsCredentials c = credentials.resolveCredentials();
        String amzDate = SigV4.amzDate(Instant.now());
        TreeMap<String, String> signed = new TreeMap<>();
        signed.put("host", connections.hostHeader());
        signed.put("x-amz-content-sha256", payloadHash);
        signed.put("x-amz-date", amzDate);
        if (c instanceof AwsSessionCredentials session) {
            signed.put("x-amz-security-token", session.sessionToken());
        }
        if (body != null) {
            signed.put("content-type", BINARY);
            signed.put("x-amz-checksum-crc32c", crc);
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                signed.put("x-amz-meta-" + m.getKey().toLowerCase(Locale.ROOT), m.getValue());
            }
        }
        String authorization =
                signer.authorization(c.accessKeyId(), c.secretAccessKey(), method, path, signed, payloadHash, amzDate);
        signed.put("authorization", authorization);
        return signed;
    }

    private static String what(String method, byte @Nullable [] body) {
        return body == null ? method : method + " of " + body.length + " bytes to";
    }

    private String where(String key) {
        return "s3://" + bucket + "/" + key;
    }

    @Override
    public String putIfAbsent(String key, byte[] data, Duration timeout) throws StoreException {
        return sdk.putIfAbsent(key, data, timeout);
    }

    @Override
    public String putIfMatch(String key, byte[] data, String etag, Duration timeout) throws StoreException {
        return sdk.putIfMatch(key, data, etag, timeout);
    }

    @Override
    public void delete(String key, Duration timeout) throws StoreException {
        sdk.delete(key, timeout);
    }

    @Override
    public void deleteAll(Collection<String> keys, Duration timeout) throws StoreException {
        sdk.deleteAll(keys, timeout);
    }

    @Override
    public void list(String prefix, Consumer<String> keys, Duration timeout) throws StoreException {
        sdk.list(prefix, keys, timeout);
    }

    @Override
    public String describe() {
        return sdk.describe();
    }

    @Override
    public void close() {
        connections.close();
        sdk.close();
    }

    @Override
    public String toString() {
        return "DirectObjectStore[" + describe() + "]";
    }
}
