package dev.mqnbd.testcontainers;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.testing.TestPki;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testcontainers.containers.output.ToStringConsumer;
import org.testcontainers.utility.DockerImageName;

/**
 * {@link MqnbdContainer} on the locally built {@code mqnbd:latest}, driven from the host with libnbd's
 * and qemu's clients (scripts/install-test-deps installs them).
 */
class MqnbdContainerIT {
    @TempDir
    static Path tmp;

    @BeforeAll
    static void buildImage() throws Exception {
        Path root =
                Path.of(System.getProperty("mqnbd.root", "..")).toAbsolutePath().normalize();
        Result build = run(root.resolve("scripts/images/build").toString(), "server");
        assertThat(build.exit())
                .as("scripts/images/build server:%n%s", build.output())
                .isZero();
    }

    @Test
    void exports_areServedAtTheirUris_andKeepWhatIsWritten() throws Exception {
        byte[] image = new byte[4 << 20];
        new Random(3).nextBytes(image);
        Path in = Files.write(tmp.resolve("in.img"), image);
        Path out = tmp.resolve("out.img");
        try (MqnbdContainer nbd =
                new MqnbdContainer().withExport("disk", "memory:4M").withExport("big", "memory:1T")) {
            nbd.start();
            assertThat(nbd.getNbdUri("disk"))
                    .isEqualTo("nbd://" + nbd.getHost() + ":" + nbd.getMappedPort(10809) + "/disk");
            assertThat(run("nbdinfo", "--size", nbd.getNbdUri("big")).checked()).isEqualTo("1099511627776\n");

            run("nbdcopy", in.toString(), nbd.getNbdUri("disk")).checked();
            run("qemu-img", "convert", "-f", "raw", "-O", "raw", nbd.getNbdUri("disk"), out.toString())
                    .checked();
            assertThat(sha256(Files.readAllBytes(out))).isEqualTo(sha256(image));
            assertThat(nbd.getLogs()).contains("export \"disk\": memory:4M", "listening on 0.0.0.0:10809");
        }
    }

    @Test
    void filter_errorOnReads_surfacesInTheClient_andTheLogIsForwarded() throws Exception {
        ToStringConsumer log = new ToStringConsumer();
        try (MqnbdContainer nbd = new MqnbdContainer()
                .withExport("flaky", "memory:1M")
                .withFilter("flaky", "error,rate=100%,ops=read,status=EIO")
                .withServerArguments("--verbose")
                .withLogConsumer(log)) {
            nbd.start();
            // Written blocks: nbdcopy skips reading what block status reports as holes.
            run("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", nbd.getNbdUri())
                    .checked();
            Result read =
                    run("nbdcopy", nbd.getNbdUri(), tmp.resolve("never.img").toString());
            assertThat(read.exit()).as(read.output()).isNotZero();
            assertThat(read.output()).containsIgnoringCase("Input/output error");
            assertThat(log.toUtf8String()).contains("export \"flaky\": error(", "ready: 1 export");
        }
    }

    @Test
    void tls_requiresNbdsUri_withTheGivenCertificates() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=mqnbd container CA");
        Path server = ca.writeServerDirectory(
                tmp.resolve("server"), ca.server("CN=localhost"), TestPki.KeyFormat.TRADITIONAL);
        Path client = ca.writeClientDirectory(tmp.resolve("client"), null);
        try (MqnbdContainer nbd =
                new MqnbdContainer().withExport("secret", "memory:8M").withTls(server, false)) {
            nbd.start();
            String uri = nbd.getNbdUri("secret");
            assertThat(uri).startsWith("nbds://");
            assertThat(run("nbdinfo", "--size", uri + "?tls-certificates=" + client)
                            .checked())
                    .isEqualTo("8388608\n");
            String plain = uri.replaceFirst("^nbds", "nbd");
            assertThat(run("nbdinfo", "--size", plain).exit()).isNotZero();
        }
    }

    @Test
    void missingImage_failsAtOnce_sayingHowToBuildIt() {
        try (MqnbdContainer nbd = new MqnbdContainer(DockerImageName.parse("mqnbd-not-built:latest"))) {
            assertThatThrownBy(nbd::start)
                    .hasStackTraceContaining("mqnbd-not-built:latest is not in the local Docker engine")
                    .hasStackTraceContaining("scripts/images/build server");
        }
    }

    @Test
    void setters_refuseMisuse() {
        MqnbdContainer nbd = new MqnbdContainer().withExport("disk", "memory:1M");
        assertThatThrownBy(() -> nbd.withExport("disk", "memory:2M")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> nbd.withFilter("nosuch", "cow")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> nbd.withTls(tmp, false)).hasMessageContaining("server-cert.pem");
        assertThat(nbd.serverArguments())
                .containsSubsequence("serve", "--listen", "0.0.0.0", "--export", "disk=memory:1M");
        nbd.close();
    }

    record Result(int exit, String output) {
        String checked() {
            assertThat(exit).as(output).isZero();
            return output;
        }
    }

    /** Runs a program, stdout and stderr together, for at most two minutes. */
    static Result run(String... command) throws IOException, InterruptedException {
        Path output = Files.createTempFile(tmp, "out", ".txt");
        Process process = new ProcessBuilder(List.of(command))
                .redirectErrorStream(true)
                .redirectOutput(output.toFile())
                .start();
        process.getOutputStream().close();
        if (!process.waitFor(2, TimeUnit.MINUTES)) {
            process.destroyForcibly().waitFor();
            throw new AssertionError(String.join(" ", command) + " did not finish within 2 minutes");
        }
        return new Result(process.exitValue(), Files.readString(output, StandardCharsets.UTF_8));
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }
}
