package dev.mqnbd.it.container;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.testcontainers.containers.Container.ExecResult;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.utility.DockerImageName;

/** Starts the project's containers and runs commands in them, each with a time limit. */
public final class Containers {
    /** The server's name on the test network. */
    public static final String SERVER_HOST = "mqnbd";

    public static final int NBD_PORT = 10809;

    private Containers() {}

    /**
     * Starts the server image on {@code network} as {@value #SERVER_HOST}, listening on every interface,
     * with {@code serveArgs} after {@code serve --listen 0.0.0.0}; waits until it logs that it is ready.
     */
    public static GenericContainer<?> startServer(Network network, List<String> serveArgs) {
        return startServer(network, serveArgs, Map.of());
    }

    /** As {@link #startServer(Network, List)}, with {@code env} in the server's environment. */
    public static GenericContainer<?> startServer(Network network, List<String> serveArgs, Map<String, String> env) {
        List<String> command =
                new ArrayList<>(List.of("serve", "--listen", "0.0.0.0", "--port", Integer.toString(NBD_PORT)));
        command.addAll(serveArgs);
        GenericContainer<?> server = new GenericContainer<>(DockerImageName.parse(TestImages.SERVER))
                .withImagePullPolicy(new NeverPull())
                .withNetwork(network)
                .withNetworkAliases(SERVER_HOST)
                .withCommand(command.toArray(String[]::new))
                .withEnv(env)
                .waitingFor(Wait.forLogMessage(".* ready: .*\\n", 1).withStartupTimeout(Duration.ofSeconds(60)));
        try {
            server.start();
        } catch (RuntimeException e) {
            String log = server.getLogs();
            server.stop();
            throw new AssertionError("the server container did not become ready: " + e.getMessage() + "\n" + log, e);
        }
        return server;
    }

    /** Starts a client container of {@code client} on {@code network}; it idles until commands are run in it. */
    public static GenericContainer<?> startClient(Network network, ClientImage client) {
        GenericContainer<?> container = new GenericContainer<>(DockerImageName.parse(client.image()))
                .withImagePullPolicy(new NeverPull())
                .withNetwork(network)
                .withCommand("sleep", "infinity");
        container.start();
        return container;
    }

    /** Stops every container given, ignoring nulls; no reaper runs here, so tests stop what they start. */
    public static void stopAll(GenericContainer<?>... containers) {
        for (GenericContainer<?> c : containers) {
            if (c != null) {
                c.stop();
            }
        }
    }

    /** Runs the shell script {@code script} in {@code container} with {@code sh -c}, killed after {@code limit}. */
    public static Exec sh(GenericContainer<?> container, Duration limit, String script) {
        return exec(container, limit, "sh", "-c", script);
    }

    /** Runs {@code command} in {@code container}, killed after {@code limit} (which fails the test). */
    public static Exec exec(GenericContainer<?> container, Duration limit, String... command) {
        List<String> full = new ArrayList<>(List.of("timeout", "-k", "10", Long.toString(limit.toSeconds())));
        full.addAll(List.of(command));
        try {
            ExecResult r = container.execInContainer(full.toArray(String[]::new));
            Exec result = new Exec(List.of(command), r.getExitCode(), r.getStdout(), r.getStderr());
            if (r.getExitCode() == 124 || r.getExitCode() == 137) {
                throw new AssertionError(result.describe("did not finish within " + limit));
            }
            return result;
        } catch (IOException e) {
            throw new AssertionError("cannot run " + command[0] + " in " + container.getDockerImageName(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /** What a command run in a container left behind. */
    public record Exec(List<String> command, int exitCode, String stdout, String stderr) {
        /** Asserts a zero exit status, showing the output otherwise; returns this. */
        public Exec assertSuccess() {
            assertThat(exitCode).as(describe("exited " + exitCode)).isZero();
            return this;
        }

        /** Asserts a non-zero exit status; returns this. */
        public Exec assertFailure() {
            assertThat(exitCode).as(describe("should have failed")).isNotZero();
            return this;
        }

        String describe(String what) {
            return String.join(" ", command) + " " + what + "\nstdout:\n" + stdout + "\nstderr:\n" + stderr;
        }
    }
}
