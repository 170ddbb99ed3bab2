package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The foundation's end-to-end checks: real NBD clients against a memory-backed server in this JVM.
 * Each test uses its own export, so the tests do not depend on each other's data.
 */
class RealClientsIT {
    private static ServerFixture server;

    @TempDir
    static Path tmp;

    @BeforeAll
    static void startServer() throws Exception {
        server = ServerFixture.builder()
                .export("", "memory:64M")
                .export("copy", "memory:512M")
                .export("image", "memory:96M")
                .export("patterns", "memory:16M")
                .export("fio", "memory:256M")
                .export("sparse", "memory:1T")
                .readOnlyExport("ro", "memory:8M")
                .start();
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void nbdinfo_list_showsEveryExport() {
        String out = Tool.run("nbdinfo", "--list", "--json", server.uri(""))
                .assertSuccess()
                .stdout();

        assertThat(out)
                .contains(
                        "\"export-name\": \"copy\"",
                        "\"export-name\": \"sparse\"",
                        "\"export-name\": \"ro\"",
                        "\"export-name\": \"\"");
        assertThat(out).contains("\"description\": \"memory:512M\"");
    }

    @Test
    void nbdinfo_describesExport_sizeFlagsAndBlockSizes() {
        String out = Tool.run("nbdinfo", "--json", server.uri("sparse"))
                .assertSuccess()
                .stdout();

        assertThat(out).contains("\"export-size\": " + (1L << 40));
        assertThat(out)
                .contains(
                        "\"is_read_only\": false",
                        "\"can_flush\": true",
                        "\"can_fua\": true",
                        "\"can_trim\": true",
                        "\"can_zero\": true");
        assertThat(out).contains("\"block_size_minimum\": 1", "\"block_size_maximum\": " + ServerFixture.MAX_PAYLOAD);
    }

    @Test
    void nbdinfo_readOnlyExport_isReadOnly() {
        String out =
                Tool.run("nbdinfo", "--json", server.uri("ro")).assertSuccess().stdout();

        assertThat(out).contains("\"is_read_only\": true", "\"export-size\": " + (8L << 20));
    }

    @Test
    void nbdinfo_unknownExport_fails() {
        Tool.Result result = Tool.run("nbdinfo", server.uri("no-such-export")).assertFailure();

        // NBD_REP_ERR_UNKNOWN, which libnbd reports as ENOENT.
        assertThat(result.stderr()).contains("No such file or directory", "no-such-export");
    }

    @Test
    void nbdcopy_256MiBRandom_roundTripsIdentical() throws Exception {
        Path source = tmp.resolve("random.img");
        TestFiles.writeRandom(source, 256 << 20, 2026);
        Path back = tmp.resolve("back.img");

        Tool.run(Duration.ofMinutes(3), "nbdcopy", source.toString(), server.uri("copy"))
                .assertSuccess();
        Tool.run(Duration.ofMinutes(3), "nbdcopy", "--synchronous", server.uri("copy"), back.toString())
                .assertSuccess();

        // The export is 512 MiB: the first 256 MiB are the file, the rest never written (zeroes).
        assertThat(Files.size(back)).isEqualTo(512L << 20);
        assertThat(TestFiles.sha256(back, 256 << 20)).isEqualTo(TestFiles.sha256(source, 256 << 20));
        assertThat(TestFiles.isZero(back, 256L << 20, 256L << 20)).isTrue();
    }

    @Test
    void qemuImg_convert_roundTripsImage() throws Exception {
        Path source = tmp.resolve("qemu-src.img");
        TestFiles.writeRandom(source, 96 << 20, 7);
        Path back = tmp.resolve("qemu-back.img");

        Tool.run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", source.toString(), server.uri("image"))
                .assertSuccess();
        Tool.run("qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri("image"), back.toString())
                .assertSuccess();

        assertThat(TestFiles.sha256(back, 96 << 20)).isEqualTo(TestFiles.sha256(source, 96 << 20));
        Tool.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), server.uri("image"))
                .assertSuccess();

        // The comparison can fail: change one byte of the export and it must.
        int flipped = (TestFiles.readByte(source, 12_345_678) ^ 0xff) & 0xff;
        Tool.run("qemu-io", "-f", "raw", "-c", "write -P " + flipped + " 12345678 1", server.uri("image"))
                .assertSuccess();
        Tool.run("qemu-img", "compare", "-f", "raw", "-F", "raw", source.toString(), server.uri("image"))
                .assertFailure();
    }

