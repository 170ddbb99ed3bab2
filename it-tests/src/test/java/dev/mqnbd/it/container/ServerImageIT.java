package dev.mqnbd.it.container;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.startupcheck.OneShotStartupCheckStrategy;
import org.testcontainers.utility.DockerImageName;

/** The server image as the README tells users to run it: its default command, its CLI, a graceful stop. */
class ServerImageIT {
    private static Network network;
    private static GenericContainer<?> client;

    @BeforeAll
    static void start() {
        TestImages.ensureContainerImages();
        network = Network.newNetwork();
        client = Containers.startClient(network, ClientImage.TRIXIE);
    }

    @AfterAll
    static void stop() {
        Containers.stopAll(client);
        if (network != null) {
            network.close();
        }
    }

    @Test
    void defaultCommand_servesOneGiBDefaultExportOnEveryInterface_andStopsGracefully() {
        GenericContainer<?> server = new GenericContainer<>(DockerImageName.parse(TestImages.SERVER))
                .withImagePullPolicy(new NeverPull())
                .withNetwork(network)
                .withNetworkAliases(Containers.SERVER_HOST)
                .waitingFor(org.testcontainers.containers.wait.strategy.Wait.forLogMessage(".* ready: .*\\n", 1)
                        .withStartupTimeout(Duration.ofSeconds(60)));
        try {
            server.start();
            String out = Containers.exec(
                            client, Duration.ofMinutes(1), "nbdinfo", "--json", "nbd://" + Containers.SERVER_HOST)
                    .assertSuccess()
                    .stdout();
            assertThat(out).contains("\"export-size\": 1073741824", "\"is_read_only\": false");
            assertThat(server.getLogs()).contains("listening on 0.0.0.0:10809 (EPOLL)");

            // docker stop sends SIGTERM: the server drains and says so before the container ends.
            server.getDockerClient()
                    .stopContainerCmd(server.getContainerId())
                    .withTimeout(30)
                    .exec();
            assertThat(server.getLogs()).contains("stopping", "stopped");
            Long exit = server.getDockerClient()
                    .inspectContainerCmd(server.getContainerId())
                    .exec()
                    .getState()
                    .getExitCodeLong();
            assertThat(exit).isIn(0L, 143L);
        } finally {
            server.stop();
        }
    }

    @Test
    void version_printsVersion() {
        try (GenericContainer<?> once = new GenericContainer<>(DockerImageName.parse(TestImages.SERVER))
                .withImagePullPolicy(new NeverPull())
                .withCommand("--version")
                .withStartupCheckStrategy(new OneShotStartupCheckStrategy().withTimeout(Duration.ofSeconds(60)))) {
            once.start();
            assertThat(once.getLogs()).startsWith("mqnbd ");
        }
    }

    @Test
    void readOnlyNamedExports_refuseWrites() {
        GenericContainer<?> server = Containers.startServer(
                network, List.of("--read-only", "--export", "=memory:8M", "--export", "data=memory:1T"));
        try {
            String base = "nbd://" + Containers.SERVER_HOST + "/";
            String list = Containers.exec(client, Duration.ofMinutes(1), "nbdinfo", "--list", base)
                    .assertSuccess()
                    .stdout();
            assertThat(list).contains("export=\"data\"", "export=\"\"");
            Containers.Exec write = Containers.exec(
                    client, Duration.ofMinutes(1), "qemu-io", "-f", "raw", "-c", "write 0 4096", base + "data");
            assertThat(write.stdout() + write.stderr()).containsIgnoringCase("permission");
        } finally {
            server.stop();
        }
    }
}
