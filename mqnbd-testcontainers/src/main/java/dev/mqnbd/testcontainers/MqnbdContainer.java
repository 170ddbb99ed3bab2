package dev.mqnbd.testcontainers;

import com.github.dockerjava.api.exception.NotFoundException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.containers.output.Slf4jLogConsumer;
import org.testcontainers.containers.wait.strategy.Wait;
import org.testcontainers.images.ImagePullPolicy;
import org.testcontainers.utility.DockerImageName;
import org.testcontainers.utility.MountableFile;

/**
 * The mqnbd NBD server in a container: the {@code mqnbd} image with the exports, filters and TLS a test
 * asks for, reachable at {@link #getNbdUri(String)}.
 *
 * <pre>{@code
 * @Container
 * static final MqnbdContainer NBD = new MqnbdContainer()
 *         .withExport("disk", "memory:1G")
 *         .withExport("flaky", "memory:64M")
 *         .withFilter("flaky", "error,rate=10%,ops=read");
 *
 * @Test
 * void imageRoundTrip() {
 *     run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", "disk.img", NBD.getNbdUri("disk"));
 * }
 * }</pre>
 *
 * <p><b>The image.</b> {@code mqnbd:latest} is not on any registry: build it from a checkout of mqnbd with
 * {@code ./mvnw -B -DskipTests -pl nbd-server -am package} and {@code scripts/images/build server}, or
 * load a saved one with {@code docker load -i mqnbd.tar} ({@code docker save mqnbd:latest -o mqnbd.tar}
 * on the machine that built it). The container never pulls ({@link #NEVER_PULL}): when the image is
 * missing, {@link #start()} fails at once saying so, instead of waiting on a registry.
 *
 * <p><b>Startup.</b> The server is started with {@code mqnbd serve --listen 0.0.0.0} and the options set
 * here; the container counts as started when the server logs its {@code ready:} line, which follows the
 * {@code listening on} line of every address, so clients can connect from then on. The server's log is
 * forwarded to the SLF4J logger {@code dev.mqnbd.testcontainers.MqnbdContainer}; add more consumers with
 * {@link #withLogConsumer}.
 *
 * <p><b>Threading:</b> configure it from one thread before {@link #start()}, as any {@link GenericContainer}.
 */
public class MqnbdContainer extends GenericContainer<MqnbdContainer> {
    /** The image built by mqnbd's {@code scripts/images/build server}. */
    public static final DockerImageName DEFAULT_IMAGE = DockerImageName.parse("mqnbd:latest");

    /** The port the server listens on inside the container, the IANA port for NBD. */
    public static final int NBD_PORT = 10809;

    /** A pull policy that never pulls: the image is built or loaded locally. */
    public static final ImagePullPolicy NEVER_PULL = image -> false;

    /** Where {@link #withTls} puts the certificate directory in the container. */
    static final String TLS_DIR = "/etc/mqnbd/tls";

    private static final Logger LOG = LoggerFactory.getLogger(MqnbdContainer.class);

    private final Map<String, String> exports = new LinkedHashMap<>();
    private final List<String> filters = new ArrayList<>();
    private final List<String> extraArguments = new ArrayList<>();
    private boolean readOnly;
    private String tlsMode = "off";
    private boolean verifyPeer;

    /** Creates a container of {@link #DEFAULT_IMAGE}. */
    public MqnbdContainer() {
        this(DEFAULT_IMAGE);
    }

    /** Creates a container of {@code image}, an mqnbd server image (a tag of your own build, say). */
    public MqnbdContainer(DockerImageName image) {
        super(image);
        withImagePullPolicy(NEVER_PULL);
        withExposedPorts(NBD_PORT);
        waitingFor(Wait.forLogMessage(".* ready: .*\\n", 1).withStartupTimeout(Duration.ofSeconds(60)));
        withLogConsumer(new Slf4jLogConsumer(LOG));
    }

    /**
     * Serves export {@code name} from the backend {@code spec} inside the container, as {@code mqnbd serve
     * --export NAME=SPEC} does ({@code memory:SIZE}, {@code file:PATH[,create=SIZE]}, {@code s3://...});
     * the empty name is the default export. Without any, the server serves a default export of {@code
     * memory:1G}.
     *
     * @throws IllegalArgumentException if the name was given before, or the spec has no {@code scheme:}
     */
    public MqnbdContainer withExport(String name, String spec) {
        if (exports.containsKey(name)) {
            throw new IllegalArgumentException("export name \"" + name + "\" is given twice");
        }
        if (spec.indexOf(':') <= 0) {
            throw new IllegalArgumentException("export spec: \"" + spec + "\" (expected: SCHEME:..., e.g. memory:1G)");
        }
        exports.put(name, spec);
        return self();
    }

