package dev.mqnbd.server.embed;

import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.server.InheritedSocket;
import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.Transport;
import dev.mqnbd.server.protocol.NbdTls;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.storage.Backends;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;

/**
 * Builds and starts an mqnbd server in the calling process: the one way a server is put together, used by
 * the {@code mqnbd serve} command line, the JUnit extension and any program that embeds mqnbd.
 *
 * <pre>{@code
 * try (EmbeddedServer server = Mqnbd.newServer()
 *         .export("disk", "memory:1G")                    // any backend spec: memory:, file:, s3://
 *         .export("img", "file:/tmp/vm.img,create=8G")
 *         .filter("img", "delay,write=5ms")                // any filter: cow, rate, error, delay, log
 *         .faultInjection("disk")                          // rules a test adds while requests flow
 *         .start()) {                                     // loopback, a free port
 *     URI disk = server.uri("disk");                      // nbd://127.0.0.1:PORT/disk
 *     ...
 * }
 * }</pre>
 *
 * <p>Every setting has a default: no export named means one default export ({@code ""}) of {@code
 * memory:1G}; no address means {@code 127.0.0.1} on a free port; event loops default to the number of
 * CPUs, hardware queues to one per event loop, the queue depth to 128; the protocol limits and TLS are
 * those of {@link NbdServerConfig}. Setters check their argument at once and throw {@link
 * IllegalArgumentException} for a bad one, so a mistake points at the line that made it.
 *
 * <p><b>Threading:</b> a builder is used from one thread; {@link #start()} may be called more than once
 * (each call starts a server of its own, though a fixed port can only be bound once).
 */
public final class Mqnbd {
    /** The export served when none is named: a 1 GiB memory export under the default name {@code ""}. */
    public static final String DEFAULT_EXPORT_SPEC = "memory:1G";

    final Map<String, String> exports = new LinkedHashMap<>();
    final Map<String, String> descriptions = new HashMap<>();
    final List<FilterSpec> filters = new ArrayList<>();
    final Set<String> faultInjection = new HashSet<>();
    final Map<String, AccessList> access = new HashMap<>();
    final Map<String, String> backendSettings = new HashMap<>();
    final List<InetAddress> hosts = new ArrayList<>();
    final NbdServerConfig.Builder config = NbdServerConfig.builder();

    @Nullable
    Path socket;

    @Nullable
    InetSocketAddress metrics;

    @Nullable
    List<SocketAddress> sockets;

    int port;
    boolean readOnly;
    int eventLoops = Runtime.getRuntime().availableProcessors();
    Transport transport = Transport.best();

    @Nullable
    Integer hwQueues;

    int queueDepth = 128;
    Duration requestTimeout = Duration.ZERO;

    private Mqnbd() {}

    /** Returns a builder with every setting at its default. */
    public static Mqnbd newServer() {
        return new Mqnbd();
    }

    /**
     * Adds export {@code name} served from the backend {@code spec}: {@code memory:SIZE}, {@code
     * file:PATH[,create=SIZE][,direct]} or {@code s3://BUCKET/PREFIX[,...]}, as {@code mqnbd serve --export}
     * takes them. The empty name is the default export.
     *
     * @throws IllegalArgumentException if the name is taken, longer than 4096 bytes of UTF-8 or holds a NUL,
     *     or no backend serves the spec's scheme (the rest of the spec is checked by {@link #start()})
     */
    public Mqnbd export(String name, String spec) {
        Objects.requireNonNull(spec, "spec");
        if (name.getBytes(StandardCharsets.UTF_8).length > 4096 || name.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(
                    "export name: \"" + name + "\" (expected: at most 4096 bytes of UTF-8 without NUL)");
        }
        if (exports.containsKey(name)) {
            throw new IllegalArgumentException("export name " + quoted(name) + " is given twice");
        }
        Backends.forSpec(spec);
        exports.put(name, spec);
        return this;
    }

    /**
     * Sets the text clients see for export {@code name} ({@code nbdinfo --list}); default: none.
     *
     * @throws IllegalArgumentException if there is no such export yet, or the text is over 4096 bytes
     */
    public Mqnbd description(String name, String text) {
        requireExport(name);
        if (text.getBytes(StandardCharsets.UTF_8).length > 4096) {
            throw new IllegalArgumentException("description of " + quoted(name) + ": at most 4096 bytes (proto.md)");
        }
        descriptions.put(name, text);
        return this;
    }

