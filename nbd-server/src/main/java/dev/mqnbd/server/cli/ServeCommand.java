package dev.mqnbd.server.cli;

import dev.mqnbd.filter.FilterKind;
import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.lifecycle.Lifecycle;
import dev.mqnbd.server.metrics.MetricsEndpoint;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.Sizes;
import io.netty.channel.EventLoopGroup;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;

/** {@code mqnbd serve}: opens the exports and serves them until SIGINT or SIGTERM. */
@Command(
        name = "serve",
        mixinStandardHelpOptions = true,
        versionProvider = MqnbdCommand.Version.class,
        sortOptions = false,
        description = {
            "Serves block exports over NBD until stopped by Ctrl-C or SIGTERM.",
            "",
            "A stop lets requests in flight finish and be answered before connections close. With no --export,"
                    + " serves a 1 GiB memory export as the default export (empty name).",
            "",
        },
        footer = {
            "",
            "Export specs:",
            "  memory:SIZE",
            "      sparse RAM; SIZE like 512M, 1G, 1T. Contents are lost when the server",
            "      stops.",
            "  file:PATH[,create=SIZE][,direct]",
            "      an image file or block device (/dev/sdX). create=SIZE creates a missing",
            "      file (sparse); direct opens it with O_DIRECT. The file is locked against",
            "      a second server; a file the server may not write is served read-only.",
            "      A comma in PATH is written ,,",
            "  s3://BUCKET/PREFIX[,create=SIZE][,block-size=SIZE][,overwrite]",
            "      block objects (1M each unless block-size=, 64K..64M) in an S3 bucket or",
            "      an S3-compatible store (--s3-endpoint); create=SIZE creates a missing",
            "      export, overwrite replaces one of another size. One server writes an",
            "      export at a time.",
            "",
            "Examples:",
            "  mqnbd serve",
            "      1 GiB memory export on 127.0.0.1:10809; try: nbdinfo nbd://localhost",
            "  mqnbd serve --export =memory:4G --export scratch=memory:1T \\",
            "        -d 'scratch=Scratch space'",
            "      a 4 GiB default export and a sparse 1 TiB export named scratch",
            "      (nbd://localhost/scratch)",
            "  mqnbd serve --export disk=file:/var/lib/mqnbd/disk.img,create=10G",
            "      a 10 GiB image file, created sparse on first use; FLUSH and FUA reach",
            "      the disk",
            "  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... mqnbd serve \\",
            "        --export vm=s3://disks/vm1,create=20G \\",
            "        --s3-endpoint http://minio:9000 --s3-path-style",
            "      a 20 GiB export in bucket disks under vm1/; FLUSH replies once the data",
            "      is stored",
            "  mqnbd serve --listen 0.0.0.0 --port 10809 --read-only",
            "      every interface; clients may read but not write",
            "  mqnbd serve --export disk=file:/srv/disk.img --metrics 9100",
            "      Prometheus metrics at http://localhost:9100/metrics",
            "  mqnbd serve --socket /run/mqnbd.sock",
            "      a Unix socket only; try: nbdinfo 'nbd+unix:///?socket=/run/mqnbd.sock'",
            "",
            "Security examples:",
            "  mqnbd serve -l 0.0.0.0 --tls=require --tls-certificates /etc/mqnbd/tls \\",
            "        -e disk=memory:1G",
            "      TLS for every client; the directory holds server-cert.pem and",
            "      server-key.pem. Try: nbdinfo 'nbds://HOST/disk?tls-certificates=DIR'",
            "      (DIR with the CA's ca-cert.pem, as qemu and libnbd expect it)",
            "  mqnbd serve --tls=require --tls-certificates DIR --tls-verify-peer \\",
            "        -e disk=memory:1G -e admin=memory:1G --allow-subject admin=alice",
            "      clients need a certificate from ca-cert.pem's CA (client-cert.pem and",
            "      client-key.pem in their DIR); only CN=alice sees and uses admin",
            "  mqnbd serve -l :: --allow 10.0.0.0/8,fd00::/8 --allow scratch=192.168.7.0/24",
            "      every export only from 10/8 and fd00::/8; scratch also from 192.168.7/24",
            "",
            "Security: by default mqnbd listens on loopback only, without TLS. Anyone who",
            "can reach the port can read every export, and write those not --read-only,",
            "unless --allow or --allow-subject restrict it. An export a client may not use",
            "is invisible to it: missing from its list, unknown when asked for. Refused",
            "exports, dropped handshakes and refused connections are logged.",
        })
