package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.container.S3Server;
import java.io.IOException;
import java.io.InputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Replacing a running server while clients use it. qemu's NBD client (with {@code reconnect-delay}) writes
 * and verifies patterns without pause while the server is replaced five times, the first server started
 * through socket activation ({@code systemd-socket-activate}), each replacement by {@code --take-over}; on a
 * file export and on an S3 export. No I/O error may reach the client, and every pattern reads back. A
 * client that cannot reconnect (libnbd) sees its connection end, never wrong data.
 */
class RestartIT {
    private static final Pattern TIMING = Pattern.compile("ops; (?:(\\d+):)?(\\d+\\.\\d+) sec");
    private static final Pattern BACKLOG = Pattern.compile("new connections waited (\\d+) ms");
    private static final int REPLACEMENTS = 5;

    @TempDir
    Path dir;

    @Test
    void fileExport_qemuReconnects_acrossFiveReplacements_noIoError() throws Exception {
        replaceFiveTimes("=file:" + dir.resolve("disk.img") + ",create=64M", Map.of(), List.of());
    }

    @Test
    void s3Export_qemuReconnects_acrossFiveReplacements_noIoError() throws Exception {
        try (S3Server s3 = S3Server.start(null)) {
            replaceFiveTimes(
                    "=s3://" + S3Server.BUCKET + "/restart,create=64M",
                    S3Server.credentialsEnv(),
                    S3Server.serveArgs(s3.hostEndpoint()));
        }
    }

