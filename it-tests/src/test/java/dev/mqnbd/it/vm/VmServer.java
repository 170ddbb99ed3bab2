package dev.mqnbd.it.vm;

import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.it.container.S3Server;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * An mqnbd server in the test JVM on loopback, which the guest reaches at 10.0.2.2; it can be restarted
 * on the same port (a new server with freshly opened exports).
 */
final class VmServer implements AutoCloseable {
    private static final int MAX_PAYLOAD = 32 << 20;
    private static final int EVENT_LOOPS = 2;

    private final Map<String, String> exports;
    private final List<FilterSpec> filters;
    private final DeviceOptions options;
    private ExportRegistry registry;
    private NbdServer server;
    private final int port;

    private VmServer(Map<String, String> exports, Map<String, String> settings, List<FilterSpec> filters)
            throws Exception {
        this.exports = exports;
        this.filters = filters;
        this.options = new DeviceOptions(false, settings);
        this.server = open(0);
        this.port = server.port();
    }

    /** Starts a server with {@code exports} (name to backend spec) on a free loopback port. */
    static VmServer start(Map<String, String> exports) throws Exception {
        return new VmServer(exports, Map.of(), List.of());
    }

    /**
     * Starts a server with {@code exports} and {@code filters} stacked on them as {@code --filter} stacks them
     * (the same {@link ExportRegistry#open} call), on a free loopback port.
     */
    static VmServer start(Map<String, String> exports, List<FilterSpec> filters) throws Exception {
        return new VmServer(exports, Map.of(), filters);
    }

    /**
     * Starts a server with {@code exports} and the backend {@code settings} ({@code DeviceOptions} keys).
     * S3 exports take their credentials from {@link S3Server#credentialsEnv()}, given to the SDK of this
     * JVM as system properties.
     */
    static VmServer start(Map<String, String> exports, Map<String, String> settings) throws Exception {
        if (!settings.isEmpty()) {
            S3Server.credentialsEnv()
                    .forEach((name, value) -> System.setProperty(
                            switch (name) {
                                case "AWS_ACCESS_KEY_ID" -> "aws.accessKeyId";
                                case "AWS_SECRET_ACCESS_KEY" -> "aws.secretAccessKey";
                                default -> throw new IllegalStateException("no system property for " + name);
                            },
                            value));
        }
        return new VmServer(exports, settings, List.of());
    }

    int port() {
        return port;
    }

    /** Returns export {@code name}'s stack as serve logs it, e.g. {@code cow(overlay=memory) -> file:/x.img}. */
    String stack(String name) {
        return registry.stack(name);
    }

    /** Stops the server gracefully and starts a new one with the same exports on the same port. */
    void restart() throws Exception {
        server.close();
        server = open(port);
    }

    private NbdServer open(int onPort) throws Exception {
        EventLoopGroup group = NbdServer.newEventLoopGroup(EVENT_LOOPS);
        ExportRegistry registry = new ExportRegistry();
        this.registry = registry;
        try {
            for (Map.Entry<String, String> export : exports.entrySet()) {
                QueueSetup setup =
                        new QueueSetup(export.getKey(), EVENT_LOOPS, 64, NbdServer.hctxExecutors(group), Duration.ZERO);
                List<FilterSpec> stack = filters.stream()
                        .filter(f -> f.appliesTo(export.getKey()))
                        .toList();
                registry.open(
                        export.getKey(), export.getValue(), stack, export.getValue(), options, setup, MAX_PAYLOAD);
            }
            return NbdServer.start(group, registry, List.of(new InetSocketAddress("127.0.0.1", onPort)), MAX_PAYLOAD);
        } catch (Exception | Error e) {
            registry.close();
            group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS);
            throw e;
        }
    }

    @Override
    public void close() {
        server.close();
    }
}