final class ServeCommand implements Callable<Integer> {
    static final System.Logger LOG = System.getLogger("dev.mqnbd.server");

    @Option(
            names = {"-e", "--export"},
            paramLabel = "NAME=SPEC",
            description = {
                "An export to serve, repeatable. NAME is what clients ask for (empty = the default export, as in"
                        + " --export =memory:1G); SPEC names the backend. Default: =memory:1G."
            })
    List<String> exports = new ArrayList<>();

    @Option(
            names = {"-f", "--filter"},
            paramLabel = "NAME=KIND[,key=value...]",
            description = "A filter for export NAME (* for every export), repeatable: cow, rate, error, delay or"
                    + " log (see Filters below). The first named for an export is the one closest to the client.")
    List<String> filters = new ArrayList<>();

    @Option(
            names = {"-d", "--description"},
            paramLabel = "NAME=TEXT",
            description = {
                "Text clients see for export NAME (nbdinfo --list, NBD_INFO_DESCRIPTION), repeatable. Default:"
                        + " the export's SPEC."
            })
    List<String> descriptions = new ArrayList<>();

    @Option(
            names = {"-l", "--listen"},
            paramLabel = "ADDRESS",
            description = {
                "Address to listen on, repeatable: a host name or IP (0.0.0.0 or :: for every interface). Default:"
                        + " localhost (loopback only)."
            })
    List<String> listen = new ArrayList<>();

    @Option(
            names = {"-p", "--port"},
            paramLabel = "PORT",
            defaultValue = "10809",
            description = "TCP port (default: ${DEFAULT-VALUE}, the IANA port for NBD; 0 picks a free one).")
    int port;

    @Option(
            names = {"-U", "--socket"},
            paramLabel = "PATH",
            description = "Listen on this Unix socket instead of TCP (add --listen to have both).")
    @Nullable
    Path socket;

    @Option(
            names = {"-r", "--read-only"},
            description = "Serve every export read-only: writes, trims and zeroing fail with EPERM.")
    boolean readOnly;

    @Option(
            names = "--event-loops",
            paramLabel = "N",
            description = "Network threads (default: the number of CPUs, here ${sys:mqnbd.cpus}).")
    @Nullable
    Integer eventLoops;

    @Option(
            names = "--hw-queues",
            paramLabel = "N",
            description = "Hardware queues per export (default: one per event loop).")
    @Nullable
    Integer hwQueues;

    @Option(
            names = "--queue-depth",
            paramLabel = "N",
            defaultValue = "128",
            description = "Requests in flight per hardware queue; a client past it waits (default: ${DEFAULT-VALUE}).")
    int queueDepth;

    @Option(
            names = "--max-payload",
            paramLabel = "SIZE",
            defaultValue = "32M",
            description = "Largest READ or WRITE accepted, advertised to clients: 4K..64M, the most the backends "
                    + "take in one request (default: ${DEFAULT-VALUE}).")
    @SuppressWarnings("NullAway.Init") // picocli sets it: it has a default value
    String maxPayload;

    @Option(
            names = "--metrics",
            paramLabel = "[ADDRESS:]PORT",
            description = "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (default ADDRESS: localhost)."
                    + " Off by default. Per export: requests by operation and status, bytes, latency, in flight;"
                    + " per hardware queue, connection and backend counters; the README lists every metric.")
    @Nullable
    String metrics;

    @Option(
            names = {"-v", "--verbose"},
            description = "Log every connection and failed request.")
    boolean verbose;

    // Each concern's options live in their own class, shown under their own heading in --help.
    @ArgGroup(validate = false, heading = "%nTLS:%n", order = 1)
    TlsOptions tls = new TlsOptions();

    @ArgGroup(validate = false, heading = "%nAccess control:%n", order = 2)
    AccessOptions access = new AccessOptions();

    @ArgGroup(validate = false, heading = "%nLimits:%n", order = 3)
    LimitOptions limits = new LimitOptions();

