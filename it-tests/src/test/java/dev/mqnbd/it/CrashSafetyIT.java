package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
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
 * that outlives the server process. {@code -Dmqnbd.crash.iterations=N} (default 4) and {@code
 * -Dmqnbd.crash.seed=S} repeat or replay a run.
 */
class CrashSafetyIT {
    private static final int BLOCKS = 1024; // a 4 MiB region at the start of the export
    private static final int DEPTH = 8;
    private static final int FLUSH_EVERY = 24;
    private static final Pattern SUMMARY =
            Pattern.compile("blocks (\\d+) sent (\\d+) acked (\\d+) durable (\\d+) bad (\\d+) first (.*)");

    /** Debian's python3, which has libnbd's module. */
    private static final String PYTHON = Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";

    /** A backend the crash test runs on. */
    interface CrashBackend {
        /** Names the backend in the test's display name. */
        String name();

        /**
         * Returns the {@code mqnbd} arguments that serve export {@code d} (at least 4 MiB) on storage in or
         * named after {@code dir} that a restarted server finds again; called once per server start.
         */
        List<String> serveArgs(Path dir);
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

    static Stream<CrashBackend> backends() {
        // An S3 backend joins here: start its store in a @BeforeAll and serve "d" from a bucket.
        return Stream.of(new FileCrashBackend());
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
                    Process client = new ProcessBuilder(PYTHON, writer.toString(), uri, journal.toString(), runSeed,
                                    Integer.toString(BLOCKS), Integer.toString(DEPTH), Integer.toString(FLUSH_EVERY), "60")
                            .redirectErrorStream(true)
                            .start();
                    CompletableFuture<String> clientOut = Tool.drain(client.getInputStream());
                    try {
                        Thread.sleep(killAfter);
                        server.process().destroyForcibly(); // SIGKILL
                        assertThat(server.process().waitFor(10, TimeUnit.SECONDS)).as("server killed").isTrue();
                        assertThat(client.waitFor(60, TimeUnit.SECONDS)).as("writer ends once the server is gone: %s",
                                clientOut.getNow("")).isTrue();
                    } finally {
                        client.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    }
                }
                try (ServerProcess again = start(backend, dir)) {
                    String uri = "nbd://127.0.0.1:" + again.port() + "/d";
                    String out = Tool.run(Duration.ofMinutes(2), PYTHON, verify.toString(), uri, journal.toString(),
                                    runSeed, Integer.toString(BLOCKS))
                            .assertSuccess()
                            .stdout()
                            .strip();
                    Matcher m = SUMMARY.matcher(out);
                    assertThat(m.matches()).as("verifier summary: %s", out).isTrue();
                    Iteration it = new Iteration(killAfter, Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                            Integer.parseInt(m.group(4)), Integer.parseInt(m.group(5)), m.group(6));
                    seen.add(it);
                    System.out.printf("crash %s iteration %d (seed %s): killed after %d ms; %s%n", backend.name(), i,
                            runSeed, killAfter, out);
                    assertThat(it.bad()).as("blocks that lost a durable write or hold data never written "
                            + "(iteration %d, seed %s, journal %s): %s", i, runSeed, journal, out).isZero();
                    again.stop(Duration.ofSeconds(30));
                }
            }
        } finally {
            System.out.println("crash " + backend.name() + " seed " + seed + ": " + seen);
        }
        assertThat(seen).hasSize(iterations);
        assertThat(seen.stream().mapToInt(Iteration::sent).sum()).as("writes sent").isPositive();
        assertThat(seen.stream().mapToInt(Iteration::durable).sum()).as("writes covered by FLUSH or FUA").isPositive();
        deleteRecursively(dir);
    }

    private static ServerProcess start(CrashBackend backend, Path dir) throws Exception {
        List<String> args = new ArrayList<>(List.of("serve", "--port", "0"));
        args.addAll(backend.serveArgs(dir));
        return ServerProcess.start(args.toArray(String[]::new));
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
            for (Path p : paths.sorted((a, b) -> b.getNameCount() - a.getNameCount()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
