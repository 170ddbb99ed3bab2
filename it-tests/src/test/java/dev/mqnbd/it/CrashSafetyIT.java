package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.container.S3Server;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Crash safety under load: a server is killed with SIGKILL at a random moment while a client writes
 * seeded blocks with several commands in flight, FLUSH every few writes, some FUA writes and some zeroing
 * ({@code hardening/crash_writer.py}, which journals every reply); a server restarted on the same storage
 * must hold every write a FLUSH reply or a FUA acknowledgement covered, and nothing that was never written
 * ({@code hardening/crash_verify.py}). Several iterations on the same storage, each killed at another
 * moment.
 *
 * <p>SIGKILL keeps the kernel's page cache, so this proves that the server keeps nothing it acknowledged
 * in its own memory, and answers FLUSH and FUA only after the data reached the storage; power loss is
 * what the unit tests' fdatasync ordering checks cover.
 *
 * <p>Backends are pluggable ({@link CrashBackend}): each one says how to serve export {@code d} on storage
 * that outlives the server process: an image file, and block objects in the S3 test server (where a
 * FLUSH reply promises that the objects are stored, and the page cache plays no part). {@code -Dmqnbd.crash.iterations=N} (default 4) and {@code
 * -Dmqnbd.crash.seed=S} repeat or replay a run.
 */
class CrashSafetyIT {
    private static final int BLOCKS = 1024; // a 4 MiB region at the start of the export
    private static final int DEPTH = 8;
    private static final int FLUSH_EVERY = 24;
    private static final Pattern SUMMARY =
            Pattern.compile("blocks (\\d+) sent (\\d+) acked (\\d+) durable (\\d+) bad (\\d+) first (.*)");

    /** Debian's python3, which has libnbd's module. */
    private static final String PYTHON =
            Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";

    /** A backend the crash test runs on. */
    interface CrashBackend {
        /** Names the backend in the test's display name. */
        String name();

        /**
         * Returns the {@code mqnbd} arguments that serve export {@code d} (at least 4 MiB) on storage in or
         * named after {@code dir} that a restarted server finds again; called once per server start.
         */
        List<String> serveArgs(Path dir);

        /** Returns what the server's environment needs besides this JVM's (credentials). */
        default Map<String, String> env() {
            return Map.of();
        }

        /** Runs after the server was killed, before it is started again on the same storage. */
        default void afterKill() throws InterruptedException {}
    }

    /** The file backend: an image file created sparse on the first start. */
    record FileCrashBackend() implements CrashBackend {
        @Override
        public String name() {
            return "file";
        }

        @Override
        public List<String> serveArgs(Path dir) {
            return List.of("--export", "d=file:" + dir.resolve("crash.img") + ",create=64M");
        }
    }

    /**
     * The S3 backend: block objects in the S3 test server ({@link S3Server}, started once for the class),
     * with a 2 s write lease, so that a restart after SIGKILL (which leaves the lease unreleased) waits
     * for it to expire, as a real restart would.
     */
    record S3CrashBackend() implements CrashBackend {
        private static final Duration LEASE = Duration.ofSeconds(2);

        @Override
        public String name() {
            return "s3";
        }

        @Override
        public List<String> serveArgs(Path dir) {
            List<String> args = new ArrayList<>(List.of(
                    "--export",
                    "d=s3://" + S3Server.BUCKET + "/crash-" + dir.getFileName() + ",create=64M,block-size=64K",
                    "--s3-lease-ttl",
                    LEASE.toSeconds() + "s"));
            args.addAll(S3Server.serveArgs(s3().hostEndpoint()));
            return args;
        }

        @Override
        public Map<String, String> env() {
            return S3Server.credentialsEnv();
        }

        @Override
        public void afterKill() throws InterruptedException {
            Thread.sleep(LEASE.toMillis() + 500);
        }
    }

    private static S3Server s3;

    private static synchronized S3Server s3() {
        if (s3 == null) {
            s3 = S3Server.start(null);
        }
        return s3;
    }

    @AfterAll
    static void stopStore() {
        if (s3 != null) {
            s3.close();
            s3 = null;
        }
    }

    static Stream<CrashBackend> backends() {
        return Stream.of(new FileCrashBackend(), new S3CrashBackend());
    }

    /** What one iteration saw. */
    record Iteration(long killAfterMillis, int sent, int acked, int durable, int bad, String first) {}

