package dev.mqnbd.it.vm;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import dev.mqnbd.it.ServerProcess;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernel client in a guest on ext4, fio writing and verifying, while the host replaces the server five
 * times ({@code mqnbd serve --control SOCK --take-over}, the jar as its own process).
 *
 * <p>This pins what Debian bookworm's kernel client can do, which is not to ride out a replacement: its
 * {@code nbd-client} 3.24 has no dead-connection timeout and never sends {@code NBD_CMD_RECONFIGURE} in
 * netlink mode, and its {@code -persist} (ioctl mode only) reconnects only when {@code NBD_DO_IT} fails,
 * while kernel 6.1 returns success from it when the server closes the connection. So the first replacement
 * fails the requests in flight, the device loses its size, ext4 aborts its journal and fio sees EIO. What the
 * server acknowledged survives: after a new {@code nbd-client} connection and a mount (journal replay), a
 * file synced before the replacements reads back and {@code e2fsck -fn} is clean.
 */
class KernelRestartIT {
    private static final Duration GUEST_LIMIT = Duration.ofMinutes(5);
    private static final int REPLACEMENTS = 5;

    @TempDir
    Path dir;

    @Test
    void ext4FioVerify_fiveReplacements_nbdClient324LosesDevice_syncedDataAndFsCleanAfterReconnect() throws Exception {
        AtomicBoolean done = new AtomicBoolean();
        HttpServer control = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        control.createContext("/", exchange -> {
            byte[] body = (done.get() ? "done\n" : "running\n").getBytes(StandardCharsets.US_ASCII);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        control.start();
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        String[] serve = {
            "serve",
            "-e",
            "fs=file:" + dir.resolve("fs.img") + ",create=256M",
            "--port",
            Integer.toString(port),
            "--control",
            dir.resolve("control.sock").toString(),
            "--take-over"
        };
        List<ServerProcess> servers = new ArrayList<>();
        servers.add(ServerProcess.start(serve));
        try (GuestVm guest = GuestVm.boot(
                "kernel-restart",
                "kernel-restart.sh",
                Map.of(
                        "SERVER",
                        "10.0.2.2",
                        "PORT",
                        Integer.toString(port),
                        "EXPORT",
                        "fs",
                        "CONTROL_PORT",
                        Integer.toString(control.getAddress().getPort())),
                2)) {
            guest.awaitLine(Pattern.compile("^PHASE fio"), GUEST_LIMIT);
            for (int i = 0; i < REPLACEMENTS; i++) {
                Thread.sleep(4000);
                ServerProcess old = servers.getLast();
                servers.add(ServerProcess.start(serve));
                assertThat(old.process().waitFor(30, TimeUnit.SECONDS))
                        .as("replaced server %d exits", i + 1)
                        .isTrue();
            }
            Thread.sleep(4000);
            done.set(true);
            String console = guest.awaitSuccess(GUEST_LIMIT);
            Matcher fio =
                    Pattern.compile("(?m)^FIO rounds=(\\d+) errors=(\\d+)$").matcher(console);
            assertThat(fio.find())
                    .as("fio's summary in the console:\n%s", console)
                    .isTrue();
            System.out.println("KernelRestartIT: " + fio.group() + "; " + line(console, "DMESG ") + "; "
                    + line(console, "RECONNECTS ") + "; " + line(console, "DEVICE ") + "; "
                    + line(console, "BEFORE ") + "; " + line(console, "FSCK "));

            // What nbd-client 3.24 and kernel 6.1 do when the server is replaced: the device goes away.
            assertThat(console)
                    .as("the replacement ends the kernel's connection")
                    .contains("block nbd0: Receive control failed");
            assertThat(Integer.parseInt(fio.group(2)))
                    .as("fio rounds that saw an I/O error")
                    .isPositive();
            assertThat(console).as("fio's error").contains("error=Input/output error");
            assertThat(line(console, "DMESG ")).doesNotContain("ioerrors=0 ");
            assertThat(console)
                    .as("NBD_DO_IT returns success, so -persist does not reconnect")
                    .contains("GUEST nbd-client: Kernel call returned.")
                    .contains("RECONNECTS 0")
                    .contains("DEVICE gone after the replacements (size 0)");
            // What the server acknowledged survives the replacements.
            assertThat(console)
                    .as("after a new connection and a mount that replays the journal")
                    .contains("BEFORE intact")
                    .contains("FSCK rc=0");
        } finally {
            control.stop(0);
            for (ServerProcess server : servers) {
                server.close();
            }
        }
    }

    private static String line(String console, String prefix) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(prefix) + ".*$").matcher(console);
        return m.find() ? m.group() : prefix + "(missing)";
    }
}
