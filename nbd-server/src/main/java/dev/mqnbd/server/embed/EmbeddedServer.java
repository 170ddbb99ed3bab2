package dev.mqnbd.server.embed;

import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.metrics.MetricsEndpoint;
import dev.mqnbd.server.protocol.NbdTlsMode;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * A running mqnbd server started by {@link Mqnbd#start()}: where clients reach each export, each export's
 * contents from the test's side, and a graceful stop.
 *
 * <pre>{@code
 * try (EmbeddedServer server = Mqnbd.newServer().export("disk", "memory:64M").start()) {
 *     run("nbdcopy", "disk.img", server.uri("disk").toString());
 *     assertEquals(sha256Of("disk.img"), server.export("disk").sha256(0, Files.size(Path.of("disk.img"))));
 * }
 * }</pre>
 *
 * <p><b>Ownership:</b> the server owns its event loops, exports and metrics endpoint; {@link #close()}
 * releases them all. <b>Threading:</b> every method may be called from any thread; {@link #close()} waits
 * for the clients' requests in flight, so do not call it from a client callback.
 */
public final class EmbeddedServer implements AutoCloseable {
    private final NbdServer server;
    private final ExportRegistry registry;
    private final @Nullable MetricsEndpoint metrics;

    EmbeddedServer(NbdServer server, ExportRegistry registry, @Nullable MetricsEndpoint metrics) {
        this.server = server;
        this.registry = registry;
        this.metrics = metrics;
    }

    /** Returns the names of the exports served, in the order they were added. */
    public List<String> exportNames() {
        return registry.all().stream().map(Export::name).toList();
    }

    /**
     * Returns the URI a client such as {@code nbdinfo}, {@code nbdcopy} or {@code qemu-img} opens export
     * {@code name} with: {@code nbd://127.0.0.1:PORT/NAME} over TCP (a wildcard listen address is given as
     * the loopback address), {@code nbd+unix:///NAME?socket=PATH} for a server on a Unix socket only, and
     * {@code nbds} / {@code nbds+unix} when TLS is required.
     *
     * @throws IllegalArgumentException if there is no such export
     */
    public URI uri(String name) {
        requireExport(name);
        boolean tls = server.config().tls().mode() == NbdTlsMode.REQUIRE;
        InetSocketAddress tcp = tcpAddress();
        try {
            if (tcp != null) {
                InetAddress host = tcp.getAddress();
                if (host.isAnyLocalAddress()) {
                    host = InetAddress.getLoopbackAddress();
                }
                InetSocketAddress target = new InetSocketAddress(host, tcp.getPort());
                return new URI(
                        tls ? "nbds" : "nbd", null, ServerStart.host(target), tcp.getPort(), "/" + name, null, null);
            }
            Path socket = socket().orElseThrow();
            return new URI(tls ? "nbds+unix" : "nbd+unix", "", "/" + name, "socket=" + socket, null);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("export name " + Mqnbd.quoted(name) + ": " + e.getMessage(), e);
        }
    }

    /** Returns the URI of the only export, or of the default export when there are several. */
    public URI uri() {
        List<String> names = exportNames();
        return uri(names.size() == 1 ? names.getFirst() : "");
    }

    /**
     * Returns export {@code name} as the test sees it: read, write, checksum, inject faults.
     *
     * @throws IllegalArgumentException if there is no such export
     */
    public EmbeddedExport export(String name) {
        return new EmbeddedExport(requireExport(name), registry.filters(name), registry.stack(name));
    }

    /** Returns the first TCP port the server listens on, or -1 when it listens on a Unix socket only. */
    public int port() {
        return server.port();
    }

    /** Returns the Unix socket the server listens on, if any. */
    public Optional<Path> socket() {
        for (SocketAddress address : server.boundAddresses()) {
            if (address instanceof UnixDomainSocketAddress unix) {
                return Optional.of(unix.getPath());
            }
        }
        return Optional.empty();
    }

    /** Returns every address the server listens on, with the ports the system chose. */
    public List<SocketAddress> addresses() {
        return server.boundAddresses();
    }

    /** Returns the port of the Prometheus metrics endpoint, or -1 when metrics are off. */
    public int metricsPort() {
        return metrics == null ? -1 : metrics.port();
    }

    /**
     * Returns the NBD server underneath: its listening sockets, {@link NbdServer#pauseAccepting()} and {@link
     * NbdServer#handOver()}, for handing the clients over to a next process.
     */
    public NbdServer nbdServer() {
        return server;
    }

    /** Closes the metrics endpoint now, freeing its port for a next process; {@link #close()} would too. */
    public void closeMetrics() {
        if (metrics != null) {
            metrics.close();
        }
    }

    /** Returns the number of client connections open now. */
    public int connectionCount() {
        return server.connectionCount();
    }

    /**
     * Stops gracefully: stops accepting, lets every connection finish and answer what it has in flight (up
     * to 30 s), closes the exports (a file export's data is on its file), stops the threads. A second call
     * does nothing.
     */
    @Override
    public void close() {
        server.close();
        closeMetrics();
    }

    private Export requireExport(String name) {
        Export export = registry.get(name);
        if (export == null) {
            throw new IllegalArgumentException(
                    "no export is named " + Mqnbd.quoted(name) + " (expected: one of " + exportNames() + ")");
        }
        return export;
    }

    private @Nullable InetSocketAddress tcpAddress() {
        for (SocketAddress address : server.boundAddresses()) {
            if (address instanceof InetSocketAddress inet) {
                return inet;
            }
        }
        return null;
    }
}
