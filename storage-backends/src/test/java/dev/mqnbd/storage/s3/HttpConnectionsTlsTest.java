package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The direct block client over https, as AWS S3 is reached: against a TLS server whose certificate (made
 * with the JDK's {@code keytool}, for IP 127.0.0.1 only) the client trusts, requests and bodies go through
 * and the connection is kept; a host name the certificate does not name is refused in the handshake.
 */
class HttpConnectionsTlsTest {
    private static final char[] PASSWORD = "changeit".toCharArray();

    @TempDir
    static Path dir;

    private static SSLServerSocket listener;
    private static SSLContext client;
    private static final List<String> requestLines = new CopyOnWriteArrayList<>();

    @BeforeAll
    static void start() throws Exception {
        Path keys = dir.resolve("store.p12");
        Process keytool = new ProcessBuilder(
                        Path.of(System.getProperty("java.home"), "bin", "keytool")
                                .toString(),
                        "-genkeypair",
                        "-alias",
                        "store",
                        "-keyalg",
                        "EC",
                        "-groupname",
                        "secp256r1",
                        "-dname",
                        "CN=127.0.0.1",
                        "-ext",
                        "SAN=ip:127.0.0.1",
                        "-validity",
                        "2",
                        "-storetype",
                        "PKCS12",
                        "-keystore",
                        keys.toString(),
                        "-storepass",
                        new String(PASSWORD))
                .redirectErrorStream(true)
                .start();
        String output = new String(keytool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(keytool.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(keytool.exitValue()).as("keytool: %s", output).isZero();

        KeyStore store = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(keys)) {
            store.load(in, PASSWORD);
        }
        KeyManagerFactory km = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        km.init(store, PASSWORD);
        SSLContext server = SSLContext.getInstance("TLS");
        server.init(km.getKeyManagers(), null, null);

        KeyStore trusted = KeyStore.getInstance("PKCS12");
        trusted.load(null, null);
        trusted.setCertificateEntry("store", store.getCertificate("store"));
        TrustManagerFactory tm = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tm.init(trusted);
        client = SSLContext.getInstance("TLS");
        client.init(null, tm.getTrustManagers(), null);

        listener = (SSLServerSocket)
                server.getServerSocketFactory().createServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofVirtual().start(() -> {
            while (!listener.isClosed()) {
                try {
                    Socket s = listener.accept();
                    Thread.ofVirtual().start(() -> serve(s));
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    @AfterAll
    static void stop() throws IOException {
        listener.close();
    }

    /** Answers every request on the connection with its body echoed back (or "hello" without one). */
    private static void serve(Socket s) {
        try (s) {
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            while (true) {
                String first = HttpLines.read(in);
                requestLines.add(first);
                int length = 0;
                for (String h; !(h = HttpLines.read(in)).isEmpty(); ) {
                    if (h.toLowerCase().startsWith("content-length:")) {
                        length = Integer.parseInt(h.substring(15).strip());
                    }
                }
                byte[] body = length == 0 ? "hello".getBytes(StandardCharsets.UTF_8) : in.readNBytes(length);
                out.write(("HTTP/1.1 200 OK\r\nETag: \"t\"\r\nContent-Length: " + body.length + "\r\n\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1));
                out.write(body);
                out.flush();
            }
        } catch (IOException e) {
            // The client went away, or the handshake failed.
        }
    }

    private static long deadline() {
        return System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    }

    @Test
    void requestsAndBodiesGoOverTlsOnOneKeptConnection() throws Exception {
        requestLines.clear();
        try (HttpConnections c =
                new HttpConnections("127.0.0.1", listener.getLocalPort(), true, client.getSocketFactory())) {
            byte[] body = new byte[3 << 20];
            for (int i = 0; i < body.length; i++) {
                body[i] = (byte) (i * 31);
            }
            HttpConnections.Response put = c.exchange("PUT", "/bucket/k", Map.of(), body, deadline(), byte[]::new);
            assertThat(put.status()).isEqualTo(200);
            assertThat(put.body()).isEqualTo(body);
            HttpConnections.Response get = c.exchange("GET", "/bucket/k", Map.of(), null, deadline(), byte[]::new);
            assertThat(new String(get.body(), StandardCharsets.UTF_8)).isEqualTo("hello");
            assertThat(get.header("etag", "")).isEqualTo("\"t\"");
            assertThat(c.hostHeader()).isEqualTo("127.0.0.1:" + listener.getLocalPort());
        }
        assertThat(requestLines).containsExactly("PUT /bucket/k HTTP/1.1", "GET /bucket/k HTTP/1.1");
    }

    @Test
    void aHostTheCertificateDoesNotNameIsRefused() {
        try (HttpConnections c =
                new HttpConnections("localhost", listener.getLocalPort(), true, client.getSocketFactory())) {
            assertThatThrownBy(() -> c.exchange("GET", "/bucket/k", Map.of(), null, deadline(), byte[]::new))
                    .isInstanceOf(SSLHandshakeException.class);
        }
    }
}