    @ParameterizedTest(name = "{0}")
    @MethodSource("backends")
    void sigkillDuringVerifiedWrites_everyFlushedWriteSurvivesTheRestart(CrashBackend backend) throws Exception {
        int iterations = Integer.getInteger("mqnbd.crash.iterations", 4);
        long seed = Long.getLong("mqnbd.crash.seed", System.nanoTime());
        Random random = new Random(seed);
        Path dir = workDir(backend.name());
        Path writer = script("crash_writer.py");
        Path verify = script("crash_verify.py");
        List<Iteration> seen = new ArrayList<>();
        try {
            for (int i = 0; i < iterations; i++) {
                String runSeed = seed + "-" + i;
                Path journal = dir.resolve("journal-" + i + ".txt");
                long killAfter = 800 + random.nextInt(2500);
                try (ServerProcess server = start(backend, dir)) {
                    String uri = "nbd://127.0.0.1:" + server.port() + "/d";
                    Process client = new ProcessBuilder(
                                    PYTHON,
                                    writer.toString(),
                                    uri,
                                    journal.toString(),
                                    runSeed,
                                    Integer.toString(BLOCKS),
                                    Integer.toString(DEPTH),
                                    Integer.toString(FLUSH_EVERY),
                                    "60")
                            .redirectErrorStream(true)
                            .start();
                    CompletableFuture<String> clientOut = Tool.drain(client.getInputStream());
                    try {
                        Thread.sleep(killAfter);
                        server.process().destroyForcibly(); // SIGKILL
                        assertThat(server.process().waitFor(10, TimeUnit.SECONDS))
                                .as("server killed")
                                .isTrue();
                        backend.afterKill();
                        assertThat(client.waitFor(60, TimeUnit.SECONDS))
                                .as("writer ends once the server is gone: %s", clientOut.getNow(""))
                                .isTrue();
                    } finally {
                        client.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    }
                }
                try (ServerProcess again = start(backend, dir)) {
                    String uri = "nbd://127.0.0.1:" + again.port() + "/d";
                    String out = Tool.run(
                                    Duration.ofMinutes(2),
                                    PYTHON,
                                    verify.toString(),
                                    uri,
                                    journal.toString(),
                                    runSeed,
                                    Integer.toString(BLOCKS))
                            .assertSuccess()
                            .stdout()
                            .strip();
                    Matcher m = SUMMARY.matcher(out);
                    assertThat(m.matches()).as("verifier summary: %s", out).isTrue();
                    Iteration it = new Iteration(
                            killAfter,
                            Integer.parseInt(m.group(2)),
                            Integer.parseInt(m.group(3)),
                            Integer.parseInt(m.group(4)),
                            Integer.parseInt(m.group(5)),
                            m.group(6));
                    seen.add(it);
                    System.out.printf(
                            "crash %s iteration %d (seed %s): killed after %d ms; %s%n",
                            backend.name(), i, runSeed, killAfter, out);
                    assertThat(it.bad())
                            .as(
                                    "blocks that lost a durable write or hold data never written "
                                            + "(iteration %d, seed %s, journal %s): %s",
                                    i, runSeed, journal, out)
                            .isZero();
                    again.stop(Duration.ofSeconds(30));
                }
            }
        } finally {
            System.out.println("crash " + backend.name() + " seed " + seed + ": " + seen);
        }
        assertThat(seen).hasSize(iterations);
        assertThat(seen.stream().mapToInt(Iteration::sent).sum())
                .as("writes sent")
                .isPositive();
        assertThat(seen.stream().mapToInt(Iteration::durable).sum())
                .as("writes covered by FLUSH or FUA")
                .isPositive();
        deleteRecursively(dir);
    }

    private static ServerProcess start(CrashBackend backend, Path dir) throws Exception {
        List<String> args = new ArrayList<>(List.of("serve", "--port", "0"));
        args.addAll(backend.serveArgs(dir));
        return ServerProcess.start(backend.env(), List.of(), args.toArray(String[]::new));
    }

    static Path script(String name) throws URISyntaxException {
        return Path.of(CrashSafetyIT.class.getResource("hardening/" + name).toURI());
    }

    private static Path workDir(String backend) throws Exception {
        Path base = Path.of("target", "crash-it").toAbsolutePath();
        Files.createDirectories(base);
        return Files.createTempDirectory(base, backend);
    }

    private static void deleteRecursively(Path dir) throws Exception {
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p :
                    paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
