package dev.mqnbd.it;

import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** An mqnbd server in the test JVM on a free loopback port, with the exports a test asks for. */
final class ServerFixture implements AutoCloseable {
    static final int MAX_PAYLOAD = 32 << 20;

    private final NbdServer server;

    private ServerFixture(NbdServer server) {
        this.server = server;
    }

    /** Starts a builder; exports are added as {@code name, spec, readOnly}. */
    static Builder builder() {
        return new Builder();
    }

    int port() {
        return server.port();
    }

    /** Returns the NBD URI of export {@code name} ({@code ""} is the default export). */
    String uri(String name) {
        return "nbd://127.0.0.1:" + port() + "/" + name;
    }

    NbdServer server() {
        return server;
    }

    @Override
    public void close() {
        server.close();
    }

    static final class Builder {
        private record Spec(String name, String spec, boolean readOnly) {}

        private final List<Spec> exports = new ArrayList<>();
        private int eventLoops = 2;
        private int queueDepth = 64;
        private Path socket;

        Builder export(String name, String spec) {
            exports.add(new Spec(name, spec, false));
            return this;
        }

        Builder readOnlyExport(String name, String spec) {
            exports.add(new Spec(name, spec, true));
            return this;
        }

        Builder eventLoops(int n) {
            this.eventLoops = n;
            return this;
        }

        Builder queueDepth(int depth) {
            this.queueDepth = depth;
            return this;
        }

        Builder socket(Path path) {
            this.socket = path;
            return this;
        }

        ServerFixture start() throws Exception {
            EventLoopGroup group = NbdServer.newEventLoopGroup(eventLoops);
            ExportRegistry registry = new ExportRegistry();
            for (Spec spec : exports) {
                QueueSetup setup = new QueueSetup(
                        spec.name().isEmpty() ? "default" : spec.name(),
                        eventLoops,
                        queueDepth,
                        NbdServer.hctxExecutors(group),
                        Duration.ZERO);
                registry.open(
                        spec.name(), spec.spec(), spec.spec(), new DeviceOptions(spec.readOnly()), setup, MAX_PAYLOAD);
            }
            List<SocketAddress> listen = new ArrayList<>();
            listen.add(new InetSocketAddress("127.0.0.1", 0));
            if (socket != null) {
                listen.add(UnixDomainSocketAddress.of(socket));
            }
            return new ServerFixture(NbdServer.start(group, registry, listen, MAX_PAYLOAD));
        }
    }
}
