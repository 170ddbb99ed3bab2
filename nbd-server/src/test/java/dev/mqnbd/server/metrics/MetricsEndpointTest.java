package dev.mqnbd.server.metrics;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The /metrics endpoint over HTTP, fed by a server driven with a minimal NBD client written here. */
class MetricsEndpointTest {
    // proto.md "Request message": command types.
    private static final short CMD_READ = 0;
    private static final short CMD_WRITE = 1;
    private static final short CMD_FLUSH = 3;

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private NbdServer server;
    private MetricsEndpoint endpoint;

    @BeforeEach
    void setUp() throws Exception {
        EventLoopGroup group = NbdServer.newEventLoopGroup(2);
        ExportRegistry registry = new ExportRegistry(true);
        registry.open(
                "disk",
                "memory:1M",
                "a disk",
                new DeviceOptions(false),
                new QueueSetup("disk", 2, 8, NbdServer.hctxExecutors(group), Duration.ZERO),
                1 << 20);
        registry.open(
                "slow",
                "memory:1M",
                List.of(FilterSpec.parse("slow=rate,iops=1000,burst=1ms")),
                "rate-limited",
                new DeviceOptions(false),
                new QueueSetup("slow", 1, 8, NbdServer.hctxExecutors(group), Duration.ZERO),
                1 << 20);
        registry.open(
                "slower",
                "memory:2M",
                List.of(FilterSpec.parse("slower=rate,iops=20,burst=1ms")),
                "20 requests a second",
                new DeviceOptions(false),
                new QueueSetup("slower", 1, 16, NbdServer.hctxExecutors(group), Duration.ZERO),
                1 << 20);
        endpoint = new MetricsEndpoint(registry);
        NbdServerConfig config = NbdServerConfig.builder()
                .events(endpoint.connectionEvents())
                .payloadMemory(1 << 20)
                .build();
        server = NbdServer.start(group, registry, List.of(new InetSocketAddress("127.0.0.1", 0)), config);
        endpoint.openConnections(server::connectionCount);
        endpoint.buffers(server.bufferBudget(), server::exportBufferBudgets);
        endpoint.start(new InetSocketAddress("127.0.0.1", 0));
    }

    @AfterEach
    void tearDown() {
        if (server != null) {
            server.close();
        }
        if (endpoint != null) {
            endpoint.close();
        }
    }

