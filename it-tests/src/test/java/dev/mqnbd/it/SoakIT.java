package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * A soak: one server process, three exports (two memory, one file), six kinds of client at once for
 * {@code -Dmqnbd.soak.seconds} (default 60): fio verify jobs on a memory and on the file export (two
 * connections each), nbdcopy round trips checked with SHA-256, a client that opens and closes a connection
 * per write in a loop (libnbd), and nbdinfo listing the exports in a loop.
 *
 * <p>At the end: no client saw an error and every byte written was read back as written; the server's
 * resident memory ({@code VmRSS}) stayed flat after warm-up; and Netty's leak detector, at paranoid level
 * in the server, reported nothing ("LEAK:" in the server log) after two forced garbage collections.
 *
 * <p>Flat memory: the server runs with a fixed, pre-touched heap ({@code -Xms = -Xmx, AlwaysPreTouch}), so
 * the heap contributes the same from the first sample on. What can still grow after warm-up (the first
 * third of the run, at least 20 s) is bounded: the memory exports' pages (every client's region is written
 * in its first rounds, during warm-up: fio and nbdcopy cover theirs in each round, the churn's 1 MiB takes
 * 256 connections), Netty's pool chunks (sized by peak concurrency, which warm-up
 * reaches), and JIT code and metaspace (a few MiB once the paths are hot). Hence the bound: RSS after
 * warm-up may exceed its level at the end of warm-up by at most 48 MiB plus 10 %. A leak of one 4 KiB
 * buffer per request would add hundreds of MiB over the default run.
 *
 * <p>Long form: {@code ./mvnw -B -pl it-tests -am verify -Dtest=none -Dsurefire.failIfNoSpecifiedTests=false
 * -Dit.test=SoakIT -Dmqnbd.soak.seconds=1800} (docs/hardening.md).
 */
class SoakIT {
    private static final long MiB = 1 << 20;
    /**
     * Where the connection churn writes in export "mem", beside fio's 64 MiB: small, so that its pages are all
     * written (and allocated) during warm-up, as fio's and nbdcopy's are in their first rounds.
     */
    private static final long CHURN_BASE = 64 * MiB;

    private static final long CHURN_SPAN = MiB;
    private static final String PYTHON =
            Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";
    private static final Pattern RSS = Pattern.compile("VmRSS:\\s+(\\d+) kB");
    private static final Pattern CHURN =
            Pattern.compile("connections (\\d+) writes (\\d+) bad (\\d+) errors (\\d+) first ?(.*)");

    /** What one kind of client did. */
    record Stats(String client, int rounds, long bytesVerified, List<String> failures) {
        @Override
        public String toString() {
            return client + ": " + rounds + " rounds, " + bytesVerified / MiB + " MiB verified, " + failures.size()
                    + " failures";
        }
    }

    /** One resident-memory sample: seconds since start, kB. */
    record Sample(double seconds, long kB) {}

