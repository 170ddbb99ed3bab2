package dev.mqnbd.it.container;

import com.github.dockerjava.api.exception.InternalServerErrorException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.Network;
import org.testcontainers.containers.wait.strategy.Wait;

/**
 * The S3-compatible server of the S3 tests, one of the {@link S3Store}s (S3Proxy unless a test asks for
 * another), in a container of its locally built image, with bucket {@value #BUCKET}. Other containers on
 * its network reach it as {@code http://s3:PORT}; the host and the VM tests reach it on a mapped loopback
 * port.
 *
 * <p><b>Ownership:</b> whoever starts it stops it ({@link #close}); no reaper runs here.
 */
public final class S3Server implements AutoCloseable {
    public static final String BUCKET = "mqnbd";
    public static final String ALIAS = "s3";
    static final String IDENTITY = "mqnbd";
    static final String CREDENTIAL = "mqnbd-secret";

    private final S3Store store;
    private final GenericContainer<?> container;
    private volatile boolean paused;

    private S3Server(S3Store store, GenericContainer<?> container) {
        this.store = store;
        this.container = container;
    }

    /** Starts S3Proxy ({@link S3Store#S3PROXY}): see {@link #start(S3Store, Network)}. */
    public static S3Server start(Network network) {
        return start(S3Store.S3PROXY, network);
    }

    /**
     * Builds the image of {@code store} unless it is up to date and starts the server, on {@code network} as
     * {@value #ALIAS} when {@code network} is not null, with its port mapped to loopback either way.
     */
    public static S3Server start(S3Store store, Network network) {
        store.ensureImage();
        GenericContainer<?> container = store.container(IDENTITY, CREDENTIAL, BUCKET)
                .waitingFor(Wait.forLogMessage(store.readyLine(), 1).withStartupTimeout(Duration.ofSeconds(60)));
        if (network != null) {
            container.withNetwork(network).withNetworkAliases(ALIAS);
        }
        try {
            container.start();
        } catch (RuntimeException e) {
            String log = container.getLogs();
            container.stop();
            throw new AssertionError("the " + store + " container did not start: " + e.getMessage() + "\n" + log, e);
        }
        return new S3Server(store, container);
    }

    /** Returns the endpoint for containers on the server's network. */
    public String networkEndpoint() {
        return "http://" + ALIAS + ":" + store.port();
    }

    /** Returns the endpoint on the host's loopback. */
    public String hostEndpoint() {
        return "http://127.0.0.1:" + container.getMappedPort(store.port());
    }

    /**
     * Returns the backend settings ({@code DeviceOptions} keys) of a server that reaches this store at
     * {@code endpoint}.
     */
    public static Map<String, String> settings(String endpoint) {
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("s3.endpoint", endpoint);
        settings.put("s3.region", "us-east-1");
        settings.put("s3.path-style", "true");
        return settings;
    }

    /** Returns the command-line options of a server that reaches this store at {@code endpoint}. */
    public static List<String> serveArgs(String endpoint) {
        return List.of("--s3-endpoint", endpoint, "--s3-region", "us-east-1", "--s3-path-style");
    }

    /** Returns the environment that gives a server this store's credentials (the SDK's default chain). */
    public static Map<String, String> credentialsEnv() {
        return Map.of("AWS_ACCESS_KEY_ID", IDENTITY, "AWS_SECRET_ACCESS_KEY", CREDENTIAL);
    }

    /**
     * Freezes the server ({@code docker pause}): a real outage, in which requests hang rather than fail;
     * {@link #unpause} ends it.
     */
    public void pause() {
        // runc gives up a freeze it cannot finish in time and fails with "unable to freeze" (seen once on this
        // 2-core machine under a full test run); its freezer thaws the cgroup before it returns that error, so
        // the store runs on and another try is safe. Five failures in a row still fail the test.
        for (int attempt = 1; ; attempt++) {
            try {
                DockerClientFactory.instance()
                        .client()
                        .pauseContainerCmd(container.getContainerId())
                        .exec();
                break;
            } catch (InternalServerErrorException e) {
                if (attempt == 5 || e.getMessage() == null || !e.getMessage().contains("unable to freeze")) {
                    throw e;
                }
                try {
                    Thread.sleep(200);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
        paused = true;
    }

    /** Ends a {@link #pause}; does nothing when the server is not paused. */
    public void unpause() {
        if (paused) {
            DockerClientFactory.instance()
                    .client()
                    .unpauseContainerCmd(container.getContainerId())
                    .exec();
            paused = false;
        }
    }

    /** Returns which store this is. */
    public S3Store store() {
        return store;
    }

    /**
     * Returns the keys of the objects the server holds in {@value #BUCKET} under {@code prefix}, sorted, as
     * the store itself lists them from inside its container (S3Proxy: the files of its filesystem store;
     * RGW: its own listing), not through mqnbd.
     */
    public List<String> objectKeys(String prefix) {
        try {
            var found =
                    container.execInContainer(store.listCommand(BUCKET, prefix).toArray(String[]::new));
            if (found.getExitCode() != 0) {
                throw new AssertionError("listing the " + store + " store failed: " + found.getStderr());
            }
            return found.getStdout()
                    .lines()
                    .map(line -> store.key(line, BUCKET))
                    .sorted()
                    .toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while listing the " + store + " store", e);
        }
    }

    /** Returns the server's log so far, for failure messages. */
    public String logs() {
        return container.getLogs();
    }

    @Override
    public void close() {
        unpause();
        container.stop();
    }
}
