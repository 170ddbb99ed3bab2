package dev.mqnbd.it.vm;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import dev.mqnbd.it.container.S3Server;
import dev.mqnbd.it.container.ServerBackend;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The Linux kernel's NBD client ({@code nbd.ko} driven by {@code nbd-client}) in a qemu guest against
 * the server in this JVM: ext4 round trips (one connection and four), raw direct-I/O patterns with
 * discard and zeroout, and a server restart between two writes.
 */
class KernelClientIT {
    /** A guest boots in ~5 s under emulation; an ext4 round trip with 64 MiB takes 20-60 s. */
    private static final Duration GUEST_LIMIT = Duration.ofMinutes(6);
    /** nbd-client's request timeout in the guest ({@code -t 60}), plus slack for emulation. */
    private static final int CLIENT_TIMEOUT_SECONDS = 60;

    private static final Pattern SUM = Pattern.compile("(?m)^(BEFORE|AFTER) ([0-9a-f]{64})  \\./(\\S+)$");

    @TempDir
    Path data;

    static List<ServerBackend> backends() {
        return ServerBackend.all();
    }

    /** Scenarios 1 and 4: the file-system round trip, for every backend. */
    @ParameterizedTest(name = "{0} backend")
    @MethodSource("backends")
    void ext4_mkfsWriteFsckRemount_checksumsEqual(ServerBackend backend) throws Exception {
        ext4RoundTrip("ext4-" + backend.name(), backend, "", 1);
    }

    /** Scenario 2: the same over four connections (the kernel refuses unless the server advertises multi-conn). */
    @Test
    void ext4_fourConnections_checksumsEqual() throws Exception {
        ext4RoundTrip("ext4-multiconn", ServerBackend.MEMORY, "-C 4", 4);
    }

    private void ext4RoundTrip(String name, ServerBackend backend, String nbdArgs, int connections) throws Exception {
        String export = "fs";
        try (S3Server s3 = backend.needsS3() ? S3Server.start(null) : null;
                VmServer server = VmServer.start(
                        Map.of(export, backend.spec(data, export, "1G")),
                        s3 == null ? Map.of() : S3Server.settings(s3.hostEndpoint()));
                GuestVm guest = GuestVm.boot(
                        name,
                        "ext4.sh",
                        Map.of(
                                "SERVER",
                                "10.0.2.2",
                                "PORT",
                                Integer.toString(server.port()),
                                "EXPORT",
                                export,
                                "NBD_ARGS",
                                nbdArgs,
                                "CONNECTIONS",
                                connections > 1 ? Integer.toString(connections) : ""),
                        Math.max(2, connections))) {
            String console = guest.awaitSuccess(GUEST_LIMIT);

            Map<String, String> before = sums(console, "BEFORE");
            Map<String, String> after = sums(console, "AFTER");
            assertThat(before).as("files written").hasSize(42).containsKeys("big.bin", "seq.txt", "small/f40");
            assertThat(after).as("checksums after e2fsck and a fresh mount").isEqualTo(before);
            assertThat(before.get("seq.txt"))
                    .as("seq 1 200000 has a known checksum")
                    .isEqualTo(seqChecksum());
            assertThat(console).contains("CONNECTED size=" + (1L << 30) + " queues=" + connections);
            // Once connected (a stuck receive workqueue is detected before, see common.sh), no request may time out.
            String connected = console.substring(console.lastIndexOf("CONNECTED size="));
            assertThat(connected).doesNotContain("Connection timed out", "I/O error", "Dead connection");
        }
    }

    /** Scenario 3: raw patterns with direct I/O at several offsets, blkdiscard, zeroes read back. */
    @Test
    void dd_directPatternsAtSeveralOffsets_discardAndZeroout_readBack() throws Exception {
        try (VmServer server = VmServer.start(Map.of("raw", ServerBackend.MEMORY.spec(data, "raw", "256M")));
                GuestVm guest = GuestVm.boot(
                        "patterns",
                        "patterns.sh",
                        Map.of("SERVER", "10.0.2.2", "PORT", Integer.toString(server.port()), "EXPORT", "raw"),
                        2)) {
            String console = guest.awaitSuccess(GUEST_LIMIT);

            assertThat(console)
                    .contains(
                            "CHECK pattern at sector 0 ok",
                            "CHECK pattern at sector 7 ok",
                            "CHECK pattern at sector 2072 ok",
                            "CHECK pattern at sector " + ((256 << 11) / 2 + 5) + " ok",
                            "CHECK pattern at sector " + ((256 << 11) - 128) + " ok",
                            "CHECK gaps zero",
                            "CHECK discard zero",
                            "CHECK zeroout zero");
        }
    }

    /**
     * Scenario 5: the server restarts while the guest is idle between two writes; the guest's next write
     * must succeed or fail cleanly within the client's timeout, and the device must disconnect.
     */
    @Test
    void serverRestart_betweenWrites_nextWriteEndsWithinClientTimeout() throws Exception {
        AtomicBoolean restarted = new AtomicBoolean();
        HttpServer control = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        control.createContext("/", exchange -> {
            byte[] body = (restarted.get() ? "restarted\n" : "waiting\n").getBytes(StandardCharsets.US_ASCII);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        control.start();
        try (VmServer server = VmServer.start(Map.of("r", ServerBackend.MEMORY.spec(data, "r", "64M")));
                GuestVm guest = GuestVm.boot(
                        "restart",
                        "restart.sh",
                        Map.of(
                                "SERVER",
                                "10.0.2.2",
                                "PORT",
                                Integer.toString(server.port()),
                                "EXPORT",
                                "r",
                                "CONTROL_PORT",
                                Integer.toString(control.getAddress().getPort())),
                        2)) {
            guest.awaitLine(Pattern.compile("^PHASE idle"), GUEST_LIMIT);
            server.restart();
            restarted.set(true);
            String console = guest.awaitSuccess(GUEST_LIMIT);

            Matcher m = Pattern.compile("(?m)^SECOND write (succeeded|failed)(?: rc=\\d+)? seconds=(\\d+)$")
                    .matcher(console);
            assertThat(m.find())
                    .as("the guest reports how the second write ended:\n%s", console)
                    .isTrue();
            assertThat(Integer.parseInt(m.group(2)))
                    .as("seconds the second write took (%s)", m.group(1))
                    .isLessThanOrEqualTo(CLIENT_TIMEOUT_SECONDS + 15);
            System.out.println("KernelClientIT: after the server restart the guest's next write " + m.group(1) + " in "
                    + m.group(2) + " s");
        } finally {
            control.stop(0);
        }
    }

    private static Map<String, String> sums(String console, String which) {
        Map<String, String> sums = new TreeMap<>();
        Matcher m = SUM.matcher(console);
        while (m.find()) {
            if (m.group(1).equals(which)) {
                sums.put(m.group(3), m.group(2));
            }
        }
        return sums;
    }

    private static String seqChecksum() throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        StringBuilder text = new StringBuilder();
        for (int i = 1; i <= 200_000; i++) {
            text.append(i).append('\n');
        }
        return HexFormat.of().formatHex(digest.digest(text.toString().getBytes(StandardCharsets.US_ASCII)));
    }
}
