package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Group commit seen from outside: FUA writers on several connections at once share {@code fdatasync}
 * calls (the server's totals line counts them), and every FUA write acknowledged before a SIGKILL in the
 * middle of the run is there after a restart.
 */
class FileGroupCommitIT {
    private static final int CONNECTIONS = 4;
    private static final int DEPTH = 16;

    private static Path workDir() throws Exception {
        Path base = Path.of("target", "file-it").toAbsolutePath();
        Files.createDirectories(base);
        return Files.createTempDirectory(base, "gc");
    }

    @Test
    void concurrentFuaWriters_shareFdatasyncs() throws Exception {
        Path dir = workDir();
        Path image = dir.resolve("gc.img");
        int perConnection = 1000;
        try (ServerProcess server =
                ServerProcess.start("serve", "--port", "0", "--export", "d=file:" + image + ",create=64M")) {
            String uri = "nbd://127.0.0.1:" + server.port() + "/d";

            List<Integer> acked = FileItSupport.fuaWriters(uri, CONNECTIONS, perConnection, DEPTH, "count");

            assertThat(acked).hasSize(CONNECTIONS * perConnection);
            FileItSupport.assertBlocks(uri, "count", acked, dir);
            assertThat(server.stop(Duration.ofSeconds(30))).isIn(0, 143);
            FileItSupport.Totals totals = FileItSupport.totals(server.log());
            assertThat(totals.fuaWrites()).isEqualTo(CONNECTIONS * perConnection);
            // Far fewer syncs than FUA writes: each fdatasync covers every FUA write that arrived during the last.
            assertThat(totals.fdatasyncs()).isPositive().isLessThan(totals.fuaWrites() / 4);
        } finally {
            Files.deleteIfExists(image);
            Files.list(dir).forEach(p -> p.toFile().delete());
            Files.deleteIfExists(dir);
        }
    }

    @Test
    void fuaWritersKilledMidRun_everyAcknowledgedWriteSurvives() throws Exception {
        Path dir = workDir();
        Path image = dir.resolve("gc-kill.img");
        String spec = "d=file:" + image + ",create=1G";
        int perConnection = 60_000; // far more than the server takes before the kill
        List<Integer> acked;
        try (ServerProcess server = ServerProcess.start("serve", "--port", "0", "--export", spec)) {
            String uri = "nbd://127.0.0.1:" + server.port() + "/d";
            // Its own thread: Tool drains output on the common pool, which has one thread on two cores.
            ExecutorService thread = Executors.newSingleThreadExecutor();
            try {
                Future<List<Integer>> writers =
                        thread.submit(() -> FileItSupport.fuaWriters(uri, CONNECTIONS, perConnection, DEPTH, "kill"));
                Thread.sleep(1500);
                server.process().destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                acked = writers.get(2, TimeUnit.MINUTES);
            } finally {
                thread.shutdownNow();
            }
        }
        assertThat(acked).hasSizeGreaterThan(100).hasSizeLessThan(CONNECTIONS * perConnection);

        try (ServerProcess again = ServerProcess.start("serve", "--port", "0", "--export", spec)) {
            String uri = "nbd://127.0.0.1:" + again.port() + "/d";
            FileItSupport.assertBlocks(uri, "kill", acked, dir);
            again.stop(Duration.ofSeconds(30));
        } finally {
            Files.deleteIfExists(image);
            Files.list(dir).forEach(p -> p.toFile().delete());
            Files.deleteIfExists(dir);
        }
    }
}
