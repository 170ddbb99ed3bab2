package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.s3.S3Requests.Type;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.http.SdkHttpMethod;
import software.amazon.awssdk.http.SdkHttpRequest;
import software.amazon.awssdk.http.auth.aws.signer.AwsV4FamilyHttpSigner;
import software.amazon.awssdk.http.auth.aws.signer.AwsV4HttpSigner;
import software.amazon.awssdk.http.auth.spi.signer.HttpSigner;
import software.amazon.awssdk.http.auth.spi.signer.SignedRequest;
import software.amazon.awssdk.services.s3.model.HeadObjectResponse;

/**
 * The block data path without the SDK: GETs and PUTs over {@link HttpConnections}, signed by {@link SigV4},
 * against S3Proxy (which checks every signature and the upload's CRC32C) and against scripted HTTP servers
 * that misbehave: throttling, closing idle connections, never reading, chunked errors, endless headers.
 */
@ExtendWith(S3ProxyExtension.class)
class DirectObjectStoreTest {
    private static final AtomicInteger PREFIXES = new AtomicInteger();
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    private static DirectObjectStore open(Map<String, String> settings, S3Requests requests) throws IOException {
        S3Settings parsed = S3Settings.parse(new DeviceOptions(false, settings));
        return new DirectObjectStore(S3Clients.acquire(parsed), S3ProxyServer.BUCKET, requests);
    }

    private static String prefix() {
        return "direct-" + ProcessHandle.current().pid() + "-" + PREFIXES.incrementAndGet() + "/";
    }

    @Test
    void putThenGetRoundTripsBytesTagAndMetadataThroughTheStore() throws Exception {
        S3Requests requests = new S3Requests();
        byte[] data = new byte[1 << 20];
        new Random(7).nextBytes(data);
        String key = prefix() + "b0";
        try (DirectObjectStore store = open(S3ProxyExtension.server().settings(), requests)) {
            String etag = store.put(key, data, Map.of(BlockCache.CRC_KEY, Bytes.crc32c(data)), TIMEOUT);
            HeadObjectResponse head = S3ProxyExtension.server()
                    .s3()
                    .headObject(b -> b.bucket(S3ProxyServer.BUCKET).key(key));
            assertThat(etag).isEqualTo(head.eTag());
            assertThat(head.metadata()).containsEntry(BlockCache.CRC_KEY, Bytes.crc32c(data));

            ObjectStore.StoredObject read = store.get(key, TIMEOUT);
            assertThat(read).isNotNull();
            assertThat(read.data()).isEqualTo(data);
            assertThat(read.etag()).isEqualTo(etag);
            assertThat(read.metadata()).containsEntry(BlockCache.CRC_KEY, Bytes.crc32c(data));
        }
        assertThat(requests.requests(Type.PUT, 200)).isEqualTo(1);
        assertThat(requests.requests(Type.GET, 200)).isEqualTo(1);
        assertThat(requests.bytesUploaded()).isEqualTo(data.length);
        assertThat(requests.bytesDownloaded()).isEqualTo(data.length);
        assertThat(requests.retries(Type.GET) + requests.retries(Type.PUT)).isZero();
    }

    @Test
    void keysThatNeedEncodingAreSignedAndStoredAsThemselves() throws Exception {
        String key = prefix() + "a b+c/ü=&%~*(x).bin";
        byte[] data = "odd key".getBytes(StandardCharsets.UTF_8);
        try (DirectObjectStore store = open(S3ProxyExtension.server().settings(), new S3Requests())) {
            store.put(key, data, Map.of(), TIMEOUT);
            assertThat(store.get(key, TIMEOUT).data()).isEqualTo(data);
        }
        byte[] viaSdk = S3ProxyExtension.server()
                .s3()
                .getObjectAsBytes(b -> b.bucket(S3ProxyServer.BUCKET).key(key))
                .asByteArray();
        assertThat(viaSdk).isEqualTo(data);
    }