    @ArgGroup(validate = false, heading = "%nS3 exports (s3://BUCKET/PREFIX):%n", order = 4)
    S3Options s3 = new S3Options();

    @ArgGroup(validate = false, heading = "%nRestarting and upgrading:%n", order = 5)
    LifecycleOptions lifecycleOptions = new LifecycleOptions();

    static {
        System.setProperty("mqnbd.cpus", Integer.toString(Runtime.getRuntime().availableProcessors()));
    }

    /**
     * Adds the Filters section to {@code serve}'s footer, before its examples: every filter kind with its keys
     * and an example, from the kinds themselves, wrapped to 80 columns.
     */
    static void addFilterHelp(CommandSpec serve) {
        List<String> lines = new ArrayList<>();
        lines.add("Filters (--filter NAME=KIND[,key=value...]):");
        for (FilterKind kind : Filters.all()) {
            wrap(lines, "  " + kind.name() + ": " + kind.summary(), "      ");
            for (String key : kind.keys()) {
                wrap(lines, "      " + key, "          ");
            }
            wrap(lines, "      e.g. --filter " + kind.example(), "          ");
        }
        lines.add("");
        // Footer lines are format strings: a literal % is written %%.
        lines.replaceAll(line -> line.replace("%", "%%"));
        List<String> footer = new ArrayList<>(List.of(serve.usageMessage().footer()));
        int examples = footer.indexOf("Examples:");
        footer.addAll(examples < 0 ? footer.size() : examples, lines);
        serve.usageMessage().footer(footer.toArray(String[]::new));
    }

    /** Appends {@code text} broken at spaces into lines of at most 80 columns, continued with {@code indent}. */
    private static void wrap(List<String> lines, String text, String indent) {
        String rest = text;
        while (rest.length() > 80) {
            int cut = rest.lastIndexOf(' ', 80);
            if (cut <= indent.length()) {
                cut = 80;
            }
            lines.add(rest.substring(0, cut));
            rest = indent + rest.substring(cut).strip();
        }
        lines.add(rest);
    }

    @Override
    public Integer call() throws Exception {
        LogSetup.configure(verbose);
        List<ExportSpec> specs = parseExports();
        List<FilterSpec> filterSpecs = parseFilters(specs);
        Map<String, String> texts = parseDescriptions(specs);
        int payload = parseMaxPayload();
        int loops = eventLoops != null
                ? positive("--event-loops", eventLoops)
                : Runtime.getRuntime().availableProcessors();
        int queues = hwQueues != null ? positive("--hw-queues", hwQueues) : loops;
        if (queueDepth < 1 || queueDepth > 4096) {
            throw new MqnbdCommand.UsageException("--queue-depth " + queueDepth + " (expected: 1..4096)");
        }
        if (port < 0 || port > 65535) {
            throw new MqnbdCommand.UsageException("--port " + port + " (expected: 0..65535)");
        }
        Lifecycle.Settings lifecycleSettings = lifecycleOptions.settings();
        List<SocketAddress> configured = listenAddresses();
        InetSocketAddress metricsAddress = metrics == null ? null : metricsAddress(metrics);
        Map<String, AccessList> acls =
                access.build(specs.stream().map(ExportSpec::name).toList());
        ExportRegistry registry = new ExportRegistry(metricsAddress != null);
        MetricsEndpoint endpoint = metricsAddress == null ? null : new MetricsEndpoint(registry);
        NbdServerConfig.Builder configBuilder =
                limits.applyTo(NbdServerConfig.builder()).maxPayload(payload).tls(tls.build(access.hasSubjects()));
        if (endpoint != null) {
            configBuilder.events(endpoint.connectionEvents());
        }
        NbdServerConfig config = configBuilder.build();

        // Socket activation or a take-over decides the sockets; a take-over returns once the exports are free.
        Lifecycle lifecycle = Lifecycle.begin(lifecycleSettings, configured);
        List<SocketAddress> addresses = lifecycle.addresses();
        EventLoopGroup group = NbdServer.newEventLoopGroup(loops);
        NbdServer server;
        CountDownLatch stopped = new CountDownLatch(1);
        try {
            for (ExportSpec spec : specs) {
                List<FilterSpec> stack = filterSpecs.stream()
                        .filter(f -> f.appliesTo(spec.name()))
                        .toList();
                // No default text: the spec names host paths and buckets, which clients need not learn.
                open(registry, spec, stack, texts.getOrDefault(spec.name(), ""), group, queues, payload);
                AccessList acl = acls.get(spec.name());
                if (acl != null) {
                    registry.restrict(spec.name(), acl);
                    LOG.log(Level.INFO, "export " + spec.displayName() + " admits only: " + acl);
                }
            }
            server = NbdServer.start(group, registry, addresses, config);
            if (endpoint != null) {
                endpoint.openConnections(server::connectionCount);
                try {
                    endpoint.start(Objects.requireNonNull(metricsAddress));
                } catch (Exception | Error e) {
                    server.close();
                    throw e;
                }
                LOG.log(
                        Level.INFO,
                        "metrics on http://" + describe(Objects.requireNonNull(metricsAddress), endpoint.port())
                                + "/metrics");
            }
            try {
                lifecycle.serving(server, () -> closeQuietly(endpoint), stopped::countDown);
            } catch (Exception | Error e) {
                server.close();
                throw e;
            }
        } catch (Exception | Error e) {
            if (endpoint != null) {
                endpoint.close();
            }
            registry.close();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw e;
        }
        Thread hook = new Thread(
                () -> {
                    LOG.log(Level.INFO, "stopping: finishing requests in flight");
                    lifecycle.stop(server);
                    closeQuietly(endpoint);
                    stopped.countDown();
                },
                "mqnbd-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        LOG.log(
                Level.INFO,
                "ready: " + specs.size() + (specs.size() == 1 ? " export" : " exports") + ", "
                        + loops + " event loops, " + queues + " hardware queues x depth " + queueDepth + "; TLS "
                        + config.tls()
                        + ", handshake timeout " + describe(config.handshakeTimeout()) + ", at most "
                        + config.maxConnections()
                        + " connections"
                        + (config.maxConnectionsPerClient() > 0
                                ? ", " + config.maxConnectionsPerClient() + " per client"
                                : ""));
        stopped.await();
        return 0;
    }