    @Test
    void scrape_afterIo_countsRequestsBytesAndLatency() throws Exception {
        Map<String, Double> before = scrape();
        assertThat(before)
                .containsEntry("mqnbd_export_requests_total{export=\"disk\",op=\"write\",status=\"ok\"}", 0.0);
        assertThat(before).containsEntry("mqnbd_connections_open", 0.0);

        try (Socket s = connect()) {
            exportName(s);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            DataInputStream in = new DataInputStream(s.getInputStream());
            request(out, CMD_WRITE, NbdConstants.CMD_FLAG_FUA, 1, 0, ones(4096));
            assertThat(simpleReply(in, 1, 0)).isZero();
            request(out, CMD_WRITE, 0, 2, 4096, ones(8192));
            assertThat(simpleReply(in, 2, 0)).isZero();
            request(out, CMD_FLUSH, 0, 3, 0, null);
            assertThat(simpleReply(in, 3, 0)).isZero();
            request(out, CMD_READ, 0, 4, 0, null, 512);
            assertThat(simpleReply(in, 4, 512)).isZero();
            // Beyond the end of the 1 MiB export: EINVAL, counted under its status.
            request(out, CMD_READ, 0, 5, 1 << 20, null, 512);
            assertThat(simpleReply(in, 5, 0)).isNotZero();

            Map<String, Double> m = scrape();
            assertThat(m).containsEntry("mqnbd_export_requests_total{export=\"disk\",op=\"write\",status=\"ok\"}", 2.0);
            assertThat(m).containsEntry("mqnbd_export_requests_total{export=\"disk\",op=\"flush\",status=\"ok\"}", 1.0);
            assertThat(m).containsEntry("mqnbd_export_requests_total{export=\"disk\",op=\"read\",status=\"ok\"}", 1.0);
            assertThat(m).containsEntry("mqnbd_export_written_bytes_total{export=\"disk\"}", 12288.0);
            assertThat(m).containsEntry("mqnbd_export_read_bytes_total{export=\"disk\"}", 512.0);
            assertThat(m).containsEntry("mqnbd_export_fua_requests_total{export=\"disk\"}", 1.0);
            assertThat(m).containsEntry("mqnbd_export_requests_in_flight{export=\"disk\"}", 0.0);
            assertThat(m)
                    .containsEntry("mqnbd_export_request_duration_seconds_count{export=\"disk\",op=\"write\"}", 2.0);
            assertThat(m)
                    .containsEntry(
                            "mqnbd_export_request_duration_seconds_bucket{export=\"disk\",op=\"write\",le=\"+Inf\"}",
                            2.0);
            assertThat(m.get("mqnbd_export_request_duration_seconds_sum{export=\"disk\",op=\"write\"}"))
                    .isPositive();
            assertThat(m).containsEntry("mqnbd_memory_allocated_bytes{export=\"disk\"}", 12288.0);
            assertThat(m).containsEntry("mqnbd_export_size_bytes{export=\"disk\"}", (double) (1 << 20));
            assertThat(m).containsEntry("mqnbd_connections_open", 1.0);
            assertThat(m).containsEntry("mqnbd_connections_accepted_total", 1.0);
            assertThat(m).containsEntry("mqnbd_connections_negotiated_total{mode=\"simple\",tls=\"false\"}", 1.0);
            // The bad READ was refused before the export saw it (RequestValidator), so it is not an export request.
            double dispatched = m.entrySet().stream()
                    .filter(e -> e.getKey().startsWith("mqnbd_hw_queue_dispatched_total{export=\"disk\""))
                    .mapToDouble(Map.Entry::getValue)
                    .sum();
            assertThat(dispatched).isEqualTo(4.0);
            assertThat(m).containsKey("mqnbd_hw_queue_tags_in_use{export=\"disk\",hw_queue=\"1\"}");
            assertThat(m).containsEntry("mqnbd_hw_queue_tags{export=\"disk\",hw_queue=\"0\"}", 8.0);
        }
    }

    @Test
    void scrape_filters_reportTheirCounters() throws Exception {
        Map<String, Double> m = scrape();
        assertThat(m)
                .containsEntry(
                        "mqnbd_filter_events_total{event=\"deferred\",export=\"slow\",filter=\"rate\",layer=\"0\"}",
                        0.0);
        // The counting layer sits above the filters and counts the same way for every export.
        assertThat(m).containsEntry("mqnbd_export_requests_total{export=\"slow\",op=\"read\",status=\"ok\"}", 0.0);
    }

    @Test
    void scrape_payloadBuffers_theBoundAndTheWaitsOfASlowExport() throws Exception {
        assertThat(scrape()).containsEntry("mqnbd_payload_buffer_limit_bytes", (double) (1 << 20));
        try (Socket s = connect()) {
            exportName(s, "slower");
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            DataInputStream in = new DataInputStream(s.getInputStream());
            // 8 WRITEs of 128 KiB at 20 a second: the export's half of the 1 MiB bound holds four of them.
            for (int i = 0; i < 8; i++) {
                request(out, CMD_WRITE, 0, i, (long) i << 17, ones(128 << 10));
            }
            for (int i = 0; i < 8; i++) {
                assertThat(simpleReply(in, i, 0)).isZero();
            }
            Map<String, Double> m = scrape();
            assertThat(m.get("mqnbd_payload_buffer_waits_total{export=\"slower\"}"))
                    .isGreaterThanOrEqualTo(1.0);
            assertThat(m).containsEntry("mqnbd_payload_buffer_bytes{export=\"slower\"}", 0.0);
        }
    }