    @Test
    void aMissingObjectIsNullButAMissingBucketIsAnError() throws Exception {
        S3Requests requests = new S3Requests();
        try (DirectObjectStore store = open(S3ProxyExtension.server().settings(), requests)) {
            assertThat(store.get(prefix() + "never-written", TIMEOUT)).isNull();
        }
        assertThat(requests.requests(Type.GET, 404)).isEqualTo(1);
        S3Settings settings = S3Settings.parse(
                new DeviceOptions(false, S3ProxyExtension.server().settings()));
        try (DirectObjectStore store = new DirectObjectStore(S3Clients.acquire(settings), "no-such-bucket", requests)) {
            assertThatThrownBy(() -> store.get("k", TIMEOUT))
                    .isInstanceOf(StoreException.class)
                    .hasMessageContaining("404 NoSuchBucket")
                    .satisfies(e -> assertThat(((StoreException) e).retryable()).isFalse());
        }
    }

    @Test
    void theStoreRefusesAnUploadWhoseCrc32cDoesNotMatchItsBytes() throws Exception {
        String key = prefix() + "damaged";
        byte[] data = "the bytes sent".getBytes(StandardCharsets.UTF_8);
        try (DirectObjectStore store = open(S3ProxyExtension.server().settings(), new S3Requests())) {
            assertThatThrownBy(() -> store.put(key, data, Map.of(BlockCache.CRC_KEY, "00000000"), TIMEOUT))
                    .isInstanceOf(StoreException.class)
                    .satisfies(e -> assertThat(((StoreException) e).status()).isEqualTo(400));
            assertThat(store.get(key, TIMEOUT)).isNull();
        }
    }

    @Test
    void signaturesMatchTheSdkSigner() {
        String secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        Instant when = Instant.parse("2013-05-24T00:00:00Z");
        String amzDate = SigV4.amzDate(when);
        byte[] body = "Welcome to Amazon S3.".getBytes(StandardCharsets.UTF_8);
        String payload = SigV4.sha256Hex(body);
        String path = "/examplebucket/" + SigV4.encodePath("dir/a b+ü.bin");
        TreeMap<String, String> headers = new TreeMap<>(Map.of(
                "host", "127.0.0.1:9000",
                "x-amz-content-sha256", payload,
                "x-amz-date", amzDate,
                "x-amz-meta-crc32c", "0a1b2c3d",
                "x-amz-checksum-crc32c", "AAAAAA=="));
        String ours = new SigV4("eu-west-1", "s3")
                .authorization("AKIDEXAMPLE", secret, "PUT", path, headers, payload, amzDate);

        SdkHttpRequest.Builder request = SdkHttpRequest.builder()
                .method(SdkHttpMethod.PUT)
                .protocol("http")
                .host("127.0.0.1")
                .port(9000)
                .encodedPath(path);
        headers.forEach((k, v) -> {
            if (!k.equals("host")) {
                request.putHeader(k, v);
            }
        });
        SignedRequest signed = AwsV4HttpSigner.create()
                .sign(r -> r.request(request.build())
                        .payload(() -> new java.io.ByteArrayInputStream(body))
                        .identity(AwsBasicCredentials.create("AKIDEXAMPLE", secret))
                        .putProperty(AwsV4FamilyHttpSigner.SERVICE_SIGNING_NAME, "s3")
                        .putProperty(AwsV4HttpSigner.REGION_NAME, "eu-west-1")
                        .putProperty(AwsV4FamilyHttpSigner.DOUBLE_URL_ENCODE, false)
                        .putProperty(AwsV4FamilyHttpSigner.NORMALIZE_PATH, false)
                        .putProperty(AwsV4FamilyHttpSigner.CHUNK_ENCODING_ENABLED, false)
                        .putProperty(HttpSigner.SIGNING_CLOCK, java.time.Clock.fixed(when, java.time.ZoneOffset.UTC)));
        String sdks = signed.request().firstMatchingHeader("Authorization").orElseThrow();
        assertThat(ours).isEqualTo(sdks);
    }

