package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.container.S3Server;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * {@code mqnbd serve --metrics} scraped by a real Prometheus (Debian's, which scripts/install-test-deps
 * installs) every second while nbdcopy and fio run known amounts of I/O; PromQL queries through
 * Prometheus's HTTP API must return exactly the requests and bytes the clients sent, and {@code promtool
 * check metrics} must accept the exposition. The backends' own counters are checked against what the
 * backend says elsewhere: a file export's fdatasync calls against the totals line it logs as it closes,
 * an S3 export's PUTs and GETs against the objects the S3 server's store holds.
 */
class MetricsIT {
    private static final Duration SETTLE = Duration.ofSeconds(30);
    private static final Pattern VALUE = Pattern.compile("\"value\":\\[[^,]+,\"([^\"]+)\"\\]");

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @Test
    void prometheusScrape_afterNbdcopyAndFio_countsExactly() throws Exception {
        Path dir = Files.createTempDirectory(
                Files.createDirectories(Path.of("target", "metrics-it").toAbsolutePath()), "run");
        Path source = dir.resolve("source.bin");
        byte[] data = new byte[16 << 20];
        new Random(15).nextBytes(data);
        Files.write(source, data);

        try (ServerProcess server = ServerProcess.start(
                "serve", "--port", "0", "--export", "disk=memory:64M", "--metrics", "127.0.0.1:0")) {
            int metricsPort = metricsPort(server);
            String exposition = get("http://127.0.0.1:" + metricsPort + "/metrics");
            Path file = dir.resolve("exposition.txt");
            Files.writeString(file, exposition);
            Tool.run(Duration.ofSeconds(30), "sh", "-c", "promtool check metrics < " + file)
                    .assertSuccess();

            try (Prometheus prometheus = Prometheus.start(dir, metricsPort)) {
                String uri = "nbd://127.0.0.1:" + server.port() + "/disk";
                Tool.run(Duration.ofMinutes(2), "nbdcopy", source.toString(), uri)
                        .assertSuccess();
                // randread without norandommap reads each 4 KiB block of the first 4 MiB once: 1024 READs.
                Tool.run(
                                Duration.ofMinutes(2),
                                "fio",
                                "--name=metrics",
                                "--ioengine=nbd",
                                "--uri=" + uri,
                                "--rw=randread",
                                "--bs=4k",
                                "--size=4m",
                                "--iodepth=32")
                        .assertSuccess();

                assertThat(await(prometheus, "sum(mqnbd_export_written_bytes_total{export=\"disk\"})", 16 << 20))
                        .isEqualTo(16 << 20);
                assertThat(await(
                                prometheus,
                                "sum(mqnbd_export_requests_total{export=\"disk\",op=\"read\",status=\"ok\"})",
                                1024))
                        .isEqualTo(1024);
                assertThat(query(prometheus, "sum(mqnbd_export_read_bytes_total{export=\"disk\"})"))
                        .hasValue(4 << 20);
                assertThat(
                                query(
                                        prometheus,
                                        "sum(mqnbd_export_request_duration_seconds_bucket{export=\"disk\",op=\"read\",le=\"+Inf\"})"))
                        .hasValue(1024);
                // Every READ took under 10 s, and some bucket below +Inf holds them all.
                assertThat(
                                query(
                                        prometheus,
                                        "sum(mqnbd_export_request_duration_seconds_bucket{export=\"disk\",op=\"read\",le=\"10.0\"})"))
                        .hasValue(1024);
                // An error series appears with its first error: none here.
                assertThat(query(
                                prometheus,
                                "sum(mqnbd_export_requests_total{export=\"disk\",status!=\"ok\"}) or vector(0)"))
                        .hasValue(0);
                assertThat(query(prometheus, "mqnbd_memory_allocated_bytes{export=\"disk\"}"))
                        .hasValue(16 << 20);
                assertThat(query(prometheus, "mqnbd_connections_accepted_total").orElseThrow())
                        .isGreaterThanOrEqualTo(2);
                assertThat(query(prometheus, "sum(mqnbd_hw_queue_dispatched_total{export=\"disk\"})")
                                .orElseThrow())
                        .isGreaterThanOrEqualTo(1024);
                assertThat(await(prometheus, "mqnbd_connections_open", 0)).isZero();
            }
        }
    }