    @Test
    void severalExportsAndClients_noErrors_everyByteVerified_flatMemory_noLeaks() throws Exception {
        int seconds = Integer.getInteger("mqnbd.soak.seconds", 60);
        double warmUp = Math.max(20, seconds / 3.0);
        Path dir = Files.createTempDirectory(
                Files.createDirectories(Path.of("target", "soak-it").toAbsolutePath()), "soak");
        Path[] sources = {dir.resolve("a.bin"), dir.resolve("b.bin")};
        TestFiles.writeRandom(sources[0], (int) (32 * MiB), 11);
        TestFiles.writeRandom(sources[1], (int) (32 * MiB), 12);
        List<String> jvm = List.of(
                "-Dio.netty.leakDetection.level=paranoid",
                "-Xms256m",
                "-Xmx256m",
                "-XX:+AlwaysPreTouch",
                "-XX:MaxDirectMemorySize=1g");
        List<Stats> stats;
        List<Sample> samples = Collections.synchronizedList(new ArrayList<>());
        String log;
        try (ServerProcess server = ServerProcess.start(
                jvm,
                "serve",
                "--port",
                "0",
                "--export",
                "mem=memory:128M",
                "--export",
                "copy=memory:32M",
                "--export",
                "file=file:" + dir.resolve("soak.img") + ",create=128M")) {
            String base = "nbd://127.0.0.1:" + server.port() + "/";
            long pid = server.process().pid();
            long start = System.nanoTime();
            long deadline = start + TimeUnit.SECONDS.toNanos(seconds);
            Thread sampler = Thread.ofPlatform().daemon().start(() -> {
                while (System.nanoTime() - deadline < 0 && server.process().isAlive()) {
                    long kB = rssKiB(pid);
                    if (kB > 0) {
                        samples.add(new Sample((System.nanoTime() - start) / 1e9, kB));
                    }
                    try {
                        Thread.sleep(1000);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            List<Callable<Stats>> clients = List.of(
                    () -> fio("fio-memory", base + "mem", deadline),
                    () -> fio("fio-file", base + "file", deadline),
                    () -> nbdcopy(base + "copy", sources, dir, deadline),
                    () -> churn(base + "mem", deadline),
                    () -> nbdinfo(base, deadline),
                    () -> slowReader(server.port(), deadline));
            ExecutorService pool = Executors.newFixedThreadPool(clients.size());
            try {
                List<Future<Stats>> running = new ArrayList<>();
                for (Callable<Stats> client : clients) {
                    running.add(pool.submit(client));
                }
                stats = new ArrayList<>();
                for (Future<Stats> f : running) {
                    stats.add(f.get(seconds + 300L, TimeUnit.SECONDS));
                }
            } finally {
                pool.shutdownNow();
            }
            sampler.interrupt();
            sampler.join();
            assertThat(server.process().isAlive())
                    .as("server alive after the soak:%n%s", server.log())
                    .isTrue();

            // Paranoid leak detection reports a leaked buffer when the garbage collector has found it and a
            // later allocation polls the detector: collect twice, then make some traffic.
            for (int i = 0; i < 2; i++) {
                Tool.run(
                                Path.of(ProcessHandle.current().info().command().orElseThrow())
                                        .resolveSibling("jcmd")
                                        .toString(),
                                Long.toString(pid),
                                "GC.run")
                        .assertSuccess();
            }
            String churn = Tool.run(
                            PYTHON,
                            CrashSafetyIT.script("soak_churn.py").toString(),
                            base + "mem",
                            "2",
                            "final",
                            Long.toString(CHURN_BASE),
                            Long.toString(CHURN_SPAN),
                            "100")
                    .assertSuccess()
                    .stdout();
            assertThat(churn).contains(" errors 0 ", " bad 0 ");
            server.stop(Duration.ofSeconds(60));
            log = server.log();
        }

        System.out.println("soak " + seconds + " s: " + stats);
        System.out.println("soak VmRSS (s, MiB): "
                + samples.stream()
                        .map(s -> String.format("%.0f:%d", s.seconds(), s.kB() / 1024))
                        .toList());
        for (Stats s : stats) {
            assertThat(s.failures()).as("failures of %s", s.client()).isEmpty();
            assertThat(s.rounds()).as("rounds of %s", s.client()).isPositive();
        }
        assertThat(log).as("server log").doesNotContain("LEAK:");

        List<Sample> warm = samples.stream().filter(s -> s.seconds() <= warmUp).toList();
        List<Sample> after = samples.stream().filter(s -> s.seconds() > warmUp).toList();
        assertThat(warm).as("samples during warm-up").isNotEmpty();
        assertThat(after).as("samples after warm-up").hasSizeGreaterThan(5);
        long warmKiB = warm.get(warm.size() - 1).kB();
        long maxAfter = after.stream().mapToLong(Sample::kB).max().orElseThrow();
        long bound = warmKiB + 48 * 1024 + warmKiB / 10;
        System.out.printf(
                "soak VmRSS: end of warm-up %d MiB, max after %d MiB, bound %d MiB%n",
                warmKiB / 1024, maxAfter / 1024, bound / 1024);
        assertThat(maxAfter).as("VmRSS (kB) after warm-up; samples %s", samples).isLessThanOrEqualTo(bound);
        try (Stream<Path> files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.deleteIfExists(p);
            }
        }
        Files.deleteIfExists(dir);
    }

    private static long rssKiB(long pid) {
        try {
            Matcher m = RSS.matcher(Files.readString(Path.of("/proc/" + pid + "/status")));
            return m.find() ? Long.parseLong(m.group(1)) : -1;
        } catch (IOException e) {
            return -1; // the process is gone
        }
    }

    /**
     * A client that pipelines 16 READs of 1 MiB and reads the replies at about 2 MiB/s (hardening/abuse.py
     * slow-reader), so the server holds its replies under back-pressure for the whole soak.
     */
    private static Stats slowReader(int port, long deadline) throws Exception {
        long seconds = Math.max(1, TimeUnit.NANOSECONDS.toSeconds(deadline - System.nanoTime()));
        Tool.Result r = Tool.run(
                Duration.ofSeconds(seconds + 120),
                PYTHON,
                CrashSafetyIT.script("abuse.py").toString(),
                "127.0.0.1",
                Integer.toString(port),
                "slow-reader",
                "mem",
                Long.toString(seconds));
        Matcher m = Pattern.compile("rounds (\\d+) bad (\\d+)").matcher(r.stdout());
        List<String> failures = new ArrayList<>();
        int rounds = 0;
        if (r.exitCode() != 0 || !m.find()) {
            failures.add("slow reader exited " + r.exitCode() + ": " + r.stdout() + r.stderr());
        } else {
            rounds = Integer.parseInt(m.group(1));
            if (!m.group(2).equals("0")) {
                failures.add("slow reader: " + m.group(2) + " bad replies");
            }
        }
        return new Stats("slow-reader", rounds, 0, failures);
    }

    /** fio verify rounds: two jobs (two connections), each writing and verifying its own 32 MiB. */
    private static Stats fio(String name, String uri, long deadline) {
        List<String> failures = new ArrayList<>();
        int rounds = 0;
        while (System.nanoTime() - deadline < 0) {
            Tool.Result r = Tool.run(
                    Duration.ofMinutes(5),
                    Fio.verifiedRandomWrites(
                            name,
                            uri,
                            "--bsrange=4k-64k",
                            16,
                            "32m",
                            1000 + rounds,
                            "--numjobs=2",
                            "--offset_increment=32m",
                            "--output-format=terse"));
            rounds++;
            if (r.exitCode() != 0 || r.stderr().contains("verify")) {
                failures.add(name + " round " + rounds + " exited " + r.exitCode() + ": " + r.stderr());
            }
        }
        return new Stats(name, rounds, rounds * 64 * MiB, failures);
    }

    /** nbdcopy round trips: a 32 MiB file in, the export out, SHA-256 compared; the two sources alternate. */
    private static Stats nbdcopy(String uri, Path[] sources, Path dir, long deadline) throws Exception {
        List<String> failures = new ArrayList<>();
        Path back = dir.resolve("back.bin");
        int rounds = 0;
        while (System.nanoTime() - deadline < 0) {
            Path source = sources[rounds % 2];
            rounds++;
            Tool.Result in = Tool.run(Duration.ofMinutes(5), "nbdcopy", "--flush", source.toString(), uri);
            Tool.Result out = Tool.run(Duration.ofMinutes(5), "nbdcopy", uri, back.toString());
            if (in.exitCode() != 0 || out.exitCode() != 0) {
                failures.add("nbdcopy round " + rounds + ": " + in.stderr() + out.stderr());
                continue;
            }
            String want = TestFiles.sha256(source, 32 * MiB);
            String got = TestFiles.sha256(back, 32 * MiB);
            if (!want.equals(got) || Files.size(back) != 32 * MiB) {
                failures.add("nbdcopy round " + rounds + ": sha256 " + got + " (expected: " + want + ")");
            }
        }
        Files.deleteIfExists(back);
        return new Stats("nbdcopy", rounds, rounds * 32 * MiB, failures);
    }

    /** One libnbd process opening and closing a connection per write until the deadline. */
    private static Stats churn(String uri, long deadline) throws Exception {
        long left = Math.max(1, TimeUnit.NANOSECONDS.toSeconds(deadline - System.nanoTime()));
        Tool.Result r = Tool.run(
                Duration.ofSeconds(left + 120),
                PYTHON,
                CrashSafetyIT.script("soak_churn.py").toString(),
                uri,
                Long.toString(left),
                "soak",
                Long.toString(CHURN_BASE),
                Long.toString(CHURN_SPAN),
                "100");
        List<String> failures = new ArrayList<>();
        Matcher m = CHURN.matcher(r.stdout().strip());
        if (r.exitCode() != 0 || !m.matches()) {
            failures.add("churn exited " + r.exitCode() + ": " + r.stdout() + r.stderr());
            return new Stats("connection churn", 0, 0, failures);
        }
        if (!m.group(3).equals("0") || !m.group(4).equals("0")) {
            failures.add("churn: " + r.stdout().strip());
        }
        int connections = Integer.parseInt(m.group(1));
        return new Stats("connection churn", connections, Long.parseLong(m.group(2)) * 4096, failures);
    }

    /** nbdinfo listing every export (one connection, option haggling only) in a loop. */
    private static Stats nbdinfo(String base, long deadline) {
        List<String> failures = new ArrayList<>();
        int rounds = 0;
        while (System.nanoTime() - deadline < 0) {
            Tool.Result r = Tool.run(Duration.ofMinutes(1), "nbdinfo", "--list", "--json", base);
            rounds++;
            if (r.exitCode() != 0 || !r.stdout().contains("\"export-name\": \"file\"")) {
                failures.add("nbdinfo round " + rounds + " exited " + r.exitCode() + ": " + r.stderr());
            }
        }
        return new Stats("nbdinfo --list", rounds, 0, failures);
    }
}
