package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.s3.S3Requests.Type;
import java.io.IOException;
import java.io.InputStream;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import java.util.zip.CRC32C;
import org.jspecify.annotations.Nullable;
import software.amazon.awssdk.awscore.AwsRequestOverrideConfiguration;
import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.ContentStreamProvider;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.model.Delete;
import software.amazon.awssdk.services.s3.model.DeleteObjectsResponse;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.ListObjectsV2Response;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.ObjectIdentifier;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;
import software.amazon.awssdk.services.s3.model.PutObjectResponse;
import software.amazon.awssdk.services.s3.model.S3Error;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * The {@link ObjectStore} of one bucket over a shared synchronous {@link S3Client}.
 *
 * <p>Each request gets {@code apiCallTimeout = timeout} (the whole call, the SDK's retries included)
 * and {@code apiCallAttemptTimeout} of half of it (at least the whole of it below two seconds), so one
 * stuck attempt still leaves time for a retry. Uploads carry the CRC32C of their bytes ({@code
 * x-amz-checksum-crc32c}, computed here in one hardware-accelerated pass; a store that knows the header
 * refuses bytes that do not match it) and, over plain http, the SHA-256 the request is signed with
 * (see {@link S3Clients}). SDK
 * exceptions become {@link StoreException}s that say whether a retry may help. Every request is counted
 * in the export's {@link S3Requests}: type, HTTP status, latency, body bytes and the SDK's retries.
 *
 * <p><b>Stores that differ.</b> Ceph's RADOS Gateway sends quoted ETags but never matches a quoted
 * {@code If-Match} (412): a conditional PUT that fails so is checked with a GET, and when the object is
 * still at the expected tag it is sent again with the tag unquoted, as every later one is ({@link
 * #putIfMatch}). The gateway also ignores {@code If-Match} on DELETE, so nothing here deletes
 * conditionally, and it ignores {@code x-amz-checksum-crc32c} on upload; the download's CRC32C check
 * ({@link BlockCache}) still catches damaged bytes.
 *
 * <p><b>Ownership:</b> holds one reference to the shared client; {@link #close()} drops it.
 *
 * <p><b>Threading:</b> safe for concurrent use; every call blocks its thread.
 */
final class SdkObjectStore implements ObjectStore {
    private static final System.Logger LOG = System.getLogger(SdkObjectStore.class.getName());
    private static final String BINARY = "application/octet-stream";
    private static final String JSON = "application/json";

    private final S3Clients.Handle handle;
    private final S3Client s3;
    private final String bucket;
    private final S3Requests requests;
    /** Whether the store matches {@code If-Match} only against unquoted entity tags; learnt on a 412. */
    private volatile boolean unquotedIfMatch;

    /**
     * Wraps {@code handle}'s client for {@code bucket}, counting its requests in {@code requests}.
     *
     * <p><b>Ownership:</b> takes over {@code handle}; {@link #close()} closes it.
     */
    SdkObjectStore(S3Clients.Handle handle, String bucket, S3Requests requests) {
        this.handle = handle;
        this.s3 = handle.client();
        this.bucket = bucket;
        this.requests = requests;
    }

    @Override
    public @Nullable StoredObject get(String key, Duration timeout, IntFunction<byte[]> buffers) throws StoreException {
        long start = requests.begin(Type.GET);
        int status = 0;
        try {
            int[] replied = {0};
            StoredObject stored = s3.getObject(
                    b -> b.bucket(bucket).key(key).overrideConfiguration(timeouts(timeout, Type.GET)),
                    (response, in) -> {
                        replied[0] = response.sdkHttpResponse().statusCode();
                        return readBody(response, in, buffers);
                    });
            status = replied[0];
            requests.downloaded(stored.data().length);
            return stored;
        } catch (NoSuchKeyException e) {
            status = status(e);
            return null;
        } catch (SdkException e) {
            status = status(e);
            throw failure("GET", key, e);
        } finally {
            requests.end(Type.GET, start, status);
        }
    }

    /**
     * Reads a GET's body straight into an array of the length the reply announced (a block: the block
     * size), without the growing and copying buffer of {@code getObjectAsBytes}.
     */
    static StoredObject readBody(GetObjectResponse response, InputStream in, IntFunction<byte[]> buffers)
            throws IOException {
        Long announced = response.contentLength();
        byte[] data;
        if (announced == null || announced < 0 || announced > Integer.MAX_VALUE - 8) {
            data = in.readAllBytes();
        } else {
            data = buffers.apply(announced.intValue());
            int n = 0;
            for (int r; n < data.length && (r = in.read(data, n, data.length - n)) >= 0; ) {
                n += r;
            }
            if (n != data.length || in.read() != -1) {
                throw new IOException("object body of " + n + " bytes where Content-Length said " + announced);
            }
        }
        // OWNERSHIP: the array is ours alone.
        return new StoredObject(data, response.eTag(), response.metadata());
    }

    @Override
    public String put(String key, byte[] data, Map<String, String> metadata, Duration timeout) throws StoreException {
        return put(key, data, metadata, BINARY, null, null, timeout, Type.PUT, "PUT");
    }

    @Override
    public String putIfAbsent(String key, byte[] data, Duration timeout) throws StoreException {
        return put(key, data, Map.of(), JSON, "*", null, timeout, Type.CONDITIONAL_PUT, "PUT (If-None-Match: *)");
    }

    @Override
    public String putIfMatch(String key, byte[] data, String etag, Duration timeout) throws StoreException {
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean unquoted = unquotedIfMatch;
        try {
            return putIfMatchAsSent(key, data, unquoted ? unquote(etag) : etag, timeout);
        } catch (StoreException e) {
            if (!e.preconditionFailed() || unquoted || unquote(etag).equals(etag)) {
                throw e;
            }
            // Ceph's RADOS Gateway never matches a quoted If-Match, although it sends its ETags quoted: if the
            // object is still at etag, the 412 was that, and the same PUT with the tag unquoted is the answer.
            StoredObject current = get(key, left(deadline, e));
            if (current == null || !unquote(current.etag()).equals(unquote(etag))) {
                throw e;
            }
            String tag = putIfMatchAsSent(key, data, unquote(etag), left(deadline, e));
            if (!unquotedIfMatch) {
                unquotedIfMatch = true;
                LOG.log(
                        Level.INFO,
                        describe() + " matches If-Match only against unquoted entity tags (as Ceph's RADOS Gateway"
                                + " does): sending them unquoted from now on");
            }
            return tag;
        }
    }

    /** Sends a PUT with {@code If-Match: etag}, {@code etag} exactly as given. */
    private String putIfMatchAsSent(String key, byte[] data, String etag, Duration timeout) throws StoreException {
        try {
            return put(
                    key,
                    data,
                    Map.of(),
                    JSON,
                    null,
                    etag,
                    timeout,
                    Type.CONDITIONAL_PUT,
                    "PUT (If-Match: " + etag + ")");
        } catch (StoreException e) {
            if (e.status() == 404) {
                // AWS answers If-Match on a missing object with 404: the object is not the one we expected.
                throw new StoreException(e.getMessage(), 412, false, e);
            }
            throw e;
        }
    }

    /** Returns an entity tag without its surrounding quotes. */
    static String unquote(String etag) {
        return etag.length() >= 2 && etag.startsWith("\"") && etag.endsWith("\"")
                ? etag.substring(1, etag.length() - 1)
                : etag;
    }

    /** Returns the time left until {@code deadline}; throws {@code failure} when none is. */
    private static Duration left(long deadline, StoreException failure) throws StoreException {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw failure;
        }
        return Duration.ofNanos(left);
    }

    private String put(
            String key,
            byte[] data,
            Map<String, String> metadata,
            String contentType,
            @Nullable String ifNoneMatch,
            @Nullable String ifMatch,
            Duration timeout,
            Type type,
            String what)
            throws StoreException {
        PutObjectRequest.Builder request = PutObjectRequest.builder()
                .bucket(bucket)
                .key(key)
                .contentType(contentType)
                .contentLength((long) data.length)
                .checksumCRC32C(crc32c(data, metadata.get(BlockCache.CRC_KEY)))
                .metadata(metadata)
                .overrideConfiguration(timeouts(timeout, type));
        if (ifNoneMatch != null) {
            request.ifNoneMatch(ifNoneMatch);
        }
        if (ifMatch != null) {
            request.ifMatch(ifMatch);
        }
        long start = requests.begin(type);
        int status = 0;
        try {
            // OWNERSHIP: the SDK reads data (possibly again, on a retry) only during this call.
            PutObjectResponse r = s3.putObject(
                    request.build(),
                    RequestBody.fromContentProvider(
                            ContentStreamProvider.fromByteArrayUnsafe(data), data.length, contentType));
            status = r.sdkHttpResponse().statusCode();
            requests.uploaded(data.length);
            return r.eTag();
        } catch (SdkException e) {
            status = status(e);
            throw failure(what, key, e);
        } finally {
            requests.end(type, start, status);
        }
    }

    @Override
    public void delete(String key, Duration timeout) throws StoreException {
        long start = requests.begin(Type.DELETE);
        int status = 0;
        try {
            status = s3.deleteObject(
                            b -> b.bucket(bucket).key(key).overrideConfiguration(timeouts(timeout, Type.DELETE)))
                    .sdkHttpResponse()
                    .statusCode();
        } catch (SdkException e) {
            status = status(e);
            throw failure("DELETE", key, e);
        } finally {
            requests.end(Type.DELETE, start, status);
        }
    }

    @Override
    public void deleteAll(Collection<String> keys, Duration timeout) throws StoreException {
        if (keys.isEmpty()) {
            return;
        }
        if (keys.size() > 1000) {
            throw new IllegalArgumentException("keys: " + keys.size() + " (expected: <= 1000)");
        }
        List<ObjectIdentifier> ids = new ArrayList<>(keys.size());
        for (String key : keys) {
            ids.add(ObjectIdentifier.builder().key(key).build());
        }
        String first = keys.iterator().next();
        DeleteObjectsResponse r;
        long start = requests.begin(Type.BATCH_DELETE);
        int status = 0;
        try {
            r = s3.deleteObjects(b -> b.bucket(bucket)
                    .delete(Delete.builder().objects(ids).quiet(true).build())
                    .overrideConfiguration(timeouts(timeout, Type.BATCH_DELETE)));
            status = r.sdkHttpResponse().statusCode();
        } catch (SdkException e) {
            status = status(e);
            throw failure("DELETE of " + keys.size() + " objects from", first, e);
        } finally {
            requests.end(Type.BATCH_DELETE, start, status);
        }
        if (r.hasErrors() && !r.errors().isEmpty()) {
            S3Error error = r.errors().getFirst();
            throw new StoreException(
                    "DELETE of " + keys.size() + " objects from " + where(first) + ": "
                            + r.errors().size() + " failed, e.g. " + error.key() + ": " + error.code() + " "
                            + error.message(),
                    0,
                    true);
        }
    }

    @Override
    public void list(String prefix, Consumer<String> keys, Duration timeout) throws StoreException {
        String token = null;
        do {
            String continuation = token;
            ListObjectsV2Response page;
            long start = requests.begin(Type.LIST);
            int status = 0;
            try {
                page = s3.listObjectsV2(b -> b.bucket(bucket)
                        .prefix(prefix)
                        .continuationToken(continuation)
                        .overrideConfiguration(timeouts(timeout, Type.LIST)));
                status = page.sdkHttpResponse().statusCode();
            } catch (SdkException e) {
                status = status(e);
                throw failure("LIST", prefix, e);
            } finally {
                requests.end(Type.LIST, start, status);
            }
            for (S3Object object : page.contents()) {
                keys.accept(object.key());
            }
            token = Boolean.TRUE.equals(page.isTruncated()) ? page.nextContinuationToken() : null;
        } while (token != null);
    }

    @Override
    public String describe() {
        return handle.key()
                        .endpoint()
                        .map(Object::toString)
                        .orElse("AWS S3 (" + handle.key().region() + ")") + ", bucket " + bucket;
    }

    @Override
    public void close() {
        handle.close();
    }

    /** Returns a request's time limits, with the counter its retries go to. */
    private AwsRequestOverrideConfiguration timeouts(Duration timeout, Type type) {
        Duration attempt = timeout.compareTo(Duration.ofSeconds(2)) < 0 ? timeout : timeout.dividedBy(2);
        return AwsRequestOverrideConfiguration.builder()
                .apiCallTimeout(timeout)
                .apiCallAttemptTimeout(attempt)
                .putExecutionAttribute(RetryCounter.RETRIES, requests.retryCounter(type))
                .build();
    }

    /** Returns the HTTP status of a failed request, or 0 when no reply came. */
    private static int status(SdkException e) {
        return e instanceof AwsServiceException service ? service.statusCode() : 0;
    }

    private String where(String key) {
        return "s3://" + bucket + "/" + key;
    }

    /** Turns an SDK failure into a {@link StoreException} that says what failed and whether to retry. */
    private StoreException failure(String what, String key, SdkException e) {
        if (e instanceof AwsServiceException service) {
            int status = service.statusCode();
            String code = service.awsErrorDetails() == null
                    ? ""
                    : service.awsErrorDetails().errorCode();
            String message = service.awsErrorDetails() == null
                    ? service.getMessage()
                    : service.awsErrorDetails().errorMessage();
            boolean retryable = StoreException.retryableReply(status, code) || service.isThrottlingException();
            return new StoreException(
                    what + " " + where(key) + ": " + status + " " + code + " (" + message + ")", status, retryable, e);
        }
        // A client-side failure: timeout, connection refused or reset, interrupted.
        return new StoreException(what + " " + where(key) + ": no reply (" + e.getMessage() + ")", 0, true, e);
    }

    /**
     * Returns the CRC32C of {@code data} as {@code x-amz-checksum-crc32c} carries it: 4 bytes, big-endian,
     * base64. A block's CRC32C is already in its metadata ({@code hex}, 8 digits): it is used as it is, so
     * the store verifies the very checksum later reads are checked against.
     */
    static String crc32c(byte[] data, @Nullable String hex) {
        int value;
        if (hex != null && hex.length() == 8 && hex.chars().allMatch(HexFormat::isHexDigit)) {
            value = HexFormat.fromHexDigits(hex);
        } else {
            CRC32C crc = new CRC32C();
            crc.update(data);
            value = (int) crc.getValue();
        }
        return Base64.getEncoder()
                .encodeToString(
                        new byte[] {(byte) (value >>> 24), (byte) (value >>> 16), (byte) (value >>> 8), (byte) value});
    }

    @Override
    public String toString() {
        return "SdkObjectStore[" + describe() + "]";
    }
}
