package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.ConnectException;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code mqnbd serve --transport io_uring}: the same clients and data checks as on the default transport,
 * against a server process; how a bad or impossible choice is refused. (A client that never reads its
 * replies is in {@link AbuseIT}, on both transports.)
 */
class TransportIT {
    @TempDir
    Path tmp;

    @Test
    void ioUring_realClients_dataIntact() throws Exception {
        Path image = tmp.resolve("disk.img");
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--transport",
                "io_uring",
                "--export",
                "mem=memory:256M",
                "--export",
                "file=file:" + image + ",create=128M")) {
            assertThat(server.log()).contains("(IO_URING)");
            String base = "nbd://127.0.0.1:" + server.port() + "/";

            // Many requests in flight, unaligned sizes, every block read back and checked.
            Tool.run(Duration.ofMinutes(3), Fio.mixedBlockSizesVerified(base + "mem", "0"))
                    .assertSuccess();
            Tool.Result fio = Tool.run(Duration.ofMinutes(3), Fio.randomWrites4kVerified(base + "file"))
                    .assertSuccess();
            assertThat(fio.stdout()).contains("\"error\" : 0");

            // Large requests both ways: 64 MiB in and out with nbdcopy, byte for byte.
            Path source = tmp.resolve("random.img");
            TestFiles.writeRandom(source, 64 << 20, 19);
            Path back = tmp.resolve("back.img");
            Tool.run(Duration.ofMinutes(3), "nbdcopy", source.toString(), base + "mem")
                    .assertSuccess();
            Tool.run(Duration.ofMinutes(3), "nbdcopy", "--synchronous", base + "mem", back.toString())
                    .assertSuccess();
            assertThat(TestFiles.sha256(back, 64 << 20)).isEqualTo(TestFiles.sha256(source, 64 << 20));
            assertThat(TestFiles.isZero(back, 64L << 20, 192L << 20)).isTrue();

            // A FLUSH reaches the file: what the server wrote is in the image it names.
            Tool.run(
                            Duration.ofMinutes(1),
                            "qemu-io",
                            "-f",
                            "raw",
                            "-c",
                            "write -P 0x6b 1M 64k",
                            "-c",
                            "flush",
                            base + "file")
                    .assertSuccess();
            assertThat(TestFiles.readByte(image, (1 << 20) + 65535)).isEqualTo(0x6b);
        }
    }

    @Test
    void unknownTransport_isAUsageError_andNothingStarts() {
        Tool.Result result = Tool.run(
                        Duration.ofMinutes(1),
                        ServerProcess.command("serve", "--port", "0", "--transport", "kqueue")
                                .toArray(String[]::new))
                .assertFailure();

        assertThat(result.stderr())
                .contains("--transport kqueue: unknown transport \"kqueue\" (expected: auto, epoll, io_uring or nio)");
        assertThat(result.stdout() + result.stderr()).doesNotContain("listening on");
    }

    @Test
    void ioUring_withTakeOver_isRefusedBeforeTheRunningServerIsAsked() throws Exception {
        Path control = tmp.resolve("control.sock");
        try (ServerProcess running = ServerProcess.start(
                "serve", "--port", "0", "--control", control.toString(), "--export", "mem=memory:16M")) {
            Tool.Result result = Tool.run(
                            Duration.ofMinutes(1),
                            ServerProcess.command(
                                            "serve",
                                            "--port",
                                            "0",
                                            "--control",
                                            control.toString(),
                                            "--take-over",
                                            "--transport",
                                            "io_uring",
                                            "--export",
                                            "mem=memory:16M")
                                    .toArray(String[]::new))
                    .assertFailure();

            assertThat(result.stderr())
                    .contains("--take-over needs the epoll transport, the only one that adopts the running"
                            + " server's sockets (got --transport io_uring)");
            // The running server was never asked to hand over: it still serves, and logged no hand-over.
            Tool.run(Duration.ofSeconds(30), "nbdinfo", "nbd://127.0.0.1:" + running.port() + "/mem")
                    .assertSuccess();
            assertThat(running.log()).doesNotContain("handing over", "cannot hand over", "control connection");
        }
    }

    @Test
    void ioUring_onAnInheritedSocket_isRefusedWithTheReason() throws Exception {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        Path log = tmp.resolve("activate.log");
        // systemd-socket-activate passes a listening socket as fd 3 and starts the server on the first
        // connection; io_uring cannot adopt it, and the server says so and exits.
        List<String> command = new ArrayList<>(List.of("systemd-socket-activate", "-l", "127.0.0.1:" + port));
        command.addAll(ServerProcess.command("serve", "--transport", "io_uring"));
        Process activator = new ProcessBuilder(command)
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        try {
            boolean connected = false;
            for (int attempt = 0; attempt < 100 && !connected; attempt++) {
                try (Socket first = new Socket("127.0.0.1", port)) {
                    connected = true;
                    // The server exits without a greeting: the connection ends (EOF or reset).
                    first.setSoTimeout(60_000);
                    assertThat(readToEnd(first))
                            .as("bytes the refused server sent")
                            .isZero();
                } catch (ConnectException e) {
                    Thread.sleep(100);
                }
            }
            assertThat(connected).as("systemd-socket-activate listened").isTrue();
            assertThat(activator.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(activator.exitValue()).isNotZero();
            assertThat(Files.readString(log))
                    .contains(
                            "with the io_uring transport: only epoll adopts inherited sockets (use --transport epoll)");
        } finally {
            activator.destroyForcibly();
        }
    }

    private static int readToEnd(Socket socket) throws IOException {
        int total = 0;
        try {
            byte[] buffer = new byte[4096];
            for (int n; (n = socket.getInputStream().read(buffer)) >= 0; ) {
                total += n;
            }
        } catch (SocketException reset) {
            // A reset ends the connection as EOF does.
        }
        return total;
    }
}
