package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The {@code mqnbd} command line as users run it: the jar in its own process, stopped with SIGTERM. */
class CliIT {
    @TempDir
    Path tmp;

    @Test
    void serve_noArguments_servesOneGiBMemoryExportOnDefaultPort() throws Exception {
        try (ServerProcess server = ServerProcess.start("serve")) {
            String out = Tool.run("nbdinfo", "--json", "nbd://localhost")
                    .assertSuccess()
                    .stdout();

            assertThat(out).contains("\"export-size\": 1073741824", "\"is_read_only\": false");
            assertThat(server.log()).contains("listening on 127.0.0.1:10809");
            assertThat(server.stop(Duration.ofSeconds(30))).isIn(0, 143);
            assertThat(server.log()).contains("stopping", "stopped");
        }
    }

    @Test
    void serve_namedExports_writeReadAndStopGracefully() throws Exception {
        try (ServerProcess server =
                ServerProcess.start("serve", "--port", "0", "--export", "=memory:64M", "--export", "data=memory:1T")) {
            String base = "nbd://127.0.0.1:" + server.port() + "/";
            String list = Tool.run("nbdinfo", "--list", base).assertSuccess().stdout();
            assertThat(list).contains("export=\"data\"", "export=\"\"");

            Tool.run("qemu-io", "-f", "raw", "-c", "write -P 0x3c 999999 12345", base + "data")
                    .assertSuccess();
            String read = Tool.run("qemu-io", "-f", "raw", "-r", "-c", "read -P 0x3c 999999 12345", base + "data")
                    .assertSuccess()
                    .stdout();
            assertThat(read).doesNotContain("Pattern verification failed");

            assertThat(server.stop(Duration.ofSeconds(30))).isIn(0, 143);
            assertThat(server.log()).contains("export \"data\": memory:1T", "stopped");
        }
    }

    @Test
    void serve_description_isWhatClientsSee() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve", "--port", "0", "--export", "disk=memory:1M", "--description", "disk=Scratch disk for tests")) {
            String base = "nbd://127.0.0.1:" + server.port() + "/";
            String list = Tool.run("nbdinfo", "--list", base).assertSuccess().stdout();
            String info =
                    Tool.run("nbdinfo", "--json", base + "disk").assertSuccess().stdout();

            assertThat(list).contains("description: Scratch disk for tests");
            assertThat(info).contains("\"description\": \"Scratch disk for tests\"");
            server.stop(Duration.ofSeconds(30));
        }
        Tool.Result unknown =
                Tool.run(ServerProcess.command("serve", "--export", "a=memory:1M", "--description", "b=text")
                        .toArray(String[]::new));
        assertThat(unknown.exitCode()).isEqualTo(2);
        assertThat(unknown.stderr()).contains("no export is named \"b\"");
    }

    @Test
    void serve_unixSocket_servesClients() throws Exception {
        Path socket = tmp.resolve("mqnbd.sock");
        try (ServerProcess server =
                ServerProcess.start("serve", "--socket", socket.toString(), "--export", "=memory:16M")) {
            String out = Tool.run("nbdinfo", "--json", "nbd+unix:///?socket=" + socket)
                    .assertSuccess()
                    .stdout();

            assertThat(out).contains("\"export-size\": 16777216");
            server.stop(Duration.ofSeconds(30));
        }
        assertThat(socket).doesNotExist();
    }

    @Test
    void serve_readOnly_refusesWrites() throws Exception {
        try (ServerProcess server = ServerProcess.start("serve", "--port", "0", "--read-only")) {
            Tool.Result result =
                    Tool.run("qemu-io", "-f", "raw", "-c", "write 0 4096", "nbd://127.0.0.1:" + server.port());

            assertThat(result.stdout() + result.stderr()).containsIgnoringCase("permission");
            server.stop(Duration.ofSeconds(30));
        }
    }

    @Test
    void help_showsExamples() {
        String out = Tool.run(ServerProcess.command("serve", "--help").toArray(String[]::new))
                .assertSuccess()
                .stdout();

        assertThat(out).contains("--export", "NAME=SPEC", "Examples:", "memory:SIZE", "--listen", "--socket");
    }

    @Test
    void version_printsVersion() {
        String out = Tool.run(ServerProcess.command("--version").toArray(String[]::new))
                .assertSuccess()
                .stdout();

        assertThat(out).startsWith("mqnbd ");
    }

    @Test
    void badFlag_oneLineErrorAndExitTwo() {
        Tool.Result result = Tool.run(ServerProcess.command("serve", "--bogus").toArray(String[]::new));

        assertThat(result.exitCode()).isEqualTo(2);
        assertThat(result.stderr().lines().findFirst()).hasValue("mqnbd: Unknown option: '--bogus'");
    }

    @Test
    void duplicateExportName_exitTwo() {
        Tool.Result result = Tool.run(
                ServerProcess.command("serve", "--port", "0", "--export", "a=memory:1M", "--export", "a=memory:2M")
                        .toArray(String[]::new));

        assertThat(result.exitCode()).isEqualTo(2);
        assertThat(result.stderr()).startsWith("mqnbd: ").contains("given twice");
    }

    @Test
    void impossibleSize_exitTwo() {
        for (String spec : new String[] {"=memory:12X", "=memory:0", "=memory:-1G", "=memory:99999999E"}) {
            Tool.Result result = Tool.run(ServerProcess.command("serve", "--port", "0", "--export", spec)
                    .toArray(String[]::new));

            assertThat(result.exitCode()).as(spec).isEqualTo(2);
            assertThat(result.stderr()).as(spec).startsWith("mqnbd: --export " + spec);
        }
    }

    @Test
    void unknownBackendOrMissingName_exitTwo() {
        Tool.Result unknown = Tool.run(
                ServerProcess.command("serve", "--export", "x=floppy:1M").toArray(String[]::new));
        Tool.Result noName =
                Tool.run(ServerProcess.command("serve", "--export", "memory:1M").toArray(String[]::new));

        assertThat(unknown.exitCode()).isEqualTo(2);
        assertThat(unknown.stderr()).contains("unknown backend \"floppy\"");
        assertThat(noName.exitCode()).isEqualTo(2);
        assertThat(noName.stderr()).contains("expected NAME=SPEC");
    }

    @Test
    void portInUse_failsWithClearMessage() throws Exception {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            Tool.Result result = Tool.run(ServerProcess.command(
                            "serve", "--listen", "127.0.0.1", "--port", Integer.toString(taken.getLocalPort()))
                    .toArray(String[]::new));

            assertThat(result.exitCode()).isEqualTo(1);
            assertThat(result.stdout() + result.stderr())
                    .contains("cannot listen on 127.0.0.1:" + taken.getLocalPort());
        }
    }
}