    @Test
    void qemuIo_patternsAtOddOffsets_readBack() {
        String uri = server.uri("patterns");
        Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "write -P 0xa5 1000 3333",
                        "-c",
                        "write -P 0x5a 65535 70001",
                        "-c",
                        "write -P 0x01 16777215 1",
                        "-c",
                        "flush",
                        uri)
                .assertSuccess();

        // A second connection sees what the first wrote, and the bytes around it are untouched.
        String out = Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-r",
                        "-c",
                        "read -P 0xa5 1000 3333",
                        "-c",
                        "read -P 0x5a 65535 70001",
                        "-c",
                        "read -P 0x01 16777215 1",
                        "-c",
                        "read -P 0 0 1000",
                        "-c",
                        "read -P 0 4333 61202",
                        "-c",
                        "read -P 0 135536 100000",
                        uri)
                .assertSuccess()
                .stdout();
        assertThat(out).doesNotContain("Pattern verification failed", "error", "failed");
        assertThat(out).contains("read 3333/3333 bytes at offset 1000", "read 1/1 bytes at offset 16777215");
    }

    @Test
    void qemuIo_writeZeroesAndDiscard_readBackZero() {
        String uri = server.uri("patterns");
        Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "write -P 0x77 8388608 1048576",
                        "-c",
                        "write -z 8392704 8192",
                        "-c",
                        "discard 8454144 65536",
                        uri)
                .assertSuccess();

        String out = Tool.run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-r",
                        "-c",
                        "read -P 0x77 8388608 4096",
                        "-c",
                        "read -P 0 8392704 8192",
                        "-c",
                        "read -P 0x77 8400896 53248",
                        "-c",
                        "read -P 0 8454144 65536",
                        uri)
                .assertSuccess()
                .stdout();
        assertThat(out).doesNotContain("Pattern verification failed");
    }

    @Test
    void qemuIo_writeToReadOnlyExport_failsWithPermissionError() {
        Tool.Result result = Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4096", server.uri("ro"));

        assertThat(result.stdout() + result.stderr()).containsIgnoringCase("permission");
        String read = Tool.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0 0 4096", server.uri("ro"))
                .assertSuccess()
                .stdout();
        assertThat(read).doesNotContain("Pattern verification failed");
    }

    @Test
    void fio_randomWriteVerifyCrc32c_noErrors() {
        Tool.Result result = Tool.run(Duration.ofMinutes(3), Fio.randomWrites4kVerified(server.uri("fio")))
                .assertSuccess();

        assertThat(result.stdout()).contains("\"error\" : 0");
        assertThat(result.stderr()).doesNotContain("verify:", "bad magic", "crc32c");
    }

    @Test
    void fio_mixedBlockSizesQueueDepth64_verifies() {
        Tool.run(Duration.ofMinutes(3), Fio.mixedBlockSizesVerified(server.uri("fio"), "128m"))
                .assertSuccess();
    }

    @Test
    void nbdsh_sparseExport_writesFarAndReadsBack() {
        String script = TestFiles.sparseFarWritesScript(server.uri("sparse"));
        String out = Tool.run("nbdsh", "-c", "import errno", "-c", script)
                .assertSuccess()
                .stdout();

        assertThat(out.strip()).isEqualTo("ok");
    }
}
