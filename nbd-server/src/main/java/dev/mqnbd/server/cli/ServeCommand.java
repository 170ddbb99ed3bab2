package dev.mqnbd.server.cli;

import dev.mqnbd.filter.FilterKind;
import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.Transport;
import dev.mqnbd.server.embed.EmbeddedServer;
import dev.mqnbd.server.embed.Mqnbd;
import dev.mqnbd.server.lifecycle.Lifecycle;
import dev.mqnbd.server.protocol.NbdTls;
import dev.mqnbd.storage.Sizes;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.function.Supplier;
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
            "      sparse RAM; SIZE like 512M, 1G, 1T. Only pages written take memory, and",
            "      trims give it back. All memory exports together hold at most the JVM's",
            "      direct-memory limit (-XX:MaxDirectMemorySize, by default the heap limit);",
            "      writes past it fail with ENOSPC. Contents are lost when the server stops.",
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
            names = "--transport",
            paramLabel = "KIND",
            defaultValue = "auto",
            description = "Network transport: auto (epoll where it loads, else nio), epoll, io_uring or nio. "
                    + "io_uring receives large WRITEs at less CPU and was slower on some small-request jobs "
                    + "(see the README's Performance), and cannot serve inherited sockets (socket activation, "
                    + "--take-over) (default: ${DEFAULT-VALUE}).")
    @SuppressWarnings("NullAway.Init") // picocli sets it: it has a default value
    String transport;

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
            names = "--spread-min",
            paramLabel = "SIZE",
            defaultValue = "128K",
            description = "READs of at least SIZE go to the hardware queues in turn, so one connection's "
                    + "large reads use several threads; 0 keeps each connection on its own queue "
                    + "(default: ${DEFAULT-VALUE}).")
    @SuppressWarnings("NullAway.Init") // picocli sets it: it has a default value
    String spreadMin;

    @Option(
            names = "--spread-writes",
            description = "Spread WRITEs of --spread-min or more too: their copy runs on another queue's "
                    + "thread, which pays on hosts with cores to spare (default: off).")
    boolean spreadWrites;

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
        Lifecycle.Settings lifecycleSettings = lifecycleOptions.settings();
        Mqnbd configured = configure();
        if (lifecycleSettings.takeOver() && configured.transport() != Transport.EPOLL) {
            // Refused before the running server is asked to hand over and drain, not after it has gone.
            throw new MqnbdCommand.UsageException("--take-over needs the epoll transport, the only one that adopts"
                    + " the running server's sockets (got --transport " + transport + ")");
        }
        // Socket activation or a take-over decides the sockets; a take-over returns once the exports are free.
        Lifecycle lifecycle = Lifecycle.begin(lifecycleSettings, configured.addresses());
        EmbeddedServer server;
        try {
            server = configured.listenOn(lifecycle.addresses()).start();
        } catch (IllegalArgumentException e) {
            // start() names a bad export "export NAME=SPEC: ...", which is the --export option given.
            String message = String.valueOf(e.getMessage());
            throw new MqnbdCommand.UsageException(message.startsWith("export ") ? "--" + message : message);
        }
        CountDownLatch stopped = new CountDownLatch(1);
        try {
            lifecycle.serving(server.nbdServer(), server::closeMetrics, stopped::countDown);
        } catch (IOException | RuntimeException e) {
            server.close();
            throw e;
        }
        Thread hook = new Thread(
                () -> {
                    LOG.log(Level.INFO, "stopping: finishing requests in flight");
                    lifecycle.stop(server.nbdServer());
                    server.close();
                    stopped.countDown();
                },
                "mqnbd-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        stopped.await();
        return 0;
    }

    /** Turns the options into the server they describe; a bad option is a {@link MqnbdCommand.UsageException}. */
    Mqnbd configure() throws IOException {
        Mqnbd server = Mqnbd.newServer();
        List<String> names = new ArrayList<>();
        for (String text : exports) {
            ExportSpec spec = ExportSpec.parse(text);
            option("--export " + text, () -> server.export(spec.name(), spec.spec()));
            names.add(spec.name());
        }
        if (names.isEmpty()) {
            server.export("", Mqnbd.DEFAULT_EXPORT_SPEC);
            names.add("");
        }
        for (String text : filters) {
            option("--filter " + text, () -> server.filter(FilterSpec.parse(text)));
        }
        for (String text : descriptions) {
            int eq = text.indexOf('=');
            if (eq < 0) {
                throw new MqnbdCommand.UsageException("--description " + text + ": expected NAME=TEXT");
            }
            option("--description " + text, () -> server.description(text.substring(0, eq), text.substring(eq + 1)));
        }
        access.build(names).forEach(server::restrict);
        long payload = option("--max-payload " + maxPayload, () -> Sizes.parse(maxPayload));
        if (payload < 4096 || payload > NbdServerConfig.MAX_PAYLOAD_LIMIT) {
            throw new MqnbdCommand.UsageException("--max-payload " + maxPayload + " (expected: 4K..64M)");
        }
        long spread = option("--spread-min " + spreadMin, () -> Sizes.parse(spreadMin));
        if (spread > NbdServerConfig.MAX_PAYLOAD_LIMIT) {
            throw new MqnbdCommand.UsageException("--spread-min " + spreadMin + " (expected: 0..64M)");
        }
        NbdTls tlsSetting = tls.build(access.hasSubjects());
        server.config(c -> limits.applyTo(c)
                .maxPayload((int) payload)
                .spreadMin((int) spread)
                .spreadWrites(spreadWrites)
                .tls(tlsSetting));
        Integer loops = eventLoops;
        if (loops != null) {
            option("--event-loops", () -> server.eventLoops(loops));
        }
        String kind = transport;
        server.transport(option("--transport " + kind, () -> Transport.parse(kind)));
        Integer queues = hwQueues;
        if (queues != null) {
            option("--hw-queues", () -> server.hwQueues(queues));
        }
        option("--queue-depth", () -> server.queueDepth(queueDepth));
        option("--port", () -> server.port(port));
        if (socket != null) {
            server.unixSocket(socket);
        }
        for (String host : listen.isEmpty() && socket == null ? List.of("localhost") : listen) {
            option("--listen " + host, () -> server.listen(host));
        }
        if (metrics != null) {
            server.metrics(metricsAddress(metrics));
        }
        s3.settings().forEach(server::backendSetting);
        return server.readOnly(readOnly);
    }

    /** Runs one builder call for {@code option}; its {@link IllegalArgumentException} becomes a usage error. */
    private static <T> T option(String option, Supplier<T> call) {
        try {
            return call.get();
        } catch (IllegalArgumentException e) {
            String message = String.valueOf(e.getMessage());
            throw new MqnbdCommand.UsageException(message.startsWith("--") ? message : option + ": " + message);
        }
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
}