    @Test
    void fileExport_fdatasyncCalls_matchTheTotalsTheServerLogs() throws Exception {
        Path dir = Files.createTempDirectory(
                Files.createDirectories(Path.of("target", "metrics-it").toAbsolutePath()), "file");
        Path image = dir.resolve("disk.img");
        ServerProcess server = ServerProcess.start(
                "serve", "--port", "0", "--export", "f=file:" + image + ",create=16M", "--metrics", "127.0.0.1:0");
        long metricSyncs;
        try (server) {
            int metricsPort = metricsPort(server);
            try (Prometheus prometheus = Prometheus.start(dir, metricsPort)) {
                // One command at a time: each FUA write and the last FLUSH wait for an fdatasync of their own.
                // Writeback: in its default writethrough mode qemu-io sets FUA on every write.
                List<String> qemuIo = new ArrayList<>(List.of("qemu-io", "-f", "raw", "-t", "writeback"));
                for (int i = 0; i < 8; i++) {
                    qemuIo.addAll(List.of("-c", "write -f -P " + (i + 1) + " " + (i * 65536) + " 64k"));
                }
                qemuIo.addAll(List.of("-c", "discard 1M 1M", "-c", "write -z 2M 64k"));
                for (int i = 0; i < 4; i++) {
                    qemuIo.addAll(List.of("-c", "write -P 9 " + ((4 + i) << 20) + " 64k"));
                }
                qemuIo.addAll(List.of("-c", "flush", "nbd://127.0.0.1:" + server.port() + "/f"));
                Tool.run(Duration.ofMinutes(1), qemuIo.toArray(String[]::new)).assertSuccess();
                assertThat(await(prometheus, "mqnbd_connections_open", 0)).isZero();

                metricSyncs = scraped(metricsPort, "mqnbd_file_fdatasync_calls_total{export=\"f\"}");
                assertThat(await(prometheus, "mqnbd_file_fdatasync_calls_total{export=\"f\"}", metricSyncs))
                        .isEqualTo(metricSyncs);
                assertThat(metricSyncs).isGreaterThanOrEqualTo(9);
                // Every group-commit fdatasync is one observation of its batch; they served the 8 FUA writes
                // and the FLUSH at least.
                assertThat(query(prometheus, "mqnbd_file_fdatasync_batch_requests_count{export=\"f\"}"))
                        .hasValue(metricSyncs);
                assertThat(query(prometheus, "mqnbd_file_fdatasync_batch_requests_sum{export=\"f\"}")
                                .orElseThrow())
                        .isGreaterThanOrEqualTo(9);
                assertThat(query(prometheus, "mqnbd_file_punch_hole_calls_total{export=\"f\"}"))
                        .hasValue(1);
                assertThat(query(
                                        prometheus,
                                        "mqnbd_file_zero_range_calls_total{export=\"f\"} + mqnbd_file_zeroes_written_bytes_total{export=\"f\"}")
                                .orElseThrow())
                        .isPositive();
                assertThat(query(
                                prometheus,
                                "sum(mqnbd_export_requests_total{export=\"f\",op=\"write\",status=\"ok\"})"))
                        .hasValue(12);
                assertThat(query(prometheus, "mqnbd_export_fua_requests_total{export=\"f\"}"))
                        .hasValue(8);
            }
            server.stop(Duration.ofSeconds(30));
        }
        // The file export's totals line, logged as it closes: nothing was written after the FLUSH, so the
        // close needed no fdatasync of its own.
        Matcher totals =
                Pattern.compile("file export f: .* (\\d+) fdatasync calls").matcher(server.log());
        assertThat(totals.find()).as(server.log()).isTrue();
        assertThat(Long.parseLong(totals.group(1))).isEqualTo(metricSyncs);
    }

