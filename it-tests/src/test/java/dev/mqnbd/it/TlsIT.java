package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.testing.TestPki;
import dev.mqnbd.server.testing.TestPki.KeyFormat;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * NBD_OPT_STARTTLS with real clients: libnbd's {@code nbdinfo}/{@code nbdcopy} ({@code nbds://} URIs with
 * {@code tls-certificates=DIR}) and qemu ({@code tls-creds-x509}), both GnuTLS, against the CLI jar. The
 * certificates are made here: one CA, a server certificate for 127.0.0.1, clients alice and bob, and a client
 * whose certificate comes from another CA.
 */
class TlsIT {
    @TempDir
    static Path tmp;

    private static Path serverDir;
    private static Path alice;
    private static Path bob;
    private static Path noCertificate;
    private static Path foreignCa;

    @BeforeAll
    static void certificates() {
        TestPki.Ca ca = TestPki.newCa("CN=mqnbd TlsIT CA");
        // openssl's and certtool's traditional key format, which the server must read too.
        serverDir = ca.writeServerDirectory(tmp.resolve("server"), ca.server("CN=localhost"), KeyFormat.TRADITIONAL);
        alice = ca.writeClientDirectory(tmp.resolve("alice"), ca.client("CN=alice,O=mqnbd"));
        bob = ca.writeClientDirectory(tmp.resolve("bob"), ca.client("CN=bob,O=mqnbd", TestPki.KeyType.RSA_2048));
        noCertificate = ca.writeClientDirectory(tmp.resolve("nocert"), null);
        // Trusts the right CA, but presents a certificate (with alice's subject) issued by another.
        foreignCa = ca.writeClientDirectory(
                tmp.resolve("foreign"), TestPki.newCa("CN=rogue CA").client("CN=alice,O=mqnbd"));
    }

    private static String nbds(ServerProcess server, String export, Path certificates) {
        return "nbds://127.0.0.1:" + server.port() + "/" + export + "?tls-certificates=" + certificates;
    }

    private static String plain(ServerProcess server, String export) {
        return "nbd://127.0.0.1:" + server.port() + "/" + export;
    }

    /**
     * A qemu command line for {@code export} over TLS: {@code command} (e.g. {@code qemu-io}, or {@code qemu-img
     * info --output=json}), the {@code tls-creds-x509} object with {@code certificates}, the image options, then
     * {@code rest}.
     */
    private static String[] qemu(
            String command, ServerProcess server, String export, Path certificates, String... rest) {
        java.util.List<String> all = new java.util.ArrayList<>(java.util.List.of(command.split(" ")));
        all.addAll(java.util.List.of(
                "--object",
                "tls-creds-x509,id=tls0,endpoint=client,dir=" + certificates,
                "--image-opts",
                "driver=nbd,host=127.0.0.1,port=" + server.port() + ",export=" + export + ",tls-creds=tls0"));
        all.addAll(java.util.List.of(rest));
        return all.toArray(String[]::new);
    }