    /**
     * Stacks a filter on export {@code name} ({@code *}: every export), as {@code mqnbd serve --filter
     * NAME=KIND[,key=value...]} does: {@code cow}, {@code rate}, {@code error}, {@code delay} or {@code log}.
     * The first filter given is the one closest to the client. The server checks the settings when it starts.
     *
     * @param kindAndSettings e.g. {@code error,rate=100%,ops=read,status=EIO}
     * @throws IllegalArgumentException if {@code name} is not an export given before, nor {@code *}
     */
    public MqnbdContainer withFilter(String name, String kindAndSettings) {
        if (!name.equals("*") && !exports.containsKey(name)) {
            throw new IllegalArgumentException(
                    "no export is named \"" + name + "\" (expected: an export given before, or *)");
        }
        filters.add(name + "=" + Objects.requireNonNull(kindAndSettings, "kindAndSettings"));
        return self();
    }

    /** Serves every export read-only. */
    public MqnbdContainer withReadOnly() {
        this.readOnly = true;
        return self();
    }

    /**
     * Requires TLS of every client, with the certificates in {@code certificateDirectory}: {@code
     * server-cert.pem} and {@code server-key.pem}, and {@code ca-cert.pem} to verify clients (the layout
     * qemu, nbdkit and libnbd use). The directory is copied into the container. Clients then use {@code
     * nbds://} URIs, which {@link #getNbdUri} returns.
     *
     * @param verifyPeer whether clients need a certificate from {@code ca-cert.pem}'s CA
     * @throws IllegalArgumentException if the directory lacks {@code server-cert.pem} or {@code server-key.pem}
     */
    public MqnbdContainer withTls(Path certificateDirectory, boolean verifyPeer) {
        for (String file : List.of("server-cert.pem", "server-key.pem")) {
            if (!Files.isRegularFile(certificateDirectory.resolve(file))) {
                throw new IllegalArgumentException("TLS directory " + certificateDirectory + ": no " + file
                        + " (expected: server-cert.pem, " + "server-key.pem and, to verify clients, ca-cert.pem)");
            }
        }
        withCopyFileToContainer(MountableFile.forHostPath(certificateDirectory), TLS_DIR);
        this.tlsMode = "require";
        this.verifyPeer = verifyPeer;
        return self();
    }

    /** Adds {@code mqnbd serve} options of your own, e.g. {@code --queue-depth 32}. */
    public MqnbdContainer withServerArguments(String... arguments) {
        extraArguments.addAll(List.of(arguments));
        return self();
    }

    /**
     * Returns the URI of export {@code name} from the host: {@code nbd://HOST:PORT/NAME}, or {@code
     * nbds://...} with {@link #withTls}. Valid once the container has started.
     *
     * @throws IllegalArgumentException if no such export was configured
     * @throws IllegalStateException if the container is not running
     */
    public String getNbdUri(String name) {
        if (!exports.isEmpty() && !exports.containsKey(name) || exports.isEmpty() && !name.isEmpty()) {
            throw new IllegalArgumentException("no export is named \"" + name + "\" (expected: one of "
                    + (exports.isEmpty() ? List.of("") : exports.keySet()) + ")");
        }
        try {
            String scheme = tlsMode.equals("require") ? "nbds" : "nbd";
            return new URI(scheme, null, getHost(), getMappedPort(NBD_PORT), "/" + name, null, null).toString();
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("export name \"" + name + "\": " + e.getMessage(), e);
        }
    }

    /** Returns the URI of the default export ({@code ""}), or of the only export when there is one. */
    public String getNbdUri() {
        return getNbdUri(exports.size() == 1 ? exports.keySet().iterator().next() : "");
    }

    /** Returns the {@code mqnbd} command line the container runs, after its entry point. */
    public List<String> serverArguments() {
        List<String> args = new ArrayList<>(List.of("serve", "--listen", "0.0.0.0", "--port", "" + NBD_PORT));
        exports.forEach((name, spec) -> args.addAll(List.of("--export", name + "=" + spec)));
        for (String filter : filters) {
            args.addAll(List.of("--filter", filter));
        }
        if (readOnly) {
            args.add("--read-only");
        }
        if (!tlsMode.equals("off")) {
            args.addAll(List.of("--tls=" + tlsMode, "--tls-certificates", TLS_DIR));
            if (verifyPeer) {
                args.add("--tls-verify-peer");
            }
        }
        args.addAll(extraArguments);
        return args;
    }

    @Override
    protected void configure() {
        super.configure();
        setCommand(serverArguments().toArray(String[]::new));
        String image = getDockerImageName();
        try {
            getDockerClient().inspectImageCmd(image).exec();
        } catch (NotFoundException e) {
            throw new IllegalStateException(
                    "image " + image + " is not in the local Docker engine, and "
                            + "MqnbdContainer never pulls: build it from an mqnbd checkout with './mvnw -B -DskipTests -pl "
                            + "nbd-server -am package && scripts/images/build server', or 'docker load -i mqnbd.tar'",
                    e);
        }
    }
}