    @Test
    void s3Export_putAndGetCounts_matchTheObjectsTheStoreHolds() throws Exception {
        Path dir = Files.createTempDirectory(
                Files.createDirectories(Path.of("target", "metrics-it").toAbsolutePath()), "s3");
        Path source = dir.resolve("source.bin");
        TestFiles.writeRandom(source, 8 << 20, 16);
        int metricsPort;
        try (ServerSocket probe = new ServerSocket(0)) {
            metricsPort = probe.getLocalPort();
        }
        try (S3Server s3 = S3Server.start(null);
                Prometheus prometheus = Prometheus.start(dir, metricsPort)) {
            // The writer and, after it, the reader serve metrics on the same port: one scrape target.
            List<String> common =
                    new ArrayList<>(List.of("serve", "--port", "0", "--metrics", "127.0.0.1:" + metricsPort));
            common.addAll(S3Server.serveArgs(s3.hostEndpoint()));
            List<String> writerArgs = new ArrayList<>(common);
            writerArgs.addAll(List.of("--export", "m=s3://" + S3Server.BUCKET + "/metrics,create=32M"));
            try (ServerProcess writer =
                    ServerProcess.start(S3Server.credentialsEnv(), List.of(), writerArgs.toArray(String[]::new))) {
                Tool.run(Duration.ofMinutes(2), "nbdcopy", "--flush", source.toString(), uri(writer, "m"))
                        .assertSuccess();
                // 8 MiB of new data in 1 MiB blocks, flushed: the store holds 8 block objects, each PUT once.
                List<String> blocks = s3.objectKeys("metrics/blocks/");
                assertThat(blocks).hasSize(8);
                assertThat(await(prometheus, "mqnbd_s3_requests_total{export=\"m\",type=\"put\"}", 8))
                        .isEqualTo(8);
                assertThat(await(prometheus, "mqnbd_s3_http_requests_total{export=\"m\",type=\"put\",code=\"200\"}", 8))
                        .isEqualTo(8);
                assertThat(await(prometheus, "mqnbd_s3_uploaded_bytes_total{export=\"m\"}", 8 << 20))
                        .isEqualTo(8 << 20);
                assertThat(query(prometheus, "sum(mqnbd_s3_requests_total{export=\"m\",type=\"get\"})"))
                        .hasValue(0);
                // The lease was taken with a conditional PUT and the metadata object created with another.
                assertThat(query(prometheus, "sum(mqnbd_s3_http_requests_total{export=\"m\",type=\"conditional_put\"})")
                                .orElseThrow())
                        .isGreaterThanOrEqualTo(2);
                assertThat(query(prometheus, "mqnbd_s3_lease_held{export=\"m\"}"))
                        .hasValue(1);
                writer.stop(Duration.ofSeconds(60));
            }
            List<String> readerArgs = new ArrayList<>(common);
            readerArgs.addAll(List.of("--read-only", "--export", "m=s3://" + S3Server.BUCKET + "/metrics"));
            try (ServerProcess reader =
                    ServerProcess.start(S3Server.credentialsEnv(), List.of(), readerArgs.toArray(String[]::new))) {
                Path back = dir.resolve("back.bin");
                Tool.run(Duration.ofMinutes(2), "nbdcopy", uri(reader, "m"), back.toString())
                        .assertSuccess();
                assertThat(TestFiles.sha256(back, 8 << 20)).isEqualTo(TestFiles.sha256(source, 8 << 20));
                // A cold read of the whole export: one GET per stored block, none for blocks never written.
                assertThat(await(prometheus, "mqnbd_s3_requests_total{export=\"m\",type=\"get\"}", 8))
                        .isEqualTo(8);
                // At the HTTP level, every GET: the 8 blocks and the export's metadata object.
                assertThat(await(prometheus, "mqnbd_s3_http_requests_total{export=\"m\",type=\"get\",code=\"200\"}", 9))
                        .isEqualTo(9);
                assertThat(await(
                                prometheus,
                                "mqnbd_s3_http_request_duration_seconds_count{export=\"m\",type=\"get\"}",
                                9))
                        .isEqualTo(9);
                assertThat(await(prometheus, "mqnbd_s3_downloaded_bytes_total{export=\"m\"}", 8 << 20))
                        .isEqualTo(8 << 20);
                assertThat(query(prometheus, "sum(mqnbd_s3_requests_total{export=\"m\",type=\"put\"})"))
                        .hasValue(0);
                reader.stop(Duration.ofSeconds(60));
            }
        }
    }

    private static String uri(ServerProcess server, String export) {
        return "nbd://127.0.0.1:" + server.port() + "/" + export;
    }