    @Test
    void clientWithoutReconnect_seesItsConnectionEnd_neverWrongData() throws Exception {
        Path control = dir.resolve("control.sock");
        String[] serve = {
            "serve",
            "-e",
            "=file:" + dir.resolve("plain.img") + ",create=16M",
            "--port",
            "0",
            "--control",
            control.toString(),
            "--take-over"
        };
        ServerProcess server = ServerProcess.start(serve);
        ServerProcess next = null;
        Path script = dir.resolve("no-reconnect-client.py");
        try (InputStream in = RestartIT.class.getResourceAsStream("restart/no-reconnect-client.py")) {
            Files.copy(Objects.requireNonNull(in, "no-reconnect-client.py"), script);
        }
        Path out = dir.resolve("client.log");
        // Debian's python3, which has libnbd's module, whatever python3 comes first on the PATH.
        Process client = new ProcessBuilder(
                        "/usr/bin/python3", script.toString(), "nbd://127.0.0.1:" + server.port() + "/")
                .redirectErrorStream(true)
                .redirectOutput(out.toFile())
                .start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!Files.readString(out).contains("written") && client.isAlive() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(Files.readString(out)).as("the client wrote its regions").contains("written");
            Thread.sleep(500); // reading now
            next = ServerProcess.start(serve);
            assertThat(client.waitFor(60, TimeUnit.SECONDS))
                    .as("the client ends")
                    .isTrue();
            String log = Files.readString(out);
            System.out.println(
                    "RestartIT: client without reconnection: " + log.strip().replace('\n', ' '));
            assertThat(client.exitValue()).as(log).isZero();
            assertThat(log).containsPattern("closed after [1-9]\\d* verified reads");
            assertThat(server.process().waitFor(30, TimeUnit.SECONDS))
                    .as("the old server exits")
                    .isTrue();
            // What it wrote and flushed is on the export the new server serves.
            for (int region = 0; region < 16; region++) {
                Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-r",
                        "-c",
                        "read -P " + (region + 1) + " " + region * (1L << 20) + " 1M",
                        "nbd://127.0.0.1:" + next.port() + "/");
            }
        } finally {
            client.destroyForcibly();
            server.close();
            if (next != null) {
                next.close();
            }
        }
    }

    private void replaceFiveTimes(String export, Map<String, String> env, List<String> backendArgs) throws Exception {
        Path control = dir.resolve("control.sock");
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        List<String> args =
                new ArrayList<>(List.of("serve", "-e", export, "--control", control.toString(), "--take-over"));
        args.addAll(backendArgs);
        String[] serve = args.toArray(String[]::new);
        List<String> activated = new ArrayList<>(List.of("systemd-socket-activate", "-l", "127.0.0.1:" + port));
        // systemd-socket-activate passes its child only the variables named with -E, as a unit's Environment= does.
        env.keySet().stream().sorted().forEach(name -> activated.addAll(List.of("-E", name)));
        activated.addAll(ServerProcess.command(serve));
        // systemd-socket-activate starts the server on the first connection, as a socket unit does.
        int activationPort = port;
        Thread poke = Thread.ofVirtual().start(() -> {
            for (int attempt = 0; attempt < 100; attempt++) {
                try (Socket first = new Socket("127.0.0.1", activationPort)) {
                    first.getInputStream().read();
                    return;
                } catch (IOException e) {
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException stop) {
                        return;
                    }
                }
            }
        });
        ServerProcess server = ServerProcess.startCommand(env, activated);
        poke.join(15_000);
        assertThat(server.log()).contains("passed by the service manager");

        // Rounds over 16 distinct 1 MiB regions, each written with its own pattern and read back at once.
        List<String> qemu = new ArrayList<>(List.of(
                "qemu-io",
                "--image-opts",
                "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=" + port + ",reconnect-delay=30"));
        int rounds = 1504; // a multiple of 16: the last 16 rounds wrote each region last
        for (int i = 0; i < rounds; i++) {
            long offset = (i % 16) * (1L << 20);
            int pattern = 1 + i % 250;
            qemu.addAll(List.of("-c", "write -P " + pattern + " " + offset + " 1M"));
            qemu.addAll(List.of("-c", "read -P " + pattern + " " + offset + " 1M"));
            qemu.addAll(List.of("-c", "sleep 10"));
        }
        // And at the end, each region's last pattern once more, from the last server.
        for (int region = 0; region < 16; region++) {
            int last = rounds - 16 + region;
            qemu.addAll(List.of("-c", "read -P " + (1 + last % 250) + " " + region * (1L << 20) + " 1M"));
        }
        Path qemuLog = dir.resolve("qemu-io.log");
        Process client = new ProcessBuilder(qemu)
                .redirectErrorStream(true)
                .redirectOutput(qemuLog.toFile())
                .start();
        List<ServerProcess> old = new ArrayList<>();
        List<Integer> backlogMillis = new ArrayList<>();
        try {
            for (int r = 1; r <= REPLACEMENTS; r++) {
                Thread.sleep(700);
                assertThat(client.isAlive())
                        .as("qemu-io still running before replacement " + r)
                        .isTrue();
                ServerProcess next = ServerProcess.start(env, List.of(), serve);
                assertThat(server.process().waitFor(30, TimeUnit.SECONDS))
                        .as("the old server exits after handing over")
                        .isTrue();
                assertThat(server.log())
                        .contains("handed over to pid " + next.process().pid());
                // The take-over is logged just after "ready", with the time new connections waited.
                assertThat(next.awaitLog("took over from pid", Duration.ofSeconds(10)))
                        .as(next.log())
                        .isTrue();
                String took = line(next.log(), "took over from pid");
                System.out.println("replacement " + r + ": " + took);
                Matcher waited = BACKLOG.matcher(took);
                assertThat(waited.find()).as(took).isTrue();
                backlogMillis.add(Integer.parseInt(waited.group(1)));
                old.add(server);
                server = next;
            }
            assertThat(client.waitFor(180, TimeUnit.SECONDS))
                    .as("qemu-io finishes")
                    .isTrue();
            String out = Files.readString(qemuLog, StandardCharsets.UTF_8);
            assertThat(out).doesNotContainIgnoringCase("error").doesNotContain("Pattern verification failed");
            assertThat(client.exitValue()).as(out).isZero();
            assertThat(count(out, "wrote 1048576/1048576")).isEqualTo(rounds);
            assertThat(count(out, "read 1048576/1048576")).isEqualTo(rounds + 16);
            double worst = 0;
            Matcher m = TIMING.matcher(out);
            while (m.find()) {
                double seconds =
                        (m.group(1) == null ? 0 : 60 * Integer.parseInt(m.group(1))) + Double.parseDouble(m.group(2));
                worst = Math.max(worst, seconds);
            }
            System.out.printf(
                    "RestartIT %s: %d replacements, %d writes and %d reads verified; new connections waited %s ms"
                            + " in the backlog; longest request as qemu-io saw it: %.2f s%n",
                    export.substring(1, export.indexOf(':')), REPLACEMENTS, rounds, rounds + 16, backlogMillis, worst);
            assertThat(server.stop(Duration.ofSeconds(30))).isIn(0, 143); // 143: SIGTERM, as the JVM reports it
        } finally {
            client.destroyForcibly();
            server.close();
            for (ServerProcess p : old) {
                p.close();
            }
        }
    }

    private static String line(String log, String text) {
        return log.lines().filter(l -> l.contains(text)).findFirst().orElse("(no line with " + text + ")");
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }
}
