package dev.mqnbd.it.container;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.it.Fio;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;

/**
 * The foundation's end-to-end checks (info, list, copy, patterns, fio verify, nbdsh), run from both
 * client generations in their containers against the server image in its container, for every backend
 * of {@link ServerBackend#all()}. One server serves every combination, each with its own exports
 * ({@code <client>-<backend>-<purpose>}), so the combinations do not see each other's data.
 */
@ParameterizedClass(name = "{0} clients, {1} backend")
@MethodSource("combinations")
class ClientContainersIT {
    private static final Duration LIMIT = Duration.ofMinutes(3);
    /** Where backends that keep files put them, inside the server container. */
    private static final Path SERVER_DATA = Path.of("/tmp");
    /** The exports each combination gets: purpose and size. */
    private static final Map<String, String> EXPORTS = new LinkedHashMap<>();

    static {
        EXPORTS.put("copy", "192M");
        EXPORTS.put("image", "64M");
        EXPORTS.put("patterns", "16M");
        EXPORTS.put("fio", "128M");
        EXPORTS.put("sparse", "1T");
        EXPORTS.put("map", "64M");
    }

    private static Network network;
    private static S3Server s3;
    private static GenericContainer<?> server;
    private static final Map<ClientImage, GenericContainer<?>> clients = new EnumMap<>(ClientImage.class);

    @Parameter(0)
    ClientImage client;

    @Parameter(1)
    ServerBackend backend;

    static Stream<Arguments> combinations() {
        List<Arguments> all = new ArrayList<>();
        for (ClientImage c : ClientImage.values()) {
            for (ServerBackend b : ServerBackend.all()) {
                all.add(Arguments.of(c, b));
            }
        }
        return all.stream();
    }

    @BeforeAll
    static void startContainers() {
        TestImages.ensureContainerImages();
        network = Network.newNetwork();
        List<String> args = new ArrayList<>();
        combinations().forEach(combination -> {
            ClientImage c = (ClientImage) combination.get()[0];
            ServerBackend b = (ServerBackend) combination.get()[1];
            EXPORTS.forEach((purpose, size) -> {
                String name = exportName(c, b, purpose);
                args.addAll(List.of("--export", name + "=" + b.spec(SERVER_DATA, name, size)));
            });
        });
        Map<String, String> env = Map.of();
        if (ServerBackend.all().stream().anyMatch(ServerBackend::needsS3)) {
            s3 = S3Server.start(network);
            args.addAll(S3Server.serveArgs(s3.networkEndpoint()));
            env = S3Server.credentialsEnv();
        }
        server = Containers.startServer(network, args, env);
        for (ClientImage c : ClientImage.values()) {
            clients.put(c, Containers.startClient(network, c));
        }
    }

    @AfterAll
    static void stopContainers() {
        Containers.stopAll(clients.values().toArray(GenericContainer<?>[]::new));
        clients.clear();
        Containers.stopAll(server);
        if (s3 != null) {
            s3.close();
            s3 = null;
        }
        if (network != null) {
            network.close();
        }
    }

    private static String exportName(ClientImage c, ServerBackend b, String purpose) {
        return c.shortName() + "-" + b.name() + "-" + purpose;
    }

    private String export(String purpose) {
        return exportName(client, backend, purpose);
    }

    private String uri(String purpose) {
        return "nbd://" + Containers.SERVER_HOST + ":" + Containers.NBD_PORT + "/" + export(purpose);
    }

    private Containers.Exec sh(String script) {
        return Containers.sh(clients.get(client), LIMIT, script);
    }

    private Containers.Exec run(String... command) {
        return Containers.exec(clients.get(client), LIMIT, command);
    }

    @Test
    void clientTools_areOfTheirGeneration() {
        String out = sh("nbdinfo --version; qemu-img --version; qemu-io --version; fio --version;"
                        + " nbd-client --version 2>&1 | head -n 1; nbdsh --version")
                .stdout();

        assertThat(out).contains(client.versions()).contains("qemu-io version", "nbd-client", "nbd 3.");
    }

    @Test
    void negotiation_bestModeOfTheGeneration_andBlockStatusAfterWriteTrimZero() {
        String uri = uri("map");
        // libnbd 1.22 asks for extended headers, 1.14 for structured replies: each gets its best mode.
        String info = run("nbdinfo", uri).assertSuccess().stdout();
        assertThat(info).contains(client == ClientImage.TRIXIE ? "using extended packets" : "using structured packets");

        run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-c",
                        "write -P 1 1M 64k",
                        "-c",
                        "write -P 2 4M 1M",
                        "-c",
                        "discard 4M 512k",
                        "-c",
                        "write -z -u 8M 64k",
                        "-c",
                        "flush",
                        uri)
                .assertSuccess();
        String map = run("nbdinfo", "--map", uri).assertSuccess().stdout().replaceAll("[ \t]+", " ");
        String qemuMap = run("qemu-img", "map", "-f", "raw", "--output=json", uri)
                .assertSuccess()
                .stdout();