    @Test
    void scrape_badMagic_countsHandshakeFailure() throws Exception {
        try (Socket s = connect()) {
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE);
            out.writeLong(0x1234);
            out.writeInt(NbdConstants.OPT_EXPORT_NAME);
            out.writeInt(0);
            out.flush();
            assertThat(s.getInputStream().read()).isEqualTo(-1);
        }
        assertThat(scrape()).containsEntry("mqnbd_handshake_failures_total{reason=\"protocol\"}", 1.0);
    }

    @Test
    void scrape_openMetricsAccepted_answersOpenMetrics() throws Exception {
        HttpResponse<String> r = get("/metrics", "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type"))
                .hasValueSatisfying(t -> assertThat(t).contains("openmetrics"));
        assertThat(r.body()).contains("# TYPE mqnbd_export_requests counter").endsWith("# EOF\n");
    }

    @Test
    void get_otherPath_isNotFound() throws Exception {
        assertThat(get("/", null).statusCode()).isEqualTo(404);
        assertThat(get("/-/healthy", null).statusCode()).isEqualTo(404);
    }

    private static byte[] ones(int length) {
        byte[] data = new byte[length];
        java.util.Arrays.fill(data, (byte) 1);
        return data;
    }

    private Socket connect() throws IOException {
        Socket s = new Socket("127.0.0.1", server.port());
        s.setSoTimeout(20_000);
        DataInputStream in = new DataInputStream(s.getInputStream());
        in.readLong(); // NBDMAGIC
        in.readLong(); // IHAVEOPT
        in.readShort(); // handshake flags
        return s;
    }

    /** Chooses export "disk" with EXPORT_NAME (simple replies), after the greeting {@link #connect} read. */
    private static void exportName(Socket s) throws IOException {
        exportName(s, "disk");
    }

    private static void exportName(Socket s, String export) throws IOException {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeInt(NbdConstants.OPT_EXPORT_NAME);
        out.writeInt(name.length);
        out.write(name);
        out.flush();
        DataInputStream in = new DataInputStream(s.getInputStream());
        in.readLong(); // size
        in.readShort(); // transmission flags
    }

    private static void request(DataOutputStream out, short type, int flags, long handle, long offset, byte[] data)
            throws IOException {
        request(out, type, flags, handle, offset, data, data == null ? 0 : data.length);
    }

    private static void request(
            DataOutputStream out, short type, int flags, long handle, long offset, byte[] data, int length)
            throws IOException {
        out.writeInt(NbdConstants.REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(handle);
        out.writeLong(offset);
        out.writeInt(length);
        if (data != null) {
            out.write(data);
        }
        out.flush();
    }

    /** Reads a simple reply to {@code handle} and its {@code readLength} bytes of data; returns its error. */
    private static int simpleReply(DataInputStream in, long handle, int readLength) throws IOException {
        assertThat(in.readInt()).isEqualTo(NbdConstants.SIMPLE_REPLY_MAGIC);
        int error = in.readInt();
        assertThat(in.readLong()).isEqualTo(handle);
        if (error == 0) {
            in.readNBytes(readLength);
        }
        return error;
    }

    private HttpResponse<String> get(String path, String accept) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + endpoint.port() + path))
                .timeout(Duration.ofSeconds(10));
        if (accept != null) {
            b.header("Accept", accept);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** Scrapes the text format; returns each sample line's value by its name and labels as written. */
    private Map<String, Double> scrape() throws Exception {
        HttpResponse<String> r = get("/metrics", null);
        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type"))
                .hasValueSatisfying(t -> assertThat(t).startsWith("text/plain"));
        Map<String, Double> samples = new HashMap<>();
        for (String line : r.body().split("\n")) {
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int space = line.lastIndexOf(' ');
            samples.put(line.substring(0, space), Double.parseDouble(line.substring(space + 1)));
        }
        return samples;
    }
}