    private static void closeQuietly(@Nullable MetricsEndpoint endpoint) {
        if (endpoint != null) {
            endpoint.close();
        }
    }

    private List<ExportSpec> parseExports() {
        if (exports.isEmpty()) {
            return List.of(ExportSpec.DEFAULT);
        }
        List<ExportSpec> result = new ArrayList<>();
        Set<String> names = new HashSet<>();
        for (String text : exports) {
            ExportSpec spec = ExportSpec.parse(text);
            if (!names.add(spec.name())) {
                throw new MqnbdCommand.UsageException(
                        "--export " + text + ": export name " + spec.displayName() + " is given twice");
            }
            try {
                Backends.forSpec(spec.spec());
            } catch (IllegalArgumentException e) {
                throw new MqnbdCommand.UsageException("--export " + text + ": " + e.getMessage());
            }
            result.add(spec);
        }
        return result;
    }

    private List<FilterSpec> parseFilters(List<ExportSpec> specs) {
        List<FilterSpec> result = new ArrayList<>();
        for (String text : filters) {
            FilterSpec spec;
            try {
                spec = FilterSpec.parse(text);
            } catch (IllegalArgumentException e) {
                String message = String.valueOf(e.getMessage());
                throw new MqnbdCommand.UsageException(
                        message.startsWith("--filter") ? message : "--filter " + text + ": " + message);
            }
            if (!spec.export().equals(FilterSpec.EVERY_EXPORT)
                    && specs.stream().noneMatch(s -> s.name().equals(spec.export()))) {
                throw new MqnbdCommand.UsageException("--filter " + text + ": no export is named \"" + spec.export()
                        + "\" (expected: an export's name, or * for every export)");
            }
            result.add(spec);
        }
        return result;
    }