        assertThat(map).contains(" 0 1048576 3 hole,zero", " 1048576 65536 0 data", " 4718592 524288 0 data");
        assertThat(map).doesNotContain(" 4194304 1048576 0 data"); // the trimmed half is a hole again
        assertThat(qemuMap.replaceAll("\\s", ""))
                .contains(
                        "\"start\":1048576,\"length\":65536,\"depth\":0,\"present\":true,\"zero\":false,\"data\":true",
                        "\"start\":4718592,\"length\":524288,\"depth\":0,\"present\":true,\"zero\":false,\"data\":true");
        String read = run(
                        "qemu-io",
                        "-f",
                        "raw",
                        "-r",
                        "-c",
                        "read -P 0 4M 512k",
                        "-c",
                        "read -P 2 4608k 512k",
                        "-c",
                        "read -P 0 8M 64k",
                        uri)
                .assertSuccess()
                .stdout();
        assertThat(read).doesNotContain("Pattern verification failed");
    }

    @Test
    void nbdinfo_list_showsThisCombinationsExports() {
        String out = run("nbdinfo", "--list", "--json", uri("")).assertSuccess().stdout();

        for (String purpose : EXPORTS.keySet()) {
            assertThat(out).contains("\"export-name\": \"" + export(purpose) + "\"");
        }
    }

    @Test
    void nbdinfo_describesExport_sizeAndFlags() {
        String out = run("nbdinfo", "--json", uri("sparse")).assertSuccess().stdout();

        assertThat(out)
                .contains(
                        "\"export-name\": \"" + export("sparse") + "\"",
                        "\"export-size\": " + (1L << 40),
                        "\"is_read_only\": false",
                        "\"can_flush\": true",
                        "\"can_trim\": true",
                        "\"can_zero\": true",
                        "\"block_size_maximum\": " + (32 << 20));
    }

    @Test
    void nbdinfo_unknownExport_failsWithENOENT() {
        Containers.Exec result = run("nbdinfo", uri("no-such-export")).assertFailure();

        assertThat(result.stderr()).contains("No such file or directory");
    }

    @Test
    void nbdcopy_128MiBRandom_roundTripsIdentical() {
        String uri = uri("copy");
        String out = sh(String.join(
                        "\n",
                        "set -e",
                        "head -c 134217728 /dev/urandom >/tmp/src.img",
                        "nbdcopy /tmp/src.img " + uri,
                        "nbdcopy --synchronous " + uri + " /tmp/back.img",
                        "echo \"source $(sha256sum </tmp/src.img)\"",
                        "echo \"copied $(head -c 134217728 /tmp/back.img | sha256sum)\"",
                        "echo \"size $(stat -c %s /tmp/back.img)\"",
                        "echo \"nonzero-after $(tail -c +134217729 /tmp/back.img | tr -d '\\000' | wc -c)\"",
                        "rm -f /tmp/src.img /tmp/back.img"))
                .assertSuccess()
                .stdout();

        Map<String, String> values = keyValues(out);
        assertThat(values.get("source")).hasSize(64).isEqualTo(values.get("copied"));
        assertThat(values.get("size")).isEqualTo(Long.toString(192L << 20));
        // The export is 192 MiB: past the copied 128 MiB it was never written, so it reads as zeroes.
        assertThat(values.get("nonzero-after")).isEqualTo("0");
    }

    @Test
    void qemuImg_convertAndCompare_detectsOneChangedByte() {
        String uri = uri("image");
        String out = sh(String.join(
                        "\n",
                        "set -e",
                        "head -c 67108864 /dev/urandom >/tmp/q.img",
                        "qemu-img convert -n -f raw -O raw /tmp/q.img " + uri,
                        "qemu-img convert -f raw -O raw " + uri + " /tmp/q-back.img",
                        "cmp /tmp/q.img /tmp/q-back.img && echo 'converted back identical'",
                        "qemu-img compare -f raw -F raw /tmp/q.img " + uri + " && echo 'compare equal'",
                        "b=$(od -An -tu1 -j 12345678 -N 1 /tmp/q.img | tr -d ' ')",
                        "qemu-io -f raw -c \"write -P $((b ^ 255)) 12345678 1\" " + uri + " >/dev/null",
                        "rc=0; qemu-img compare -f raw -F raw /tmp/q.img " + uri + " >/dev/null || rc=$?",
                        "echo \"compare after flip exited $rc\"",
                        "rm -f /tmp/q.img /tmp/q-back.img"))
                .assertSuccess()
                .stdout();

        assertThat(out).contains("converted back identical", "compare equal", "compare after flip exited 1");
    }

    @Test
    void qemuIo_patternsAtOddOffsets_readBack() {
        String uri = uri("patterns");
        run(
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

        String out = run(
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
        String uri = uri("patterns");
        run(
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

        String out = run(
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
        assertThat(out)
                .doesNotContain("Pattern verification failed")
                .contains("read 65536/65536 bytes at offset 8454144");
    }

    @Test
    void fio_randomWriteVerifyCrc32c_noErrors() {
        Containers.Exec result = run(Fio.randomWrites4kVerified(uri("fio"))).assertSuccess();

        assertThat(result.stdout()).contains("\"error\" : 0");
        assertThat(result.stderr()).doesNotContain("verify:", "bad magic", "crc32c");
    }

    @Test
    void fio_mixedBlockSizesQueueDepth64_verifies() {
        run(Fio.mixedBlockSizesVerified(uri("fio"), "80m")).assertSuccess();
    }

    @Test
    void nbdsh_sparseExport_writesFarAndReadsBack() {
        String script = dev.mqnbd.it.TestFiles.sparseFarWritesScript(uri("sparse"));
        String out =
                run("nbdsh", "-c", "import errno", "-c", script).assertSuccess().stdout();

        assertThat(out.strip()).isEqualTo("ok");
    }

    /** Parses lines {@code key value...} into a map of key to the first word of the value. */
    static Map<String, String> keyValues(String out) {
        Map<String, String> values = new LinkedHashMap<>();
        for (String line : out.split("\n")) {
            String[] words = line.strip().split("\\s+");
            if (words.length >= 2) {
                values.put(words[0], words[1]);
            }
        }
        return values;
    }
}
