package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.container.S3Server;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An S3 export through real outages of its store: the store's container is frozen ({@code docker pause},
 * in which requests hang rather than fail) while clients write, with the server's default settings
 * ({@code --s3-timeout 20s}, {@code --s3-lease-ttl 30s}). A pause shorter than the timeout is invisible to
 * the client; a longer one fails writes, but loses no acknowledged byte; a SIGTERM during an outage saves
 * what it cannot store to a rescue file and says where; a restart after {@code kill -9} takes over its own
 * lease at once. One store container serves the class.
 *
 * <p>S3Proxy only, unlike {@link S3ExportIT}: against Ceph's RADOS Gateway ({@code S3Store.RGW}) these
 * tests do not pass reliably. In two runs of the class there, the kill -9 and 60 s pause tests passed, the
 * 15 s pause failed once (EIO on the copy's final flush; it passed in two more runs), and the SIGTERM test
 * failed both times: once with EIO on its first write (right after that failed pause), once because every
 * acknowledged block was already stored before the freeze, leaving nothing to rescue (the test then wrote
 * before freezing the store; it now freezes it first, which has not been tried on RGW). A paused RGW alone
 * answers at once after the unpause (a 15 s {@code docker pause} under 8 writers: first reply 12 ms
 * after it, none slower than 0.3 s), so the flakiness lies in the interplay with these tests' timing.
 */
class S3OutageIT {
    private static S3Server s3;

    @TempDir
    Path dir;

    @BeforeAll
    static void startStore() {
        s3 = S3Server.start(null);
    }

    @AfterAll
    static void stopStore() {
        if (s3 != null) {
            s3.close();
        }
    }

    @AfterEach
    void unpause() {
        s3.unpause();
    }

    /** Starts {@code mqnbd serve} on a free port with the store's endpoint, credentials and a rescue directory. */
    private ServerProcess serve(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("serve", "--port", "0"));
        all.addAll(S3Server.serveArgs(s3.hostEndpoint()));
        all.addAll(List.of("--s3-rescue-dir", dir.resolve("rescue").toString()));
        all.addAll(List.of(args));
        return ServerProcess.start(S3Server.credentialsEnv(), List.of(), all.toArray(String[]::new));
    }

    private static String uri(ServerProcess server, String export) {
        return "nbd://127.0.0.1:" + server.port() + "/" + export;
    }

    /** Runs qemu-io commands on {@code uri} (each write with FUA: qemu-io's writethrough); returns what it printed. */
    private static String qemuIo(String uri, String... commands) {
        List<String> command = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        for (String c : commands) {
            command.add("-c");
            command.add(c);
        }
        command.add(uri);
        Tool.Result r = Tool.run(Duration.ofMinutes(2), command.toArray(String[]::new));
        return r.stdout() + r.stderr();
    }

    /**
     * Writes {@code length} bytes of {@code pattern} at {@code offset} in 1 MiB requests, one after another,
     * without FUA or FLUSH (nbdsh sends neither, not even at exit), so they stay dirty in the server. Prints
     * the end of each write once the server has acknowledged it ({@link #acknowledgedEnd}).
     */
    private static Tool.Result writeWithoutFlush(String uri, int pattern, long offset, long length) {
        String script = "buf = bytes([" + pattern + "]) * (1 << 20)\n"
                + "for off in range(" + offset + ", " + (offset + length) + ", 1 << 20):\n"
                + "    h.pwrite(buf, off)\n"
                + "    print('acked', off + (1 << 20), flush=True)\n";
        return Tool.run(Duration.ofMinutes(2), "nbdsh", "-u", uri, "-c", script);
    }

    /** Returns the end of the last write {@link #writeWithoutFlush} saw acknowledged, or {@code from} if none. */
    private static long acknowledgedEnd(Tool.Result writes, long from) {
        Matcher m = Pattern.compile("(?m)^acked (\\d+)$").matcher(writes.stdout());
        long end = from;
        while (m.find()) {
            end = Long.parseLong(m.group(1));
        }
        return end;
    }

    @Test
    void storePaused15s_duringACopy_isInvisibleToTheClient_andEveryByteIsStored() throws Exception {
        Path source = dir.resolve("source.bin");
        TestFiles.writeRandom(source, 256 << 20, 91);
        String export = "p=s3://" + S3Server.BUCKET + "/pause15,create=320M";
        try (ServerProcess server = serve("--export", export)) {
            CompletableFuture<Tool.Result> copy = CompletableFuture.supplyAsync(
                    () -> Tool.run(Duration.ofMinutes(3), "nbdcopy", "--flush", source.toString(), uri(server, "p")));
            Thread.sleep(2000);
            assertThat(copy).as("the copy ended before the pause").isNotDone();
            s3.pause();
            Thread.sleep(15_000);
            s3.unpause();

            copy.join().assertSuccess();
            assertThat(server.log())
                    .doesNotContain("failed with EIO")
                    .doesNotContain("lapsed")
                    .doesNotContain("rescue");
            server.stop(Duration.ofSeconds(60));
            assertThat(server.log()).containsPattern("s3 export p: wrote \\d+ dirty blocks");
        }
        try (ServerProcess again = serve("--export", export)) {
            Path back = dir.resolve("back.bin");
            Tool.run(Duration.ofMinutes(2), "nbdcopy", uri(again, "p"), back.toString())
                    .assertSuccess();
            assertThat(TestFiles.sha256(back, 256 << 20)).isEqualTo(TestFiles.sha256(source, 256 << 20));
            assertThat(TestFiles.isZero(back, 256 << 20, 64 << 20)).isTrue();
            again.stop(Duration.ofSeconds(60));
        }
    }

    @Test
    void storePaused60s_writesFailAfterTheTimeout_thenTheServerRecovers_andNoAcknowledgedByteIsLost() throws Exception {
        String export = "q=s3://" + S3Server.BUCKET + "/pause60,create=192M";
        long ackedEnd;
        // A dirty limit of 64M (the default grows with the heap) so that the writes below pass it.
        try (ServerProcess server = serve("--s3-max-dirty", "64M", "--export", export)) {
            // Acknowledged from the write-back cache: dirty, and partly not stored when the store freezes.
            writeWithoutFlush(uri(server, "q"), 0xa1, 0, 48 << 20).assertSuccess();
            s3.pause();
            long paused = System.nanoTime();

            // Past the dirty limit (64M) a writer waits for the store, and fails once s3.timeout (20 s) is over.
            Tool.Result failed = writeWithoutFlush(uri(server, "q"), 0xb2, 48 << 20, 96 << 20);
            long waited = (System.nanoTime() - paused) / 1_000_000;
            failed.assertFailure();
            assertThat(failed.stderr()).contains("Input/output error");
            assertThat(waited).isGreaterThanOrEqualTo(18_000);
            ackedEnd = acknowledgedEnd(failed, 48 << 20);
            assertThat(ackedEnd).as(failed.stdout()).isGreaterThanOrEqualTo(64L << 20);
            long left = 60_000 - (System.nanoTime() - paused) / 1_000_000;
            Thread.sleep(Math.max(0, left));
            assertThat(server.log()).contains("its write lease lapsed");
            s3.unpause();

            assertThat(server.awaitLog("renewed the write lease again after it lapsed", Duration.ofSeconds(60)))
                    .as(server.log())
                    .isTrue();
            assertThat(qemuIo(uri(server, "q"), "write -P 0xc3 160M 1M", "flush"))
                    .doesNotContain("error");
            server.stop(Duration.ofSeconds(60));
            assertThat(server.log()).doesNotContain("rescue").doesNotContain("are lost");
        }
        try (ServerProcess again = serve("--read-only", "--export", "q=s3://" + S3Server.BUCKET + "/pause60")) {
            List<String> reads = new ArrayList<>(List.of("read -P 0xa1 0 48M", "read -P 0xc3 160M 1M"));
            // The second writer's writes acknowledged before the one that failed (at least the 16M below the limit).
            reads.add("read -P 0xb2 48M " + (ackedEnd - (48 << 20)));
            String out = qemuIo(uri(again, "q"), reads.toArray(String[]::new));
            assertThat(out).doesNotContain("Pattern verification failed").doesNotContain("error");
        }
    }

    @Test
    void sigtermDuringAnOutage_savesTheDirtyBlocksToARescueFile_andARestartIsNotRefused() throws Exception {
        String export = "r=s3://" + S3Server.BUCKET + "/sigterm,create=64M";
        // A short timeout keeps the shutdown's wait for the frozen store short; a long lease keeps it unexpired
        // until the restart, which must take it over because its holder no longer runs.
        ServerProcess server = serve("--s3-timeout", "5s", "--s3-lease-ttl", "60s", "--export", export);
        String log;
        try (server) {
            assertThat(qemuIo(uri(server, "r"), "write -P 0x11 0 4M", "flush")).doesNotContain("error");
            // The store freezes before the writes: a whole block uploads as soon as it is written, so on a fast
            // store writes made before the freeze may all be stored by then, leaving nothing to rescue.
            s3.pause();
            writeWithoutFlush(uri(server, "r"), 0xd4, 8 << 20, 16 << 20).assertSuccess();

            server.stop(Duration.ofSeconds(90));
            log = server.log();
        }
        s3.unpause();

        Matcher saved = Pattern.compile("saved (\\d+) dirty blocks .* to the rescue file (\\S+\\.txt)")
                .matcher(log);
        assertThat(saved.find()).as(log).isTrue();
        Path index = Path.of(saved.group(2));
        Path blocks = Path.of(index.toString().replaceFirst("\\.txt$", ".blocks"));
        assertThat(index).startsWith(dir.resolve("rescue"));
        // Every acknowledged block of the second write was either stored before the freeze or rescued.
        List<Long> rescued = new ArrayList<>();
        byte[] data = Files.readAllBytes(blocks);
        Matcher line = Pattern.compile("(?m)^block (\\d+) offset (\\d+) length (\\d+) at (\\d+): dd ")
                .matcher(Files.readString(index));
        while (line.find()) {
            long offset = Long.parseLong(line.group(2));
            int length = Integer.parseInt(line.group(3));
            int at = Integer.parseInt(line.group(4));
            assertThat(offset).isBetween(8L << 20, (24L << 20) - 1);
            for (int i = 0; i < length; i++) {
                if (data[at + i] != (byte) 0xd4) {
                    throw new AssertionError("rescued block at " + offset + ": byte " + i + " is " + data[at + i]);
                }
            }
            rescued.add(offset);
        }
        assertThat(rescued).hasSize(Integer.parseInt(saved.group(1))).isNotEmpty();

        // The lease was kept (the store lacks the last writes), but a restart here takes it over at once.
        try (ServerProcess again = serve("--export", export)) {
            assertThat(again.log()).contains("no longer runs");
            List<String> reads = new ArrayList<>(List.of("read -P 0x11 0 4M"));
            for (long block = 8; block < 24; block++) {
                if (!rescued.contains(block << 20)) {
                    reads.add("read -P 0xd4 " + (block << 20) + " 1M");
                }
            }
            assertThat(qemuIo(uri(again, "r"), reads.toArray(String[]::new)))
                    .as("blocks neither rescued nor stored: %s", reads)
                    .doesNotContain("Pattern verification failed")
                    .doesNotContain("error");
            again.stop(Duration.ofSeconds(60));
        }
    }

    @Test
    void restartAfterKill9_takesOverItsOwnLeaseAtOnce_andFlushedDataIsThere() throws Exception {
        String export = "k=s3://" + S3Server.BUCKET + "/kill9,create=32M";
        // A lease far longer than the start-up wait: only a takeover at once lets the restart serve.
        try (ServerProcess server = serve("--s3-lease-ttl", "120s", "--export", export)) {
            assertThat(qemuIo(uri(server, "k"), "write -P 0x5e 1M 3M", "flush")).doesNotContain("error");
            server.process().destroyForcibly().waitFor();
        }
        try (ServerProcess again = serve("--s3-lease-ttl", "120s", "--export", export)) {
            assertThat(again.log()).contains("at once: that process").contains("no longer runs");
            assertThat(qemuIo(uri(again, "k"), "read -P 0x5e 1M 3M", "read -P 0 0 1M", "write -P 0x6f 8M 1M", "flush"))
                    .doesNotContain("Pattern verification failed")
                    .doesNotContain("error");
            again.stop(Duration.ofSeconds(60));
        }
    }
}