    private void open(
            ExportRegistry registry,
            ExportSpec spec,
            List<FilterSpec> stack,
            String description,
            EventLoopGroup group,
            int queues,
            int payload)
            throws Exception {
        QueueSetup setup = new QueueSetup(
                spec.name().isEmpty() ? "default" : spec.name(),
                queues,
                queueDepth,
                NbdServer.hctxExecutors(group),
                Duration.ZERO);
        Export export;
        try {
            export = registry.open(
                    spec.name(),
                    spec.spec(),
                    stack,
                    description,
                    new DeviceOptions(readOnly, s3.settings()),
                    setup,
                    payload);
        } catch (IllegalArgumentException e) {
            throw new MqnbdCommand.UsageException(
                    "--export " + spec.name() + "=" + spec.spec() + ": " + e.getMessage());
        }
        QueueLimits limits = export.queue().limits();
        LOG.log(
                Level.INFO,
                "export " + spec.displayName() + ": " + registry.stack(spec.name()) + ", size "
                        + Sizes.format(limits.capacity())
                        + ", " + (limits.readOnly() ? "read-only" : "read-write"));
    }

    private Map<String, String> parseDescriptions(List<ExportSpec> specs) {
        Map<String, String> texts = new HashMap<>();
        for (String text : descriptions) {
            int eq = text.indexOf('=');
            if (eq < 0) {
                throw new MqnbdCommand.UsageException("--description " + text + ": expected NAME=TEXT");
            }
            String name = text.substring(0, eq);
            if (specs.stream().noneMatch(s -> s.name().equals(name))) {
                throw new MqnbdCommand.UsageException(
                        "--description " + text + ": no export is named \"" + name + "\"");
            }
            if (text.length() - eq - 1 > 4096) {
                throw new MqnbdCommand.UsageException("--description " + name + "=...: at most 4096 bytes (proto.md)");
            }
            texts.put(name, text.substring(eq + 1));
        }
        return texts;
    }

    private int parseMaxPayload() {
        long value;
        try {
            value = Sizes.parse(maxPayload);
        } catch (IllegalArgumentException e) {
            throw new MqnbdCommand.UsageException("--max-payload " + maxPayload + ": " + e.getMessage());
        }
        if (value < 4096 || value > NbdServerConfig.MAX_PAYLOAD_LIMIT) {
            throw new MqnbdCommand.UsageException("--max-payload " + maxPayload + " (expected: 4K..64M)");
        }
        return (int) value;
    }

    private List<SocketAddress> listenAddresses() {
        List<SocketAddress> result = new ArrayList<>();
        if (socket != null) {
            result.add(UnixDomainSocketAddress.of(socket));
        }
        List<String> hosts = listen;
        if (hosts.isEmpty() && socket == null) {
            hosts = List.of("localhost");
        }
        for (String host : hosts) {
            try {
                InetAddress[] all = InetAddress.getAllByName(host);
                // "localhost" may resolve to 127.0.0.1 and ::1; listen on each so either works.
                for (InetAddress address : all) {
                    result.add(new InetSocketAddress(address, port));
                }
            } catch (UnknownHostException e) {
                throw new MqnbdCommand.UsageException("--listen " + host + ": unknown host");
            }
        }
        return result.stream().distinct().collect(Collectors.toList());
    }

    /** Parses --metrics: {@code PORT} (loopback), {@code HOST:PORT} or {@code [IPv6]:PORT}. */
    static InetSocketAddress metricsAddress(String text) {
        int colon = text.lastIndexOf(':');
        String host = colon < 0 ? "localhost" : text.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(text.substring(colon + 1));
        } catch (NumberFormatException e) {
            port = -1;
        }
        if (port < 0 || port > 65535 || host.isEmpty()) {
            throw new MqnbdCommand.UsageException("--metrics " + text + " (expected: [ADDRESS:]PORT, PORT 0..65535)");
        }
        try {
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (UnknownHostException e) {
            throw new MqnbdCommand.UsageException("--metrics " + text + ": unknown host");
        }
    }

    private static String describe(InetSocketAddress address, int port) {
        String host = address.getAddress().getHostAddress();
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
    }

    private static String describe(Duration timeout) {
        if (timeout.isZero()) {
            return "none";
        }
        return timeout.toMillis() % 1000 == 0 ? timeout.toSeconds() + " s" : timeout.toMillis() + " ms";
    }

    private static int positive(String option, int value) {
        if (value < 1 || value > 1024) {
            throw new MqnbdCommand.UsageException(option + " " + value + " (expected: 1..1024)");
        }
        return value;
    }
}