    /** Returns the value of {@code series} (name and labels as exposed) in the endpoint's exposition now. */
    private long scraped(int metricsPort, String series) throws Exception {
        String exposition = get("http://127.0.0.1:" + metricsPort + "/metrics");
        Matcher m =
                Pattern.compile("(?m)^" + Pattern.quote(series) + " (\\S+)$").matcher(exposition);
        assertThat(m.find()).as(exposition).isTrue();
        return (long) Double.parseDouble(m.group(1));
    }

    /** Returns the port the server logged for its metrics endpoint. */
    private static int metricsPort(ServerProcess server) throws InterruptedException {
        assertThat(server.awaitLog("metrics on http://", Duration.ofSeconds(10)))
                .as(server.log())
                .isTrue();
        Matcher m = Pattern.compile("metrics on http://127\\.0\\.0\\.1:(\\d+)/metrics")
                .matcher(server.log());
        assertThat(m.find()).as(server.log()).isTrue();
        return Integer.parseInt(m.group(1));
    }

    /** Queries {@code promql} until it answers {@code expected} or {@link #SETTLE} passes; returns the last answer. */
    private double await(Prometheus prometheus, String promql, double expected) throws Exception {
        long deadline = System.nanoTime() + SETTLE.toNanos();
        OptionalDouble last = OptionalDouble.empty();
        while (System.nanoTime() - deadline < 0) {
            last = query(prometheus, promql);
            if (last.isPresent() && last.getAsDouble() == expected) {
                return expected;
            }
            Thread.sleep(250);
        }
        throw new AssertionError(
                promql + " = " + last + " (expected: " + expected + " within " + SETTLE + ")\n" + prometheus.log());
    }

    /** Runs an instant query; returns its single sample, or empty when the result is empty. */
    private OptionalDouble query(Prometheus prometheus, String promql) throws Exception {
        String body = get("http://127.0.0.1:" + prometheus.port + "/api/v1/query?query="
                + URLEncoder.encode(promql, StandardCharsets.UTF_8));
        assertThat(body).as(promql).contains("\"status\":\"success\"");
        Matcher m = VALUE.matcher(body);
        if (!m.find()) {
            return OptionalDouble.empty();
        }
        double value = Double.parseDouble(m.group(1));
        assertThat(m.find()).as("one sample expected for %s: %s", promql, body).isFalse();
        return OptionalDouble.of(value);
    }

    private String get(String url) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create(url))
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as(url + ": " + r.body()).isEqualTo(200);
        return r.body();
    }

    /** A Prometheus server on loopback that scrapes one target every second, with its data in a test directory. */
    private static final class Prometheus implements AutoCloseable {
        final int port;
        private final Process process;
        private final Path log;

        private Prometheus(int port, Process process, Path log) {
            this.port = port;
            this.process = process;
            this.log = log;
        }

        static Prometheus start(Path dir, int targetPort) throws Exception {
            int port;
            try (ServerSocket probe = new ServerSocket(0)) {
                port = probe.getLocalPort();
            }
            Path config = dir.resolve("prometheus.yml");
            Files.writeString(config, """
                    global:
                      scrape_interval: 1s
                      evaluation_interval: 1s
                    scrape_configs:
                      - job_name: mqnbd
                        static_configs:
                          - targets: ['127.0.0.1:%d']
                    """.formatted(targetPort));
            Path log = dir.resolve("prometheus.log");
            Process process = new ProcessBuilder(
                            "prometheus",
                            "--config.file=" + config,
                            "--storage.tsdb.path=" + dir.resolve("tsdb"),
                            "--web.listen-address=127.0.0.1:" + port)
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            Prometheus prometheus = new Prometheus(port, process, log);
            HttpClient client = HttpClient.newHttpClient();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (true) {
                try {
                    HttpResponse<String> r = client.send(
                            HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/-/ready"))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() == 200) {
                        return prometheus;
                    }
                } catch (IOException notYet) {
                    // Not listening yet.
                }
                if (!process.isAlive() || System.nanoTime() - deadline > 0) {
                    prometheus.close();
                    throw new AssertionError("prometheus was not ready within 30 s:\n" + prometheus.log());
                }
                Thread.sleep(100);
            }
        }

        String log() {
            try {
                return Files.readString(log);
            } catch (IOException e) {
                return "(log unreadable: " + e + ")";
            }
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
        }
    }
}