    /**
     * Stacks a filter on export {@code name}, as {@code mqnbd serve --filter NAME=KIND[,key=value...]} does;
     * the first filter added is the one closest to the client. {@code name} {@code *} means every export.
     *
     * @param kindAndSettings e.g. {@code error,rate=1%,ops=write} or {@code cow}
     * @throws IllegalArgumentException if the filter kind is unknown, a setting malformed, or no export of
     *     that name was added yet
     */
    public Mqnbd filter(String name, String kindAndSettings) {
        return filter(FilterSpec.parse(name + "=" + kindAndSettings));
    }

    /**
     * Stacks the filter {@code spec} on the export it names ({@code *}: every export).
     *
     * @throws IllegalArgumentException if no export of that name was added yet
     */
    public Mqnbd filter(FilterSpec spec) {
        if (!spec.export().equals(FilterSpec.EVERY_EXPORT) && !exports.containsKey(spec.export())) {
            throw new IllegalArgumentException(
                    "no export is named \"" + spec.export() + "\" (expected: an export's name, or * for every export)");
        }
        filters.add(spec);
        return this;
    }

    /**
     * Puts an empty fault-injection layer on top of export {@code name}, closest to the client, for the
     * rules a test adds through {@link EmbeddedExport#faults()} while the server runs.
     *
     * @throws IllegalArgumentException if there is no such export yet
     */
    public Mqnbd faultInjection(String name) {
        requireExport(name);
        faultInjection.add(name);
        return this;
    }

    /**
     * Lets only the clients {@code list} admits see and use export {@code name}.
     *
     * @throws IllegalArgumentException if there is no such export yet
     */
    public Mqnbd restrict(String name, AccessList list) {
        requireExport(name);
        access.put(name, Objects.requireNonNull(list, "list"));
        return this;
    }

    /**
     * Sets a backend setting, such as {@code s3.endpoint}; each backend reads the keys under its scheme.
     *
     * @throws IllegalArgumentException if the key has no {@code scheme.} prefix
     */
    public Mqnbd backendSetting(String key, String value) {
        if (key.indexOf('.') <= 0) {
            throw new IllegalArgumentException("backend setting: \"" + key + "\" (expected: scheme.name)");
        }
        backendSettings.put(key, Objects.requireNonNull(value, "value"));
        return this;
    }

    /**
     * Listens on every address {@code host} resolves to ({@code localhost} may be 127.0.0.1 and ::1), on
     * {@link #port(int)}; repeatable. Default: 127.0.0.1 unless a Unix socket is set.
     *
     * @throws IllegalArgumentException if the host is unknown
     */
    public Mqnbd listen(String host) {
        try {
            for (InetAddress address : InetAddress.getAllByName(host)) {
                if (!hosts.contains(address)) {
                    hosts.add(address);
                }
            }
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("listen: " + host + ": unknown host", e);
        }
        return this;
    }

