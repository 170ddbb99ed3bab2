package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.container.S3Server;
import dev.mqnbd.it.container.S3Store;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.AfterParameterizedClassInvocation;
import org.junit.jupiter.params.BeforeParameterizedClassInvocation;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * S3 exports served by the {@code mqnbd} process, as a user runs it, against each S3-compatible test store
 * in its container ({@link S3Store}: S3Proxy and Ceph's RADOS Gateway, every test on both): real clients on
 * the host, data across a SIGTERM and a restart, the write lease between two servers, the number of objects
 * a sequential write and a write of zeroes cost, and a large discard whose objects are deleted in the
 * background.
 */
@ParameterizedClass(name = "{0}")
@EnumSource(S3Store.class)
class S3ExportIT {
    private static final Pattern TOTALS = Pattern.compile("s3 export (\\S+) \\(.*?(\\d+) PUTs");
    private static S3Server s3;

    /** The store of this run of the class; {@link #startStore} starts it. */
    @Parameter
    S3Store store;

    @TempDir
    Path dir;

    @BeforeParameterizedClassInvocation
    static void startStore(S3Store store) {
        s3 = S3Server.start(store, null);
    }

    @AfterParameterizedClassInvocation
    static void stopStore() {
        if (s3 != null) {
            s3.close();
            s3 = null;
        }
    }

    /** Starts {@code mqnbd serve} on a free port with the store's endpoint and credentials. */
    private static ServerProcess serve(String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of("serve", "--port", "0"));
        all.addAll(S3Server.serveArgs(s3.hostEndpoint()));
        all.addAll(List.of(args));
        return ServerProcess.start(S3Server.credentialsEnv(), List.of(), all.toArray(String[]::new));
    }

    private static String uri(ServerProcess server, String export) {
        return "nbd://127.0.0.1:" + server.port() + "/" + export;
    }

    @Test
    void writesBeforeSigterm_areStoredOnShutdown_andReadBackAfterRestart() throws Exception {
        Path source = dir.resolve("source.bin");
        TestFiles.writeRandom(source, 96 << 20, 77);
        String export = "e=s3://" + S3Server.BUCKET + "/restart,create=128M";
        try (ServerProcess server = serve("--export", export)) {
            // No FLUSH from the client (nbdcopy sends one only with --flush): the data may sit in the
            // write-back cache until the server stops.
            Tool.run(Duration.ofMinutes(2), "nbdcopy", source.toString(), uri(server, "e"))
                    .assertSuccess();
            Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x5c 110000001 4097", uri(server, "e"))
                    .assertSuccess();

            server.stop(Duration.ofSeconds(60)); // graceful: SIGTERM, the JVM's status 143
            assertThat(server.log()).containsPattern("s3 export e: wrote \\d+ dirty blocks");
        }
        try (ServerProcess again = serve("--export", export)) {
            Path back = dir.resolve("back.bin");
            Tool.run(Duration.ofMinutes(2), "nbdcopy", uri(again, "e"), back.toString())
                    .assertSuccess();

            assertThat(Files.size(back)).isEqualTo(128L << 20);
            assertThat(TestFiles.sha256(back, 96 << 20)).isEqualTo(TestFiles.sha256(source, 96 << 20));
            assertThat(TestFiles.isZero(back, 96 << 20, 110000001 - (96 << 20))).isTrue();
            String out = Tool.run(
                            "qemu-io",
                            "-f",
                            "raw",
                            "-r",
                            "-c",
                            "read -P 0x5c 110000001 4097",
                            "-c",
                            "read -P 0 110004098 4096",
                            uri(again, "e"))
                    .assertSuccess()
                    .stdout();
            assertThat(out).doesNotContain("Pattern verification failed");
            again.stop(Duration.ofSeconds(60));
        }
    }

    /**
     * 4 KiB random writes at depth 32 (the pattern that coalesces many writes into one block before its
     * upload), each block carrying fio's verify header and checksum, no FLUSH from the client; then SIGTERM,
     * a restart, and fio's {@code --verify_only} pass over the same pattern, seed and sizes: every block
     * must read back as written. fio exits non-zero on any mismatch.
     */
    @Test
    void randomSmallWrites_surviveASigtermAndRestart_verifiedByFio() throws Exception {
        String export = "rw=s3://" + S3Server.BUCKET + "/random-writes,create=32M";
        try (ServerProcess server = serve("--export", export)) {
            Tool.run(Duration.ofMinutes(3), fioRandomWrites(uri(server, "rw"), false))
                    .assertSuccess();
            server.stop(Duration.ofSeconds(60)); // graceful: SIGTERM, the JVM's status 143
            assertThat(server.log()).containsPattern("s3 export rw: wrote \\d+ dirty blocks");
        }
        try (ServerProcess again = serve("--export", export)) {
            String out = Tool.run(Duration.ofMinutes(3), fioRandomWrites(uri(again, "rw"), true))
                    .assertSuccess()
                    .stdout();
            // The verify pass read the whole pattern back: 32 MiB in 4 KiB blocks.
            assertThat(out).containsPattern("READ: bw=.*io=32\\.0MiB");
            again.stop(Duration.ofSeconds(60));
        }
    }

    /** fio's 4 KiB random-write job with verify headers; {@code verifyOnly}: read and check the same pattern. */
    private static String[] fioRandomWrites(String uri, boolean verifyOnly) {
        return Fio.verifiedRandomWrites(
                "random-writes", uri, "--bs=4k", 32, "32M", 11, verifyOnly ? "--verify_only" : "--do_verify=0");
    }

    @Test
    void qemuImgRoundTrip_andFioVerify() throws Exception {
        Path image = dir.resolve("image.raw");
        TestFiles.writeRandom(image, 40 << 20, 78);
        try (ServerProcess server = serve(
                "--export",
                "img=s3://" + S3Server.BUCKET + "/img,create=48M,block-size=64K",
                "--export",
                "fio=s3://" + S3Server.BUCKET + "/fio,create=64M")) {
            Tool.run(
                            Duration.ofMinutes(2),
                            "qemu-img",
                            "convert",
                            "-n",
                            "-f",
                            "raw",
                            "-O",
                            "raw",
                            image.toString(),
                            uri(server, "img"))
                    .assertSuccess();
            Path back = dir.resolve("back.raw");
            Tool.run(
                            Duration.ofMinutes(2),
                            "qemu-img",
                            "convert",
                            "-f",
                            "raw",
                            "-O",
                            "raw",
                            uri(server, "img"),
                            back.toString())
                    .assertSuccess();
            assertThat(TestFiles.sha256(back, 40 << 20)).isEqualTo(TestFiles.sha256(image, 40 << 20));

            Tool.run(
                            Duration.ofMinutes(3),
                            Fio.verifiedRandomWrites("verify", uri(server, "fio"), "--bsrange=4k-256k", 16, "64M", 5))
                    .assertSuccess();
            server.stop(Duration.ofSeconds(60)); // graceful: SIGTERM, the JVM's status 143
        }
    }

    @Test
    void secondWriter_isRefusedNamingTheHolder_readOnlyServerMayServeAlongside() throws Exception {
        String export = "l=s3://" + S3Server.BUCKET + "/lease,create=16M";
        try (ServerProcess writer = serve("--export", export)) {
            Tool.run("qemu-io", "-f", "raw", "-c", "write -P 9 0 64k", "-c", "flush", uri(writer, "l"))
                    .assertSuccess();

            List<String> second = new ArrayList<>(List.of("serve", "--port", "0", "--export", export));
            second.addAll(S3Server.serveArgs(s3.hostEndpoint()));
            Tool.Result refused = Tool.runWithEnv(
                    Duration.ofSeconds(60),
                    S3Server.credentialsEnv(),
                    ServerProcess.command(second.toArray(String[]::new)).toArray(String[]::new));
            assertThat(refused.exitCode()).isNotZero();
            assertThat(refused.stdout() + refused.stderr())
                    .containsPattern("is being served for writing by mqnbd on \\S+, pid "
                            + writer.process().pid());

            try (ServerProcess reader = serve("--read-only", "--export", "l=s3://" + S3Server.BUCKET + "/lease")) {
                String out = Tool.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 9 0 64k", uri(reader, "l"))
                        .assertSuccess()
                        .stdout();
                assertThat(out).doesNotContain("Pattern verification failed");
            }
        }
    }

    @Test
    void sequentialWriteOf256MiB_costsAbout256Puts_zeroesCostNone() throws Exception {
        try (ServerProcess server = serve(
                "--export",
                "seq=s3://" + S3Server.BUCKET + "/seq,create=512M",
                "--export",
                "zero=s3://" + S3Server.BUCKET + "/zero,create=512M")) {
            Tool.run(
                            Duration.ofMinutes(3),
                            Fio.nbd(
                                    "seq",
                                    uri(server, "seq"),
                                    "--rw=write",
                                    "--bs=256k",
                                    "--iodepth=8",
                                    "--size=256M",
                                    "--buffer_compress_percentage=0",
                                    "--refill_buffers=1",
                                    "--end_fsync=1"))
                    .assertSuccess();
            Tool.run(
                            Duration.ofMinutes(3),
                            Fio.nbd(
                                    "zero",
                                    uri(server, "zero"),
                                    "--rw=write",
                                    "--bs=1m",
                                    "--iodepth=8",
                                    "--size=256M",
                                    "--zero_buffers=1",
                                    "--end_fsync=1"))
                    .assertSuccess();
            server.stop(Duration.ofSeconds(60)); // graceful: SIGTERM, the JVM's status 143

            assertThat(puts(server.log(), "seq")).isBetween(256L, 280L);
            assertThat(puts(server.log(), "zero")).isZero();
        }
    }

    @Test
    void discardOfAPopulatedExport_isAnsweredAtOnce_readsZeroes_andItsObjectsGoInTheBackground() throws Exception {
        try (ServerProcess server = serve("--export", "trim=s3://" + S3Server.BUCKET + "/trim,create=128M")) {
            Tool.run(
                            Duration.ofMinutes(2),
                            "qemu-io",
                            "-f",
                            "raw",
                            "-c",
                            "write -P 0x33 0 128M",
                            "-c",
                            "flush",
                            uri(server, "trim"))
                    .assertSuccess();
            assertThat(keysUnder("trim/blocks/")).hasSize(128);

            // 128 blocks: a recorded trim, its deletes in the background.
            String out = Tool.run(
                            "qemu-io",
                            "-f",
                            "raw",
                            "--discard=unmap",
                            "-c",
                            "discard 0 128M",
                            "-c",
                            "read -P 0 0 128M",
                            uri(server, "trim"))
                    .assertSuccess()
                    .stdout();
            assertThat(out)
                    .contains("discard 134217728/134217728 bytes at offset 0")
                    .doesNotContain("Pattern verification failed");

            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!(keysUnder("trim/blocks/").isEmpty()
                    && keysUnder("trim/trims/").isEmpty())) {
                if (System.nanoTime() - deadline > 0) {
                    throw new AssertionError("trimmed objects still in the store after 60 s: " + keysUnder("trim/")
                            + "\n" + server.log());
                }
                Thread.sleep(200);
            }
            String again = Tool.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0 0 128M", uri(server, "trim"))
                    .assertSuccess()
                    .stdout();
            assertThat(again).doesNotContain("Pattern verification failed");
            server.stop(Duration.ofSeconds(60)); // graceful: SIGTERM, the JVM's status 143
        }
    }

    /** Returns the keys the store holds under {@code prefix} (within an export's folder, which exists). */
    private static List<String> keysUnder(String prefix) {
        String export = prefix.substring(0, prefix.indexOf('/') + 1);
        return s3.objectKeys(export).stream().filter(k -> k.startsWith(prefix)).toList();
    }

    /** Returns the PUT count of export {@code name} from the totals line the server logs when it stops. */
    private static long puts(String log, String name) {
        Matcher m = TOTALS.matcher(log);
        while (m.find()) {
            if (m.group(1).equals(name)) {
                return Long.parseLong(m.group(2));
            }
        }
        throw new AssertionError("no totals line with PUTs for export " + name + " in the log:\n" + log);
    }
}
