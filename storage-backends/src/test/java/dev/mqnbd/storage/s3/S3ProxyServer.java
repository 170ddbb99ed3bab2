package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.DeviceOptions;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import software.amazon.awssdk.services.s3.S3Client;

/**
 * A real S3-compatible store for the S3 backend's tests: S3Proxy ({@code org.gaul:s3proxy}, its
 * self-contained jar copied to {@code target/s3proxy/s3proxy.jar} by the build), run as a separate
 * process with this JVM's {@code java}, on a free port of 127.0.0.1, with AWS v2/v4 signatures and the
 * in-memory ({@code transient}) store. Run out of process: inside the test JVM its cloud SDKs clash with
 * ours on Jackson.
 *
 * <p>One server serves every test class of the JVM ({@link S3ProxyExtension} starts it once and stops it
 * when the run ends). It holds one handle on the shared SDK client for its endpoint, so that the client
 * is built once, not once per test, and gives tests that client to read and tamper with objects.
 *
 * <p>If the server cannot start, tests fail with the reason and the server's log; they never skip.
 */
final class S3ProxyServer implements AutoCloseable {
    /** The access key tests sign with. */
    static final String IDENTITY = "mqnbd-test-identity";

    /** The secret key tests sign with. */
    static final String CREDENTIAL = "mqnbd-test-credential";

    /** The bucket every test uses, each test under its own prefix. */
    static final String BUCKET = "mqnbd-test";

    private static final long START_TIMEOUT_SECONDS = 60;

    private final Process process;
    private final URI endpoint;
    private final Path logFile;
    private final S3Clients.Handle client;

    private S3ProxyServer(Process process, URI endpoint, Path logFile) throws IOException {
        this.process = process;
        this.endpoint = endpoint;
        this.logFile = logFile;
        // The default credential chain of every SDK client in this JVM finds these.
        System.setProperty("aws.accessKeyId", IDENTITY);
        System.setProperty("aws.secretAccessKey", CREDENTIAL);
        this.client = S3Clients.acquire(S3Settings.parse(new DeviceOptions(false, settings())));
        client.client().createBucket(b -> b.bucket(BUCKET));
    }

    /**
     * Starts a server and waits until it accepts connections.
     *
     * @throws IllegalStateException if the jar is missing or the server does not start; the message
     *     carries the server's log
     */
    static S3ProxyServer start() {
        Path jar = Path.of("target", "s3proxy", "s3proxy.jar").toAbsolutePath();
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException("S3Proxy jar not found at " + jar + " (expected: copied there by"
                    + " maven-dependency-plugin in generate-test-resources; run the tests with ./mvnw)");
        }
        String java = ProcessHandle.current()
                .info()
                .command()
                .orElseThrow(() -> new IllegalStateException("cannot tell which java runs this JVM"));
        IllegalStateException failure = null;
        for (int attempt = 0; attempt < 3; attempt++) {
            Process process = null;
            try {
                Path dir = Files.createDirectories(Path.of("target", "s3proxy")).toAbsolutePath();
                int port = freePort();
                URI endpoint = URI.create("http://127.0.0.1:" + port);
                Path properties = dir.resolve("s3proxy-" + port + ".properties");
                Path log = dir.resolve("s3proxy-" + port + ".log");
                Files.writeString(
                        properties,
                        String.join(
                                "\n",
                                "s3proxy.endpoint=" + endpoint,
                                "s3proxy.authorization=aws-v2-or-v4",
                                "s3proxy.identity=" + IDENTITY,
                                "s3proxy.credential=" + CREDENTIAL,
                                "jclouds.provider=transient",
                                "jclouds.identity=" + IDENTITY,
                                "jclouds.credential=" + CREDENTIAL,
                                ""),
                        StandardCharsets.UTF_8);
                process = new ProcessBuilder(
                                java, "-Xmx1g", "-jar", jar.toString(), "--properties", properties.toString())
                        .redirectErrorStream(true)
                        .redirectOutput(log.toFile())
                        .start();
                Process started = process;
                Runtime.getRuntime().addShutdownHook(new Thread(started::destroyForcibly, "s3proxy-reaper"));
                awaitPort(process, port, log);
                return new S3ProxyServer(process, endpoint, log);
            } catch (IOException | RuntimeException e) {
                if (process != null) {
                    process.destroyForcibly();
                }
                IllegalStateException f = new IllegalStateException("S3Proxy did not start: " + e.getMessage(), e);
                if (failure != null) {
                    f.addSuppressed(failure);
                }
                failure = f;
            }
        }
        throw failure;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static void awaitPort(Process process, int port, Path log) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(START_TIMEOUT_SECONDS);
        while (System.nanoTime() - deadline < 0) {
            if (!process.isAlive()) {
                throw new IllegalStateException("S3Proxy exited with status " + process.exitValue()
                        + " before listening on port " + port + "; its log:\n" + read(log));
            }
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
                return;
            } catch (IOException e) {
                try {
                    Thread.sleep(50);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted waiting for S3Proxy", ie);
                }
            }
        }
        throw new IllegalStateException("S3Proxy did not listen on port " + port + " within " + START_TIMEOUT_SECONDS
                + " s; its log:\n" + read(log));
    }

    private static String read(Path log) {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(unreadable: " + e + ")";
        }
    }

    /** Returns the server's URL. */
    URI endpoint() {
        return endpoint;
    }

    /** Returns the settings that point the S3 backend at this server. */
    Map<String, String> settings() {
        return Map.of(
                S3Settings.ENDPOINT, endpoint.toString(),
                S3Settings.REGION, "us-east-1",
                S3Settings.PATH_STYLE, "true");
    }

    /** Returns a raw SDK client of the server, to read and tamper with objects behind the backend's back. */
    S3Client s3() {
        return client.client();
    }

    /** Returns the server's log so far. */
    String log() {
        return read(logFile);
    }

    /** Stops the server and waits for it to exit. */
    @Override
    public void close() {
        client.close();
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }
}
