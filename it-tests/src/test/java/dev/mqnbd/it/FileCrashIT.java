package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A file export killed with SIGKILL after FLUSH was acknowledged: a restarted server on the same file
 * serves every acknowledged byte. (SIGKILL keeps the kernel's page cache, so this proves the server holds
 * nothing acknowledged in its own memory; surviving power loss is what FLUSH's fdatasync is for, and the
 * unit tests check that it runs before the reply.)
 */
class FileCrashIT {
    private static Path workDir() throws Exception {
        Path base = Path.of("target", "file-it").toAbsolutePath();
        Files.createDirectories(base);
        return Files.createTempDirectory(base, "crash");
    }

    @Test
    void writesThenFlush_sigkill_restart_everyByteIsThere() throws Exception {
        Path dir = workDir();
        Path image = dir.resolve("crash.img");
        Path source = dir.resolve("source.bin");
        TestFiles.writeRandom(source, 48 << 20, 4242);
        String spec = "d=file:" + image + ",create=64M";
        try (ServerProcess server = ServerProcess.start("serve", "--port", "0", "--export", spec)) {
            String uri = "nbd://127.0.0.1:" + server.port() + "/d";
            // nbdcopy --flush: FLUSH once every write was acknowledged; then a few small writes with FLUSH.
            Tool.run(Duration.ofMinutes(2), "nbdcopy", "--flush", source.toString(), uri)
                    .assertSuccess();
            Tool.run(
                            "qemu-io",
                            "-f",
                            "raw",
                            "-c",
                            "write -P 0xab 55000000 12345",
                            "-c",
                            "write -P 0xcd 60000001 1",
                            "-c",
                            "flush",
                            uri)
                    .assertSuccess();

            server.process().destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            assertThat(server.process().isAlive()).isFalse();
            assertThat(server.log()).doesNotContain("file export d:"); // no graceful stop: no totals line
        }

        try (ServerProcess again = ServerProcess.start("serve", "--port", "0", "--export", spec)) {
            String uri = "nbd://127.0.0.1:" + again.port() + "/d";
            Path back = dir.resolve("back.bin");
            Tool.run(Duration.ofMinutes(2), "nbdcopy", uri, back.toString()).assertSuccess();

            assertThat(Files.size(back)).isEqualTo(64L << 20);
            assertThat(TestFiles.sha256(back, 48 << 20)).isEqualTo(TestFiles.sha256(source, 48 << 20));
            String out = Tool.run(
                            "qemu-io",
                            "-f",
                            "raw",
                            "-r",
                            "-c",
                            "read -P 0xab 55000000 12345",
                            "-c",
                            "read -P 0 55012345 4987656",
                            "-c",
                            "read -P 0xcd 60000001 1",
                            uri)
                    .assertSuccess()
                    .stdout();
            assertThat(out).doesNotContain("Pattern verification failed");
            again.stop(Duration.ofSeconds(30));
        } finally {
            Files.deleteIfExists(source);
            Files.deleteIfExists(dir.resolve("back.bin"));
            Files.deleteIfExists(image);
            Files.deleteIfExists(dir);
        }
    }
}