    /**
     * Sets the TCP port; 0, the default, picks a free one ({@link EmbeddedServer#port()} tells which).
     *
     * @throws IllegalArgumentException if the port is outside 0..65535
     */
    public Mqnbd port(int port) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port: " + port + " (expected: 0..65535)");
        }
        this.port = port;
        return this;
    }

    /**
     * Listens on a Unix socket at {@code path} (a stale socket file there is replaced); without {@link
     * #listen} the server then has no TCP listener.
     */
    public Mqnbd unixSocket(Path path) {
        this.socket = Objects.requireNonNull(path, "path");
        return this;
    }

    /** Serves every export read-only: writes, trims and zeroing fail with EPERM. */
    public Mqnbd readOnly(boolean readOnly) {
        this.readOnly = readOnly;
        return this;
    }

    /**
     * Sets the number of network threads (default: the number of CPUs).
     *
     * @throws IllegalArgumentException if {@code n} is outside 1..1024
     */
    public Mqnbd eventLoops(int n) {
        this.eventLoops = range("eventLoops", n, 1024);
        return this;
    }

    /**
     * Sets the network transport (default: {@link Transport#best()}, epoll where it loads). {@link #start()}
     * fails with the reason if the kernel does not allow it.
     */
    public Mqnbd transport(Transport transport) {
        this.transport = Objects.requireNonNull(transport, "transport");
        return this;
    }

    /** Returns the network transport {@link #start()} uses. */
    public Transport transport() {
        return transport;
    }

    /**
     * Sets the hardware queues per export (default: one per event loop).
     *
     * @throws IllegalArgumentException if {@code n} is outside 1..1024
     */
    public Mqnbd hwQueues(int n) {
        this.hwQueues = range("hwQueues", n, 1024);
        return this;
    }

    /**
     * Sets the requests in flight per hardware queue (default 128); a client past it waits.
     *
     * @throws IllegalArgumentException if {@code n} is outside 1..4096
     */
    public Mqnbd queueDepth(int n) {
        this.queueDepth = range("queueDepth", n, 4096);
        return this;
    }

    /**
     * Sets how long a request may be in flight before it is ended with a timeout status; {@link
     * Duration#ZERO}, the default, for never. A fault rule that drops requests needs one.
     *
     * @throws IllegalArgumentException if {@code timeout} is negative
     */
    public Mqnbd requestTimeout(Duration timeout) {
        if (timeout.isNegative()) {
            throw new IllegalArgumentException("requestTimeout: " + timeout + " (expected: >= 0)");
        }
        this.requestTimeout = timeout;
        return this;
    }

    /** Sets the TLS the handshake offers or requires (default: off). */
    public Mqnbd tls(NbdTls tls) {
        config.tls(tls);
        return this;
    }

    /**
     * Changes protocol limits and TLS on the server's {@link NbdServerConfig.Builder}, e.g. {@code
     * config(c -> c.maxPayload(1 << 20).idleTimeout(Duration.ofMinutes(1)))}.
     *
     * @throws IllegalArgumentException as the {@link NbdServerConfig.Builder} setters do
     */
    public Mqnbd config(Consumer<NbdServerConfig.Builder> settings) {
        settings.accept(config);
        return this;
    }

    /** Serves Prometheus metrics at {@code http://ADDRESS:PORT/metrics} (port 0: a free one); default: off. */
    public Mqnbd metrics(InetSocketAddress address) {
        this.metrics = Objects.requireNonNull(address, "address");
        return this;
    }

    /**
     * Opens every export, binds every address and starts serving; returns once clients can connect.
     *
     * @throws IllegalArgumentException if an export's spec or a filter's settings are malformed
     * @throws IOException if an export's storage cannot be opened, or an address cannot be bound; whatever
     *     was opened is closed again then
     */
    public EmbeddedServer start() throws IOException {
        return ServerStart.start(this);
    }

    /** Returns the exports to open, the default one if none was added. */
    Map<String, String> exportsOrDefault() {
        return exports.isEmpty() ? Map.of("", DEFAULT_EXPORT_SPEC) : exports;
    }

    /**
     * Serves on exactly {@code addresses} instead of those {@link #listen}, {@link #port} and {@link
     * #unixSocket} describe: addresses to bind, or listening sockets already open ({@link
     * InheritedSocket}, as a service manager or a server handing over passes them).
     */
    public Mqnbd listenOn(List<? extends SocketAddress> addresses) {
        if (addresses.isEmpty()) {
            throw new IllegalArgumentException("no address to listen on");
        }
        this.sockets = List.copyOf(addresses);
        return this;
    }

    /** Returns the addresses {@link #start()} binds (or the sockets it serves on, after {@link #listenOn}). */
    public List<SocketAddress> addresses() {
        List<SocketAddress> given = sockets;
        if (given != null) {
            return given;
        }
        List<SocketAddress> result = new ArrayList<>();
        if (socket != null) {
            result.add(UnixDomainSocketAddress.of(socket));
        }
        List<InetAddress> tcp = hosts.isEmpty() && socket == null ? List.of(InetAddress.getLoopbackAddress()) : hosts;
        for (InetAddress host : tcp) {
            result.add(new InetSocketAddress(host, port));
        }
        return result;
    }

    private void requireExport(String name) {
        if (!exports.containsKey(name)) {
            throw new IllegalArgumentException("no export is named \"" + name + "\"");
        }
    }

    static String quoted(String name) {
        return name.isEmpty() ? "\"\" (default)" : "\"" + name + "\"";
    }

    private static int range(String setting, int n, int max) {
        if (n < 1 || n > max) {
            throw new IllegalArgumentException(setting + ": " + n + " (expected: 1.." + max + ")");
        }
        return n;
    }
}
