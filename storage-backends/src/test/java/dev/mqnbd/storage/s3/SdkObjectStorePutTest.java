package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpServer;
import dev.mqnbd.storage.DeviceOptions;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * What a block upload sends over plain http, as the server sees it: the body as it is (not aws-chunked),
 * signed with its SHA-256, its CRC32C in {@code x-amz-checksum-crc32c}, and no separate {@code
 * Content-MD5}.
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

    @Test
    void put_overHttp_sendsTheBodyOnce_signedWithItsSha256_withItsCrc32c_andNoMd5() throws Exception {
        byte[] data = new byte[1 << 20];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 131 + (i >>> 9));
        }
        S3Settings settings = S3Settings.parse(new DeviceOptions(
                false,
                Map.of(
                        S3Settings.ENDPOINT,
                        "http://127.0.0.1:" + server.getAddress().getPort(),
                        S3Settings.REGION,
                        "us-east-1",
                        S3Settings.PATH_STYLE,
                        "true")));
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
}
