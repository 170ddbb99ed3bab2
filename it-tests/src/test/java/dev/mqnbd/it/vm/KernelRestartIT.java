package dev.mqnbd.it.vm;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import dev.mqnbd.it.ServerProcess;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernel's NBD client while the server is replaced: {@code mqnbd serve --control SOCK --take-over}
 * (start new, drain old) twice, while the guest writes files with fsync to ext4 on a file export, through
 * nbd-client's persist mode ({@code -persist -nonetlink}: the only mode of Debian's nbd-client 3.24 that
 * reconnects).
 *
 * <p>What that client and Linux 6.1 do: the connection the old server closes is not replaced before the
 * kernel fails the requests queued on it, so the guest's next writes fail with EIO and ext4 aborts its
 * journal; the test asserts that this is still so. What the server must do holds all the same: every file
 * the guest was told was written and fsynced is in the image (read on the host with debugfs after the
 * journal's recovery), and {@code e2fsck -fn} then finds the file system clean.
 */
class KernelRestartIT {
    private static final Duration GUEST_LIMIT = Duration.ofMinutes(6);
    private static final int REPLACEMENTS = 2;
    private static final Pattern WROTE = Pattern.compile("(?m)^WROTE (f\\d+) ([0-9a-f]{64}) seconds=(\\d+)$");
    private static final Pattern FAILED = Pattern.compile("(?m)^FAILED (f\\d+) seconds=(\\d+): (.*)$");
    private static final Pattern BEFORE = Pattern.compile("(?m)^BEFORE ([0-9a-f]{64})$");

    @TempDir
    Path dir;

    @Test
    void ext4Writes_whileTheServerIsReplacedTwice_persistMode() throws Exception {
        AtomicReference<String> state = new AtomicReference<>("writing");
        HttpServer control = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        control.createContext("/", exchange -> {
            byte[] body = (state.get() + "\n").getBytes(StandardCharsets.US_ASCII);
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        control.start();
        String[] serve = {
            "serve",
            "--port",
            "0",
            "--export",
            "disk=file:" + dir.resolve("disk.img") + ",create=256M",
            "--control",
            dir.resolve("control.sock").toString(),
            "--take-over"
        };
        List<ServerProcess> servers = new ArrayList<>();
        try {
            ServerProcess server = ServerProcess.start(serve);
            servers.add(server);
            // File name to SHA-256 of every file the guest was told was written and fsynced.
            Map<String, String> wrote = new TreeMap<>();
            try (GuestVm guest = GuestVm.boot(
                    "takeover",
                    "takeover.sh",
                    Map.of(
                            "SERVER",
                            "10.0.2.2",
                            "PORT",
                            Integer.toString(server.port()),
                            "EXPORT",
                            "disk",
                            "CONTROL_PORT",
                            Integer.toString(control.getAddress().getPort())),
                    2)) {
                guest.awaitLine(Pattern.compile("^PHASE writing"), GUEST_LIMIT);
                for (int r = 1; r <= REPLACEMENTS; r++) {
                    Thread.sleep(4000);
                    ServerProcess next = ServerProcess.start(serve);
                    servers.add(next);
                    assertThat(server.process().waitFor(60, TimeUnit.SECONDS))
                            .as("the old server exits after handing over:\n%s", server.log())
                            .isTrue();
                    assertThat(next.awaitLog("took over from pid", Duration.ofSeconds(10)))
                            .as(next.log())
                            .isTrue();
                    System.out.println("KernelRestartIT replacement " + r + ": "
                            + next.log()
                                    .lines()
                                    .filter(l -> l.contains("took over from pid"))
                                    .findFirst()
                                    .orElseThrow());
                    server = next;
                }
                Thread.sleep(4000);
                state.set("done");
                String console = guest.awaitSuccess(GUEST_LIMIT);
                System.out.println("KernelRestartIT guest console:\n" + console);

                Matcher m = WROTE.matcher(console);
                while (m.find()) {
                    wrote.put(m.group(1), m.group(2));
                }
                m = BEFORE.matcher(console);
                assertThat(m.find()).as(console).isTrue();
                wrote.put("before.bin", m.group(1));
                List<String> failed = new ArrayList<>();
                m = FAILED.matcher(console);
                while (m.find()) {
                    failed.add(m.group(1) + " after " + m.group(2) + " s: " + m.group(3));
                }
                System.out.println("KernelRestartIT: the guest wrote and fsynced " + wrote.size()
                        + " files before its writes failed; " + failed.size() + " writes failed, the first: "
                        + (failed.isEmpty() ? "none" : failed.get(0)));
                assertThat(wrote)
                        .as("files written before the first replacement")
                        .hasSizeGreaterThan(1);
                // What Debian's nbd-client 3.24 and Linux 6.1 do: the connection the old server closes is
                // not replaced in time; the kernel fails the requests, ext4 aborts its journal.
                assertThat(console).contains("I/O error, dev nbd0");
                assertThat(failed).as("writes after the first replacement").isNotEmpty();
            }
            server.stop(Duration.ofSeconds(60));

            // The server's part: everything the guest was told was written and fsynced is in the image.
            Path image = dir.resolve("disk.img");
            Path copy = dir.resolve("check.img");
            Files.copy(image, copy);
            Result replay = run("e2fsck", "-fy", copy.toString());
            assertThat(replay.exit())
                    .as("e2fsck -fy (journal recovery):\n%s", replay.output())
                    .isLessThanOrEqualTo(1);
            System.out.println("KernelRestartIT: e2fsck -fy of the image: "
                    + replay.output().lines().skip(1).findFirst().orElse("(no output)"));
            Result fsck = run("e2fsck", "-fn", copy.toString());
            assertThat(fsck.exit())
                    .as("e2fsck -fn after journal recovery:\n%s", fsck.output())
                    .isZero();
            Path out = Files.createDirectory(dir.resolve("files"));
            StringBuilder dump = new StringBuilder();
            wrote.keySet()
                    .forEach(f -> dump.append("dump /")
                            .append(f)
                            .append(' ')
                            .append(out.resolve(f))
                            .append('\n'));
            Path commands = dir.resolve("debugfs.cmd");
            Files.writeString(commands, dump);
            Result dumped = run("debugfs", "-f", commands.toString(), copy.toString());
            assertThat(dumped.exit()).as(dumped.output()).isZero();
            for (Map.Entry<String, String> e : wrote.entrySet()) {
                assertThat(sha256(out.resolve(e.getKey())))
                        .as("%s, acknowledged to the guest before the replacement", e.getKey())
                        .isEqualTo(e.getValue());
            }
            System.out.println("KernelRestartIT: all " + wrote.size() + " acknowledged files read back from the"
                    + " image after journal recovery; e2fsck -fn clean");
        } finally {
            control.stop(0);
            for (ServerProcess s : servers) {
                s.close();
            }
        }
    }

    private record Result(int exit, String output) {}

    private static Result run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(60, TimeUnit.SECONDS))
                .as("%s finishes", List.of(command))
                .isTrue();
        return new Result(p.exitValue(), output);
    }

    private static String sha256(Path file) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
    }
}