    @Test
    void require_libnbdClients_copyDataThroughTls() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=require",
                "--tls-certificates",
                serverDir.toString(),
                "--export",
                "disk=memory:64M",
                "-d",
                "disk=the TLS disk")) {
            String info = Tool.run("nbdinfo", "--json", nbds(server, "disk", alice))
                    .assertSuccess()
                    .stdout();
            assertThat(info).contains("\"export-size\": 67108864", "\"description\": \"the TLS disk\"");
            String protocol = Tool.run("nbdinfo", nbds(server, "disk", alice))
                    .assertSuccess()
                    .stdout();
            assertThat(protocol).contains("with TLS");

            Path source = tmp.resolve("random.img");
            TestFiles.writeRandom(source, 24 << 20, 4711);
            Path back = tmp.resolve("back.img");
            Tool.run(Duration.ofMinutes(3), "nbdcopy", source.toString(), nbds(server, "disk", alice))
                    .assertSuccess();
            Tool.run(Duration.ofMinutes(3), "nbdcopy", nbds(server, "disk", bob), back.toString())
                    .assertSuccess();

            assertThat(TestFiles.sha256(back, 24 << 20)).isEqualTo(TestFiles.sha256(source, 24 << 20));
            assertThat(TestFiles.isZero(back, 24L << 20, 40L << 20)).isTrue();
            assertThat(server.stop(Duration.ofSeconds(30))).isIn(0, 143);
        }
    }

    @Test
    void require_qemuTlsCredsX509_writesAndReadsBack() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=require",
                "--tls-certificates",
                serverDir.toString(),
                "--export",
                "vm=memory:32M")) {
            String info = Tool.run(qemu("qemu-img info --output=json", server, "vm", alice))
                    .assertSuccess()
                    .stdout();
            assertThat(info).contains("\"virtual-size\": 33554432");

            Tool.run(qemu(
                            "qemu-io",
                            server,
                            "vm",
                            alice,
                            "-c",
                            "write -P 0xc5 1000000 70000",
                            "-c",
                            "write -z 4194304 65536",
                            "-c",
                            "flush"))
                    .assertSuccess();
            String read = Tool.run(qemu(
                            "qemu-io",
                            server,
                            "vm",
                            bob,
                            "-r",
                            "-c",
                            "read -P 0xc5 1000000 70000",
                            "-c",
                            "read -P 0 999000 1000",
                            "-c",
                            "read -P 0 4194304 65536"))
                    .assertSuccess()
                    .stdout();
            assertThat(read).doesNotContain("Pattern verification failed").contains("read 70000/70000 bytes");

            // The check can fail: the pattern is not what was written.
            String wrong = Tool.run(qemu("qemu-io", server, "vm", alice, "-r", "-c", "read -P 0xc6 1000000 70000"))
                    .stdout();
            assertThat(wrong).contains("Pattern verification failed");
        }
    }

    @Test
    void require_clientsWithoutTls_failAndLearnNothing() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=require",
                "--tls-certificates",
                serverDir.toString(),
                "--export",
                "disk=memory:8M",
                "--export",
                "hidden-name=memory:8M",
                "-d",
                "disk=a description only TLS clients see")) {
            Tool.Result info =
                    Tool.run("nbdinfo", "--json", plain(server, "disk")).assertFailure();
            Tool.Result list = Tool.run("nbdinfo", "--list", plain(server, "")).assertFailure();
            Tool.Result qemu =
                    Tool.run("qemu-img", "info", plain(server, "disk")).assertFailure();

            for (Tool.Result r : new Tool.Result[] {info, list, qemu}) {
                assertThat(r.stdout() + r.stderr())
                        .doesNotContain("hidden-name", "description only", "8388608", "8 MiB", "export-size");
            }
            // qemu prints what the server said: that TLS is required, and nothing else.
            assertThat(qemu.stderr()).contains("TLS is required");
            assertThat(list.stderr()).contains("list");

            // With TLS the same clients see everything.
            String listed = Tool.run("nbdinfo", "--list", nbds(server, "", alice))
                    .assertSuccess()
                    .stdout();
            assertThat(listed)
                    .contains("export=\"disk\"", "export=\"hidden-name\"", "a description only TLS clients see");
        }
    }

    @Test
    void on_plaintextAndTlsClientsAreBothServed() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=on",
                "--tls-certificates",
                serverDir.toString(),
                "--export",
                "disk=memory:8M")) {
            Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4096", plain(server, "disk"))
                    .assertSuccess();

            String secure = Tool.run("nbdinfo", nbds(server, "disk", noCertificate))
                    .assertSuccess()
                    .stdout();
            String clear =
                    Tool.run("nbdinfo", plain(server, "disk")).assertSuccess().stdout();
            String read = Tool.run(qemu("qemu-io", server, "disk", noCertificate, "-r", "-c", "read -P 0x11 0 4096"))
                    .assertSuccess()
                    .stdout();

            assertThat(secure).contains("with TLS", "export-size: 8388608");
            assertThat(clear).contains("without TLS", "export-size: 8388608");
            assertThat(read).doesNotContain("Pattern verification failed");
        }
    }

    @Test
    void off_tlsClientsAreTurnedDown() throws Exception {
        try (ServerProcess server = ServerProcess.start("serve", "--port", "0", "--export", "disk=memory:8M")) {
            Tool.run("nbdinfo", nbds(server, "disk", alice)).assertFailure();
            Tool.run(qemu("qemu-img info", server, "disk", alice)).assertFailure();
            Tool.run("nbdinfo", plain(server, "disk")).assertSuccess();
        }
    }

    @Test
    void verifyPeer_refusesClientsWithoutACertificateOrWithAForeignOne() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=require",
                "--tls-certificates",
                serverDir.toString(),
                "--tls-verify-peer",
                "--export",
                "disk=memory:8M")) {
            Tool.run("nbdinfo", nbds(server, "disk", alice)).assertSuccess();
            Tool.run(qemu("qemu-io", server, "disk", bob, "-c", "write -P 0x22 0 512"))
                    .assertSuccess();

            Tool.run("nbdinfo", nbds(server, "disk", noCertificate)).assertFailure();
            Tool.run("nbdinfo", nbds(server, "disk", foreignCa)).assertFailure();
            Tool.run(qemu("qemu-io", server, "disk", noCertificate, "-r", "-c", "read 0 512"))
                    .assertFailure();

            assertThat(server.awaitLog("TLS handshake with 127.0.0.1:", Duration.ofSeconds(10)))
                    .isTrue();
            assertThat(server.log()).contains("client certificates required and verified", "failed:");
            // The connection that was refused is gone; the server still serves the others.
            Tool.run("nbdinfo", nbds(server, "disk", bob)).assertSuccess();
        }
    }

    @Test
    void allowSubject_onlyTheNamedClientSeesAndUsesTheExport() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--tls=require",
                "--tls-certificates",
                serverDir.toString(),
                "--export",
                "shared=memory:8M",
                "--export",
                "alices=memory:8M",
                "--export",
                "bobs=memory:8M",
                "--allow-subject",
                "alices=CN=alice,O=mqnbd",
                "--allow-subject",
                "bobs=bob")) {
            String aliceList = Tool.run("nbdinfo", "--list", nbds(server, "", alice))
                    .assertSuccess()
                    .stdout();
            String bobList = Tool.run("nbdinfo", "--list", nbds(server, "", bob))
                    .assertSuccess()
                    .stdout();
            String anonymousList = Tool.run("nbdinfo", "--list", nbds(server, "", noCertificate))
                    .assertSuccess()
                    .stdout();

            assertThat(aliceList)
                    .contains("export=\"shared\"", "export=\"alices\"")
                    .doesNotContain("bobs");
            assertThat(bobList).contains("export=\"shared\"", "export=\"bobs\"").doesNotContain("alices");
            assertThat(anonymousList).contains("export=\"shared\"").doesNotContain("alices", "bobs");

            Tool.run(qemu("qemu-io", server, "alices", alice, "-c", "write -P 0x33 0 4096"))
                    .assertSuccess();
            Tool.Result refused =
                    Tool.run("nbdinfo", nbds(server, "alices", bob)).assertFailure();
            Tool.Result missing =
                    Tool.run("nbdinfo", nbds(server, "nosuch", bob)).assertFailure();
            // A refused export looks exactly like a missing one (libnbd: ENOENT from NBD_REP_ERR_UNKNOWN).
            assertThat(refused.stderr().replace("alices", "X"))
                    .isEqualTo(missing.stderr().replace("nosuch", "X"));
            // A certificate with alice's subject from another CA is not alice.
            Tool.run("nbdinfo", nbds(server, "alices", foreignCa)).assertFailure();
            Tool.run(qemu("qemu-io", server, "alices", noCertificate, "-r", "-c", "read 0 512"))
                    .assertFailure();

            assertThat(server.log()).contains("refused 127.0.0.1:", "(CN=bob,O=mqnbd) access to export \"alices\"");
            assertThat(server.log()).contains("export \"alices\" admits only: subjects [CN=alice,O=mqnbd]");
        }
    }
}