    @Test
    void theDocumentedGetObjectExampleSignsAsPublished() {
        // https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html, "GET Object".
        TreeMap<String, String> headers = new TreeMap<>(Map.of(
                "host", "examplebucket.s3.amazonaws.com",
                "range", "bytes=0-9",
                "x-amz-content-sha256", SigV4.EMPTY_SHA256,
                "x-amz-date", "20130524T000000Z"));
        String authorization = new SigV4("us-east-1", "s3")
                .authorization(
                        "AKIAIOSFODNN7EXAMPLE",
                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                        "GET",
                        "/test.txt",
                        headers,
                        SigV4.EMPTY_SHA256,
                        "20130524T000000Z");
        assertThat(authorization)
                .isEqualTo("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                        + " SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                        + " Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    }

    // ---- scripted servers -------------------------------------------------------------------------------

    /** One request as a scripted server read it: its head's lines and its body. */
    record Seen(List<String> head, byte[] body) {
        String line() {
            return head.getFirst();
        }
    }

    /**
     * A server on 127.0.0.1 that answers each request with the next of its scripted replies (raw bytes;
     * {@code null}: close the connection without a reply) and records what it read.
     */
    private static final class Scripted implements AutoCloseable {
        final ServerSocket listener;
        final BlockingQueue<byte[]> replies = new LinkedBlockingQueue<>();
        final List<Seen> seen = new CopyOnWriteArrayList<>();
        final AtomicInteger connections = new AtomicInteger();
        /** Close every connection after one reply (a store that drops idle connections at once). */
        volatile boolean closeAfterReply;
        /** Accept connections but never read from them. */
        volatile boolean neverRead;

        Scripted() throws IOException {
            listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread.ofVirtual().start(() -> {
                while (!listener.isClosed()) {
                    try {
                        Socket s = listener.accept();
                        connections.incrementAndGet();
                        Thread.ofVirtual().start(() -> serve(s));
                    } catch (IOException e) {
                        return;
                    }
                }
            });
        }

        void reply(String... raw) {
            for (String r : raw) {
                replies.add(r.getBytes(StandardCharsets.ISO_8859_1));
            }
        }

        private void serve(Socket s) {
            try (s) {
                if (neverRead) {
                    Thread.sleep(Duration.ofSeconds(30));
                    return;
                }
                InputStream in = s.getInputStream();
                OutputStream out = s.getOutputStream();
                while (true) {
                    List<String> head = new ArrayList<>();
                    for (String line; !(line = HttpLines.read(in)).isEmpty(); ) {
                        head.add(line);
                    }
                    int length = 0;
                    for (String h : head) {
                        if (h.toLowerCase().startsWith("content-length:")) {
                            length = Integer.parseInt(h.substring(15).strip());
                        }
                    }
                    byte[] body = in.readNBytes(length);
                    seen.add(new Seen(head, body));
                    byte[] reply = replies.poll(10, TimeUnit.SECONDS);
                    if (reply == null || reply.length == 0) {
                        return;
                    }
                    out.write(reply);
                    out.flush();
                    if (closeAfterReply) {
                        return;
                    }
                }
            } catch (IOException | InterruptedException e) {
                // The client went away.
            }
        }

        Map<String, String> settings() {
            Map<String, String> settings = new HashMap<>();
            settings.put(S3Settings.ENDPOINT, "http://127.0.0.1:" + listener.getLocalPort());
            settings.put(S3Settings.REGION, "us-east-1");
            settings.put(S3Settings.PATH_STYLE, "true");
            return settings;
        }

        @Override
        public void close() throws IOException {
            listener.close();
        }
    }

    private static String ok(String body, String... headers) {
        return "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\n" + String.join("", headers) + "Content-Length: " + body.length()
                + "\r\n\r\n" + body;
    }

    @Test
    void throttlingIsRetriedWithBackoffAndCounted() throws Exception {
        S3Requests requests = new S3Requests();
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), requests)) {
            String slowDown = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            server.reply(
                    "HTTP/1.1 503 Slow Down\r\nContent-Length: " + slowDown.length() + "\r\n\r\n" + slowDown,
                    ok("data", "x-amz-meta-crc32c: 01020304\r\n"));
            ObjectStore.StoredObject read = store.get("k", TIMEOUT);
            assertThat(new String(read.data(), StandardCharsets.UTF_8)).isEqualTo("data");
            assertThat(read.metadata()).containsEntry("crc32c", "01020304");
            assertThat(server.seen).hasSize(2);
            assertThat(server.seen.getFirst().line()).isEqualTo("GET /mqnbd-test/k HTTP/1.1");
            assertThat(server.seen.getFirst().head())
                    .anySatisfy(h -> assertThat(h).startsWith("authorization: AWS4-HMAC-SHA256 Credential="));
        }
        assertThat(requests.retries(Type.GET)).isEqualTo(1);
        assertThat(requests.requests(Type.GET, 200)).isEqualTo(1);
    }

    @Test
    void aConnectionTheStoreClosedWhileIdleIsReplacedWithoutARetry() throws Exception {
        S3Requests requests = new S3Requests();
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), requests)) {
            server.closeAfterReply = true; // the close reaches the client only once it reuses the connection
            server.reply(ok(""), ok(""), ok(""));
            byte[] data = new byte[100_000];
            for (int i = 0; i < 3; i++) {
                store.put("k" + i, data, Map.of(), TIMEOUT);
            }
            assertThat(server.seen).hasSize(3);
            assertThat(server.seen).allSatisfy(s -> assertThat(s.body()).hasSize(data.length));
            assertThat(server.connections.get()).isEqualTo(3);
        }
        assertThat(requests.retries(Type.PUT)).isZero();
        assertThat(requests.requests(Type.PUT, 200)).isEqualTo(3);
    }

    @Test
    void connectionsAreKeptAliveBetweenRequests() throws Exception {
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), new S3Requests())) {
            server.reply(ok("a"), ok("b"), ok("c"));
            for (int i = 0; i < 3; i++) {
                store.get("k", TIMEOUT);
            }
            assertThat(server.connections.get()).isEqualTo(1);
        }
    }

    @Test
    void aStoreThatNeverReadsFailsTheUploadAtItsTimeout() throws Exception {
        S3Requests requests = new S3Requests();
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), requests)) {
            server.neverRead = true;
            byte[] data = new byte[32 << 20]; // far more than the sockets' buffers hold
            assertTimeoutPreemptively(
                    Duration.ofSeconds(20),
                    () -> assertThatThrownBy(() -> store.put("k", data, Map.of(), Duration.ofSeconds(1)))
                            .isInstanceOf(StoreException.class)
                            .hasMessageContaining("no reply")
                            .satisfies(e ->
                                    assertThat(((StoreException) e).retryable()).isTrue()));
        }
        assertThat(requests.requests(Type.PUT, 0)).isEqualTo(1);
        assertThat(requests.inFlight(Type.PUT)).isZero();
    }

    @Test
    void aChunkedErrorIsReadAndReportedWithItsCode() throws Exception {
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), new S3Requests())) {
            String xml = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            server.reply("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + Integer.toHexString(10) + "\r\n" + xml.substring(0, 10) + "\r\n"
                    + Integer.toHexString(xml.length() - 10) + "\r\n" + xml.substring(10) + "\r\n0\r\n\r\n");
            server.reply(ok("after"));
            assertThatThrownBy(() -> store.get("k", TIMEOUT))
                    .isInstanceOf(StoreException.class)
                    .hasMessageContaining("403 AccessDenied (Access Denied)")
                    .satisfies(e -> assertThat(((StoreException) e).retryable()).isFalse());
            // The connection stayed usable: the next request goes over it.
            assertThat(new String(store.get("k", TIMEOUT).data(), StandardCharsets.UTF_8))
                    .isEqualTo("after");
            assertThat(server.connections.get()).isEqualTo(1);
        }
    }

    @Test
    void anEndlessReplyHeadIsRefusedWithoutGrowingMemory() throws Exception {
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), new S3Requests())) {
            String header = "x-filler: " + "y".repeat(1000) + "\r\n";
            String head = "HTTP/1.1 200 OK\r\n" + header.repeat(200) + "Content-Length: 0\r\n\r\n";
            server.reply(head, head, head);
            assertThatThrownBy(() -> store.get("k", TIMEOUT))
                    .isInstanceOf(StoreException.class)
                    .hasMessageContaining("reply head longer than");
        }
    }

    @Test
    void aBodyLongerThanAnyBlockIsRefusedBeforeItIsRead() throws Exception {
        try (Scripted server = new Scripted();
                DirectObjectStore store = open(server.settings(), new S3Requests())) {
            String huge = "HTTP/1.1 200 OK\r\nContent-Length: " + (1L << 40) + "\r\n\r\n";
            server.reply(huge, huge, huge);
            assertThatThrownBy(() -> store.get("k", TIMEOUT))
                    .isInstanceOf(StoreException.class)
                    .hasMessageContaining("Content-Length " + (1L << 40) + " out of range");
        }
    }
}
