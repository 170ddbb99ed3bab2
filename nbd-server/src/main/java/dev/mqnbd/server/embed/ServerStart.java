package dev.mqnbd.server.embed;

import dev.mqnbd.filter.FaultInjectingOperations;
import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.metrics.MetricsEndpoint;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.Sizes;
import io.netty.channel.EventLoopGroup;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * What {@link Mqnbd#start()} does: opens the exports into a registry, starts the server and the metrics
 * endpoint, logs what it serves; undoes it all, in reverse, when a step fails.
 */
final class ServerStart {
    static final System.Logger LOG = System.getLogger("dev.mqnbd.server");

    private ServerStart() {}

    static EmbeddedServer start(Mqnbd b) throws IOException {
        InetSocketAddress metricsAddress = b.metrics;
        ExportRegistry registry = new ExportRegistry(metricsAddress != null);
        MetricsEndpoint endpoint = metricsAddress == null ? null : new MetricsEndpoint(registry);
        if (endpoint != null) {
            b.config.events(endpoint.connectionEvents());
        }
        NbdServerConfig config = b.config.build();
        int queues = b.hwQueues != null ? b.hwQueues : b.eventLoops;
        Map<String, String> exports = b.exportsOrDefault();
        EventLoopGroup group = NbdServer.newEventLoopGroup(b.eventLoops, b.transport);
        NbdServer server;
        try {
            for (Map.Entry<String, String> export : exports.entrySet()) {
                open(b, registry, export.getKey(), export.getValue(), group, queues, config.maxPayload());
            }
            server = NbdServer.start(group, registry, b.addresses(), config);
            if (endpoint != null && metricsAddress != null) {
                endpoint.openConnections(server::connectionCount);
                endpoint.buffers(server.bufferBudget(), server::exportBufferBudgets);
                try {
                    endpoint.start(metricsAddress);
                } catch (IOException | RuntimeException e) {
                    server.close();
                    throw e;
                }
                LOG.log(Level.INFO, "metrics on http://" + host(metricsAddress) + ":" + endpoint.port() + "/metrics");
            }
        } catch (IOException | RuntimeException | Error e) {
            if (endpoint != null) {
                endpoint.close();
            }
            registry.close();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
        LOG.log(
                Level.INFO,
                "ready: " + exports.size() + (exports.size() == 1 ? " export" : " exports") + ", "
                        + b.eventLoops + " event loops, " + queues + " hardware queues x depth " + b.queueDepth
                        + "; TLS " + config.tls()
                        + ", handshake timeout " + describe(config.handshakeTimeout()) + ", at most "
                        + config.maxConnections() + " connections"
                        + (config.maxConnectionsPerClient() > 0
                                ? ", " + config.maxConnectionsPerClient() + " per client"
                                : ""));
        return new EmbeddedServer(server, registry, endpoint);
    }

    private static void open(
            Mqnbd b, ExportRegistry registry, String name, String spec, EventLoopGroup group, int queues, int payload)
            throws IOException {
        QueueSetup setup = new QueueSetup(
                name.isEmpty() ? "default" : name,
                queues,
                b.queueDepth,
                NbdServer.hctxExecutors(group),
                b.requestTimeout);
        List<FilterSpec> stack =
                b.filters.stream().filter(f -> f.appliesTo(name)).toList();
        Export export;
        try {
            Device<?, ?, ?, ?> device =
                    Filters.open(name, spec, stack, new DeviceOptions(b.readOnly, b.backendSettings), setup);
            if (b.faultInjection.contains(name)) {
                device = withFaults(device);
            }
            // No default text: the spec names host paths and buckets, which clients need not learn.
            export = registry.open(name, device, b.descriptions.getOrDefault(name, ""), setup, payload);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("export " + name + "=" + spec + ": " + e.getMessage(), e);
        } catch (MqException e) {
            throw new IOException("export " + Mqnbd.quoted(name) + ": " + e.getMessage(), e);
        }
        QueueLimits limits = export.queue().limits();
        LOG.log(
                Level.INFO,
                "export " + Mqnbd.quoted(name) + ": " + registry.stack(name) + ", size "
                        + Sizes.format(limits.capacity())
                        + ", " + (limits.readOnly() ? "read-only" : "read-write"));
        AccessList acl = b.access.get(name);
        if (acl != null) {
            registry.restrict(name, acl);
            LOG.log(Level.INFO, "export " + Mqnbd.quoted(name) + " admits only: " + acl);
        }
    }

    /** Puts an empty {@link FaultInjectingOperations} on top of {@code below}. */
    private static <H, Q, T, R> Device<?, Q, T, R> withFaults(Device<H, Q, T, R> below) {
        return Filters.on(FaultInjectingOperations.wrap(below.driver(), below.limits()), below);
    }

    /** Returns an address's host as a URI or log shows it: IPv6 in brackets. */
    static String host(InetSocketAddress address) {
        String host = address.getAddress() != null ? address.getAddress().getHostAddress() : address.getHostString();
        return host.contains(":") ? "[" + host + "]" : host;
    }

    private static String describe(Duration timeout) {
        if (timeout.isZero()) {
            return "none";
        }
        return timeout.toMillis() % 1000 == 0 ? timeout.toSeconds() + " s" : timeout.toMillis() + " ms";
    }
}
