package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Per-export access by client address ({@code --allow}) with real clients: an export a client may not use
 * is missing from its list and unknown when asked for, and the refusal is logged with the client's address.
 */
class AccessControlIT {
    @TempDir
    Path tmp;

    @Test
    void allow_cidr_loopbackAdmittedOrRefused() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--export",
                "open=memory:1M",
                "--export",
                "local=memory:2M",
                "--export",
                "lan=memory:3M",
                "--allow",
                "local=127.0.0.0/8,::1",
                "--allow",
                "lan=10.0.0.0/8,fd00::/8")) {
            String base = "nbd://127.0.0.1:" + server.port() + "/";

            String list = Tool.run("nbdinfo", "--list", base).assertSuccess().stdout();
            assertThat(list).contains("export=\"open\"", "export=\"local\"").doesNotContain("lan", "3145728");
            assertThat(Tool.run("nbdinfo", "--json", base + "local")
                            .assertSuccess()
                            .stdout())
                    .contains("\"export-size\": 2097152");
            Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x42 0 4096", base + "local")
                    .assertSuccess();

            Tool.Result refused = Tool.run("nbdinfo", base + "lan").assertFailure();
            Tool.Result missing = Tool.run("nbdinfo", base + "nal").assertFailure();
            assertThat(refused.stderr()).contains("No such file or directory");
            assertThat(refused.stderr().replace("lan", "X"))
                    .isEqualTo(missing.stderr().replace("nal", "X"));
            Tool.Result qemu = Tool.run("qemu-img", "info", base + "lan").assertFailure();
            assertThat(qemu.stderr()).contains("export: \"lan\" (expected: a known export)");

            assertThat(server.log()).containsPattern("refused 127\\.0\\.0\\.1:\\d+ access to export \"lan\"");
            assertThat(server.log())
                    .contains("export \"lan\" admits only: addresses [10.0.0.0/8, fd00:0:0:0:0:0:0:0/8]");
        }
    }

    @Test
    void allow_everyExport_refusesEverythingToOthers() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--export",
                "=memory:1M",
                "--export",
                "data=memory:1M",
                "--allow",
                "192.0.2.0/24")) {
            String base = "nbd://127.0.0.1:" + server.port() + "/";

            String list = Tool.run("nbdinfo", "--list", base).stdout();
            assertThat(list).doesNotContain("export=");
            Tool.run("nbdinfo", base).assertFailure();
            Tool.run("nbdinfo", base + "data").assertFailure();
            Tool.run("qemu-img", "info", base + "data").assertFailure();
        }
    }

    @Test
    void allow_ipv6_clientsAreToldApartByAddressFamily() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--listen",
                "127.0.0.1",
                "--listen",
                "::1",
                "--export",
                "v6=memory:1M",
                "--export",
                "v4=memory:1M",
                "--allow",
                "v6=::1/128",
                "--allow",
                "v4=127.0.0.1/32")) {
            String v4 = "nbd://127.0.0.1:" + server.port("127.0.0.1") + "/";
            String v6 = "nbd://[::1]:" + server.port("[0:0:0:0:0:0:0:1]") + "/";

            Tool.run("nbdinfo", v6 + "v6").assertSuccess();
            Tool.run("nbdinfo", v4 + "v4").assertSuccess();
            Tool.run("nbdinfo", v4 + "v6").assertFailure();
            // Refusals are logged at most once a second (a client can cause them at will): let a second pass.
            Thread.sleep(1_100);
            Tool.run("nbdinfo", v6 + "v4").assertFailure();
            assertThat(Tool.run("nbdinfo", "--list", v6).assertSuccess().stdout())
                    .contains("export=\"v6\"")
                    .doesNotContain("export=\"v4\"");
            assertThat(server.log()).containsPattern("refused \\[0:0:0:0:0:0:0:1]:\\d+ access to export \"v4\"");
        }
    }

    @Test
    void allow_unixSocketClients_countAsLoopback() throws Exception {
        Path socket = tmp.resolve("mqnbd.sock");
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--socket",
                socket.toString(),
                "--export",
                "local=memory:1M",
                "--export",
                "remote=memory:1M",
                "--allow",
                "local=127.0.0.1",
                "--allow",
                "remote=10.0.0.0/8")) {
            Tool.run("nbdinfo", "nbd+unix:///local?socket=" + socket).assertSuccess();
            Tool.run("nbdinfo", "nbd+unix:///remote?socket=" + socket).assertFailure();
            assertThat(Tool.run("nbdinfo", "--list", "nbd+unix:///?socket=" + socket)
                            .assertSuccess()
                            .stdout())
                    .contains("export=\"local\"")
                    .doesNotContain("remote");
            assertThat(server.log()).contains("access to export \"remote\"");
        }
    }

    @Test
    void allow_badArguments_exitTwoWithOneLine() {
        Tool.Result unknown =
                Tool.run(ServerProcess.command("serve", "--export", "a=memory:1M", "--allow", "b=10.0.0.0/8")
                        .toArray(String[]::new));
        Tool.Result hostName =
                Tool.run(ServerProcess.command("serve", "--export", "a=memory:1M", "--allow", "a=intranet.example")
                        .toArray(String[]::new));
        Tool.Result subjectWithoutTls =
                Tool.run(ServerProcess.command("serve", "--export", "a=memory:1M", "--allow-subject", "a=alice")
                        .toArray(String[]::new));

        assertThat(unknown.exitCode()).isEqualTo(2);
        assertThat(unknown.stderr()).contains("no export is named \"b\"");
        assertThat(hostName.exitCode()).isEqualTo(2);
        assertThat(hostName.stderr()).contains("intranet.example");
        assertThat(subjectWithoutTls.exitCode()).isEqualTo(2);
        assertThat(subjectWithoutTls.stderr()).contains("--allow-subject needs --tls=on or --tls=require");
    }
}
