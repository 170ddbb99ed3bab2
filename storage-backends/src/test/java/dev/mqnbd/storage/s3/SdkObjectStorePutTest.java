package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpServer;
import dev.mqnbd.storage.DeviceOptions;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What a block upload sends over plain http, as the server sees it: the body as it is (not aws-chunked),
 * signed with its SHA-256, its CRC32C in {@code x-amz-checksum-crc32c}, and no separate {@code
 * Content-MD5}. And conditional PUTs against a store that matches {@code If-Match} only against an
 * unquoted entity tag, as Ceph's RADOS Gateway does.
 */
class SdkObjectStorePutTest {
    private final AtomicReference<Headers> headers = new AtomicReference<>();
    private final AtomicReference<byte[]> body = new AtomicReference<>();
    private HttpServer server;

    @BeforeEach
    void start() throws Exception {
        // The same credentials the S3Proxy tests of this JVM use (the SDK's default chain reads them).
        System.setProperty("aws.accessKeyId", S3ProxyServer.IDENTITY);
        System.setProperty("aws.secretAccessKey", S3ProxyServer.CREDENTIAL);
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", exchange -> {
            headers.set(exchange.getRequestHeaders());
            body.set(exchange.getRequestBody().readAllBytes());
            exchange.getResponseHeaders().add("ETag", "\"e1\"");
            exchange.sendResponseHeaders(200, -1);
            exchange.close();
        });
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    /**
     * A one-object store whose conditional PUTs compare {@code If-Match} with the entity tag as it is
     * stored, without quotes (Ceph's RADOS Gateway), or, with {@code quotedMatches}, quoted too (S3); it
     * sends its entity tags quoted either way.
     */
    private static final class EtagStore implements AutoCloseable {
        final List<String> requests = new CopyOnWriteArrayList<>();
        final HttpServer http;
        volatile byte[] data = "{}".getBytes(StandardCharsets.UTF_8);
        volatile int version = 1;

        EtagStore(boolean quotedMatches) throws IOException {
            http = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
            http.createContext("/", exchange -> {
                String method = exchange.getRequestMethod();
                byte[] body = exchange.getRequestBody().readAllBytes();
                String ifMatch = exchange.getRequestHeaders().getFirst("If-Match");
                requests.add(method + (ifMatch == null ? "" : " If-Match: " + ifMatch));
                synchronized (this) {
                    String etag = "e" + version;
                    if (method.equals("GET")) {
                        exchange.getResponseHeaders().add("ETag", "\"" + etag + "\"");
                        exchange.sendResponseHeaders(200, data.length);
                        exchange.getResponseBody().write(data);
                    } else if (etag.equals(ifMatch) || (quotedMatches && ("\"" + etag + "\"").equals(ifMatch))) {
                        data = body;
                        version++;
                        exchange.getResponseHeaders().add("ETag", "\"e" + version + "\"");
                        exchange.sendResponseHeaders(200, -1);
                    } else {
                        byte[] error =
                                "<Error><Code>PreconditionFailed</Code></Error>".getBytes(StandardCharsets.UTF_8);
                        exchange.getResponseHeaders().add("Content-Type", "application/xml");
                        exchange.sendResponseHeaders(412, error.length);
                        exchange.getResponseBody().write(error);
                    }
                }
                exchange.close();
            });
            http.start();
        }

        SdkObjectStore open() throws IOException {
            return new SdkObjectStore(S3Clients.acquire(settings(http)), "bucket", new S3Requests());
        }

        @Override
        public void close() {
            http.stop(0);
        }
    }

    /** Returns the settings of a store at {@code http}, plus {@code extra} given as key, value, key, value... */
    private static S3Settings settings(HttpServer http, String... extra) {
        Map<String, String> settings = new HashMap<>(Map.of(
                S3Settings.ENDPOINT,
                "http://127.0.0.1:" + http.getAddress().getPort(),
                S3Settings.REGION,
                "us-east-1",
                S3Settings.PATH_STYLE,
                "true"));
        for (int i = 0; i < extra.length; i += 2) {
            settings.put(extra[i], extra[i + 1]);
        }
        return S3Settings.parse(new DeviceOptions(false, settings));
    }

    private static byte[] json(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void putIfMatch_storeThatMatchesOnlyUnquotedTags_isRetriedUnquoted_onceTheObjectIsSeenUnchanged() throws Exception {
        try (EtagStore rgw = new EtagStore(false);
                SdkObjectStore store = rgw.open()) {
            assertThat(store.putIfMatch("lease", json("{\"n\": 1}"), "\"e1\"", Duration.ofSeconds(10)))
                    .isEqualTo("\"e2\"");
            assertThat(rgw.requests).containsExactly("PUT If-Match: \"e1\"", "GET", "PUT If-Match: e1");

            // Learnt: the next conditional PUT goes out unquoted at once.
            rgw.requests.clear();
            assertThat(store.putIfMatch("lease", json("{\"n\": 2}"), "\"e2\"", Duration.ofSeconds(10)))
                    .isEqualTo("\"e3\"");
            assertThat(rgw.requests).containsExactly("PUT If-Match: e2");

            // A real mismatch is still a 412, and changes nothing.
            assertThatThrownBy(() -> store.putIfMatch("lease", json("{}"), "\"e1\"", Duration.ofSeconds(10)))
                    .isInstanceOfSatisfying(
                            StoreException.class,
                            e -> assertThat(e.preconditionFailed()).isTrue());
            assertThat(new String(rgw.data, StandardCharsets.UTF_8)).isEqualTo("{\"n\": 2}");
        }
    }

    @Test
    void putIfMatch_objectChanged_is412_withoutAnUnquotedRetry() throws Exception {
        for (boolean quotedMatches : new boolean[] {false, true}) {
            try (EtagStore s3 = new EtagStore(quotedMatches);
                    SdkObjectStore store = s3.open()) {
                s3.version = 5; // changed by another writer since we saw e1

                assertThatThrownBy(() -> store.putIfMatch("lease", json("{}"), "\"e1\"", Duration.ofSeconds(10)))
                        .isInstanceOfSatisfying(
                                StoreException.class,
                                e -> assertThat(e.preconditionFailed()).isTrue());
                assertThat(s3.requests).containsExactly("PUT If-Match: \"e1\"", "GET");
                assertThat(new String(s3.data, StandardCharsets.UTF_8)).isEqualTo("{}");
            }
        }
    }

    @Test
    void putIfMatch_storeThatMatchesQuotedTags_sendsThemQuoted() throws Exception {
        try (EtagStore s3 = new EtagStore(true);
                SdkObjectStore store = s3.open()) {
            assertThat(store.putIfMatch("lease", json("{\"n\": 1}"), "\"e1\"", Duration.ofSeconds(10)))
                    .isEqualTo("\"e2\"");
            assertThat(store.putIfMatch("lease", json("{\"n\": 2}"), "\"e2\"", Duration.ofSeconds(10)))
                    .isEqualTo("\"e3\"");
            assertThat(s3.requests).containsExactly("PUT If-Match: \"e1\"", "PUT If-Match: \"e2\"");
        }
    }

    @Test
    void put_overHttp_sendsTheBodyOnce_signedWithItsSha256_withItsCrc32c_andNoMd5() throws Exception {
        byte[] data = new byte[1 << 20];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 131 + (i >>> 9));
        }
        S3Settings settings = settings(server);
        try (SdkObjectStore store = new SdkObjectStore(S3Clients.acquire(settings), "bucket", new S3Requests())) {
            assertThat(store.put("blocks/0", data, Map.of("crc32c", Bytes.crc32c(data)), Duration.ofSeconds(10)))
                    .isEqualTo("\"e1\"");
        }

        Headers h = headers.get();
        assertThat(body.get()).isEqualTo(data);
        assertThat(h.getFirst("Content-Length")).isEqualTo(String.valueOf(data.length));
        assertThat(h.getFirst("x-amz-content-sha256"))
                .isEqualTo(HexFormat.of()
                        .formatHex(MessageDigest.getInstance("SHA-256").digest(data)));
        assertThat(h.getFirst("Authorization")).contains("x-amz-content-sha256");
        assertThat(h.containsKey("Content-MD5")).isFalse();
        assertThat(h.getFirst("Content-Encoding")).isNull();
        CRC32C crc = new CRC32C();
        crc.update(data);
        assertThat(HexFormat.of().formatHex(Base64.getDecoder().decode(h.getFirst("x-amz-checksum-crc32c"))))
                .isEqualTo(String.format("%08x", crc.getValue()));
        assertThat(h.getFirst("x-amz-meta-crc32c")).isEqualTo(Bytes.crc32c(data));
    }

    @Test
    void put_overHttp_withUnsignedPayload_signsTheHeadersOnly_andSendsTheBodyAsItIs() throws Exception {
        byte[] data = new byte[256 << 10];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7 + (i >>> 11));
        }
        S3Settings settings = settings(server, S3Settings.UNSIGNED_PAYLOAD, "true");
        try (SdkObjectStore store = new SdkObjectStore(S3Clients.acquire(settings), "bucket", new S3Requests())) {
            assertThat(store.put("blocks/1", data, Map.of("crc32c", Bytes.crc32c(data)), Duration.ofSeconds(10)))
                    .isEqualTo("\"e1\"");
        }

        // It reached this plain-http server, unhashed, with the headers (the payload marker included) signed.
        Headers h = headers.get();
        assertThat(body.get()).isEqualTo(data);
        assertThat(h.getFirst("x-amz-content-sha256")).isEqualTo("UNSIGNED-PAYLOAD");
        assertThat(h.getFirst("Authorization"))
                .startsWith("AWS4-HMAC-SHA256 Credential=" + S3ProxyServer.IDENTITY + "/")
                .contains("x-amz-content-sha256")
                .contains("x-amz-checksum-crc32c");
        assertThat(h.getFirst("Content-Encoding")).isNull();
    }
}
