package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The foundation's real-client checks on file exports (an in-process server on image files created by the
 * exports themselves), plus what only files promise: the data is in the image, holes stay holes on disk,
 * and block status is what {@code SEEK_DATA}/{@code SEEK_HOLE} say.
 */
class FileExportIT {
    private static ServerFixture server;
    private static Path dir;

    @BeforeAll
    static void startServer() throws Exception {
        // On the build's disk (not a tmpfs): real holes, fallocate and fdatasync.
        Path base = Path.of("target", "file-it").toAbsolutePath();
        Files.createDirectories(base);
        dir = Files.createTempDirectory(base, "exports");
        Path ro = dir.resolve("ro.img");
        TestFiles.writeRandom(ro, 4 << 20, 99);
        server = ServerFixture.builder()
                .export("copy", "file:" + dir.resolve("copy.img") + ",create=256M")
                .export("image", "file:" + dir.resolve("image.img") + ",create=64M")
                .export("fio", "file:" + dir.resolve("fio.img") + ",create=128M")
                .export("sparse", "file:" + dir.resolve("sparse.img") + ",create=1T")
                .export("map", "file:" + dir.resolve("map.img") + ",create=64M")
                .readOnlyExport("ro", "file:" + ro)
                .start();
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) {
            server.close();
        }
        if (dir != null) {
            try (var walk = Files.walk(dir)) {
                for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    @Test
    void nbdinfo_fileExport_advertisesFlushFuaTrimZeroAndMultiConn() {
        String out = Tool.run("nbdinfo", "--json", server.uri("copy"))
                .assertSuccess()
                .stdout();

        assertThat(out)
                .contains(
                        "\"export-size\": " + (256L << 20),
                        "\"is_read_only\": false",
                        "\"can_flush\": true",
                        "\"can_fua\": true",
                        "\"can_trim\": true",
                        "\"can_zero\": true",
                        "\"can_multi_conn\": true",
                        "\"block_size_minimum\": 1");
    }

    @Test
    void nbdcopy_128MiBRandom_roundTrips_andLandsInTheImage() throws Exception {
        Path source = dir.resolve("random.bin");
        TestFiles.writeRandom(source, 128 << 20, 2026);
        Path back = dir.resolve("back.bin");

        Tool.run(Duration.ofMinutes(3), "nbdcopy", "--flush", source.toString(), server.uri("copy"))
                .assertSuccess();
        Tool.run(Duration.ofMinutes(3), "nbdcopy", server.uri("copy"), back.toString())
                .assertSuccess();

        String expected = TestFiles.sha256(source, 128 << 20);
        assertThat(TestFiles.sha256(back, 128 << 20)).isEqualTo(expected);
        assertThat(TestFiles.sha256(dir.resolve("copy.img"), 128 << 20))
                .as("the image file itself")
                .isEqualTo(expected);
        assertThat(TestFiles.isZero(back, 128L << 20, 128L << 20)).isTrue();
    }

    @Test
    void qemuImg_convertAndCompare_roundTrip() throws Exception {
        Path source = dir.resolve("qemu-src.bin");
        TestFiles.writeRandom(source, 64 << 20, 7);

        Tool.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source.toString(), server.uri("image"))
                .assertSuccess();

        Tool.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), server.uri("image"))
                .assertSuccess();
        int flipped = (TestFiles.readByte(source, 1_234_567) ^ 0xff) & 0xff;
        Tool.run("qemu-io", "-f", "raw", "-c", "write -P " + flipped + " 1234567 1", server.uri("image"))
                .assertSuccess();
        Tool.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), server.uri("image"))
                .assertFailure();
    }

    @Test
    void fio_randomWriteVerify_andMixedSizesDepth64_noErrors() {
        Tool.run(
                        Duration.ofMinutes(3),
                        "fio",
                        "--name=verify",
                        "--ioengine=nbd",
                        "--uri=" + server.uri("fio"),
                        "--rw=randwrite",
                        "--bs=4k",
                        "--size=64m",
                        "--iodepth=32",
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1",
                        "--verify_state_save=0",
                        "--randseed=2026")
                .assertSuccess();
        Tool.run(
                        Duration.ofMinutes(3),
                        "fio",
                        "--name=mixed",
                        "--ioengine=nbd",
                        "--uri=" + server.uri("fio"),
                        "--rw=randwrite",
                        "--bsrange=512-256k",
                        "--size=32m",
                        "--offset=64m",
                        "--iodepth=64",
                        "--verify=crc32c",
                        "--do_verify=1",
                        "--verify_fatal=1",
                        "--verify_state_save=0",
                        "--randseed=7")
                .assertSuccess();
    }

    @Test
    void trimAndZeroes_keepTheImageSmallOnDisk() {
        Path image = dir.resolve("sparse.img");
        String uri = server.uri("sparse");
        long start = 1L << 39; // half way into the 1 TiB image
        Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x5c " + start + " 64M", "-c", "flush", uri)
                .assertSuccess();
        assertThat(FileItSupport.duKiB(image)).isGreaterThanOrEqualTo(64 << 10);

        // TRIM the first half; WRITE_ZEROES with may-unmap (no NO_HOLE) on the second.
        Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "discard " + start + " 32M",
                        "-c",
                        "write -z -u " + (start + (32 << 20)) + " 32M",
                        "-c",
                        "flush",
                        uri)
                .assertSuccess();

        assertThat(FileItSupport.duKiB(image)).isLessThan(1024);
        String out = Tool.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0 " + start + " 64M", uri)
                .assertSuccess()
                .stdout();
        assertThat(out).doesNotContain("Pattern verification failed");
    }

    @Test
    void blockStatus_matchesSeekDataSeekHole() {
        String uri = server.uri("map");
        Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "write -P 1 1M 256k",
                        "-c",
                        "write -P 2 8M 4k",
                        "-c",
                        "write -P 3 40M 3M",
                        "-c",
                        "write -z -u 40M 1M",
                        "-c",
                        "flush",
                        uri)
                .assertSuccess();

        String json =
                Tool.run("nbdinfo", "--map", "--json", uri).assertSuccess().stdout();
        List<long[]> runs = new ArrayList<>();
        var m = java.util.regex.Pattern.compile(
                        "\"offset\":\\s*(\\d+),\\s*\"length\":\\s*(\\d+),\\s*\"type\":\\s*(\\d+)")
                .matcher(json);
        while (m.find()) {
            int type = Integer.parseInt(m.group(3));
            runs.add(new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), type == 3 ? 1 : 0});
            assertThat(type).as("type of run at %s", m.group(1)).isIn(0, 3);
        }

        List<String> fromServer = FileItSupport.merge(runs);
        assertThat(fromServer).isEqualTo(FileItSupport.seekMap(dir.resolve("map.img")));
        assertThat(fromServer).contains("0 1048576 hole", "1048576 262144 data", "8388608 4096 data");
    }

    @Test
    void readOnlyFileExport_readsButRefusesWrites() throws Exception {
        Tool.Result write = Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4096", server.uri("ro"));
        assertThat(write.stdout() + write.stderr()).containsIgnoringCase("permission");

        Path back = dir.resolve("ro-back.bin");
        Tool.run("nbdcopy", server.uri("ro"), back.toString()).assertSuccess();
        assertThat(TestFiles.sha256(back, 4 << 20)).isEqualTo(TestFiles.sha256(dir.resolve("ro.img"), 4 << 20));
    }
}
