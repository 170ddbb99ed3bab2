package dev.mqnbd.server.cli;

import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.storage.Sizes;
import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Option;

/** The connection limits of {@code mqnbd serve}. */
final class LimitOptions {
    private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m)?");

    @Option(
            names = "--handshake-timeout",
            paramLabel = "DURATION",
            defaultValue = "10s",
            description = "Drop clients that have not chosen an export this long after connecting, TLS handshake "
                    + "included: 10s, 500ms, 2m; 0 for no limit. Connections in use are never timed out "
                    + "(default: ${DEFAULT-VALUE}).")
    String handshakeTimeout = "10s";

    @Option(
            names = "--max-connections",
            paramLabel = "N",
            defaultValue = "1024",
            description = "At most N connections: a new one over the cap closes the oldest still in the handshake, "
                    + "or is refused if none is (default: ${DEFAULT-VALUE}).")
    int maxConnections = NbdServerConfig.DEFAULT_MAX_CONNECTIONS;

    @Option(
            names = "--max-connections-per-client",
            paramLabel = "N",
            defaultValue = "64",
            description = "At most N connections from one IP address, handled as --max-connections; 0 for no limit. "
                    + "Unix-socket clients count only towards --max-connections (default: ${DEFAULT-VALUE}).")
    int maxConnectionsPerClient = NbdServerConfig.DEFAULT_MAX_CONNECTIONS_PER_CLIENT;

    @Option(
            names = "--idle-timeout",
            paramLabel = "DURATION",
            defaultValue = "0",
            description = "Drop connections in use that sent no whole request and got no reply for this long, "
                    + "with nothing in flight: 10m, 1h; 0 (the default) for never, as kernel clients idle for days.")
    String idleTimeout = "0";

    @Option(
            names = "--payload-memory",
            paramLabel = "SIZE",
            defaultValue = "0",
            description = "READ and WRITE payloads the server holds, all connections together: past SIZE of "
                    + "buffers in flight to the backends (each export at most half), further requests wait, a WRITE "
                    + "before its payload is read; past SIZE of WRITE payloads still arriving, the connection whose "
                    + "payload stalled longest is closed, and while requests wait, one whose payload arrives at "
                    + "less than 1M/s. 0 (the default): a quarter of the JVM's direct-memory limit "
                    + "(-XX:MaxDirectMemorySize, else the heap limit), at least 64M.")
    String payloadMemory = "0";

    /**
     * Adds the limits to {@code config}.
     *
     * @throws MqnbdCommand.UsageException if a value is out of range
     */
    NbdServerConfig.Builder applyTo(NbdServerConfig.Builder config) {
        if (maxConnections < 1 || maxConnections > 1_000_000) {
            throw new MqnbdCommand.UsageException("--max-connections " + maxConnections + " (expected: 1..1000000)");
        }
        if (maxConnectionsPerClient < 0 || maxConnectionsPerClient > 1_000_000) {
            throw new MqnbdCommand.UsageException(
                    "--max-connections-per-client " + maxConnectionsPerClient + " (expected: 0..1000000)");
        }
        return config.handshakeTimeout(parseDuration("--handshake-timeout", handshakeTimeout))
                .maxConnections(maxConnections)
                .maxConnectionsPerClient(maxConnectionsPerClient)
                .idleTimeout(parseDuration("--idle-timeout", idleTimeout))
                .payloadMemory(parsePayloadMemory(payloadMemory));
    }

    private static long parsePayloadMemory(String text) {
        long bytes;
        try {
            bytes = Sizes.parse(text);
        } catch (IllegalArgumentException e) {
            throw new MqnbdCommand.UsageException("--payload-memory " + text + ": " + e.getMessage());
        }
        if (bytes != 0 && bytes < (1 << 20)) {
            throw new MqnbdCommand.UsageException("--payload-memory " + text + " (expected: 0, or 1M or more)");
        }
        return bytes;
    }

    /** Parses {@code 10s}, {@code 500ms}, {@code 2m} or a bare number of seconds. */
    static Duration parseDuration(String option, String text) {
        Matcher m = DURATION.matcher(text.strip().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new MqnbdCommand.UsageException(option + " " + text + " (expected: e.g. 10s, 500ms, 2m or 0)");
        }
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2) == null ? "s" : m.group(2);
        Duration d = switch (unit) {
            case "ms" -> Duration.ofMillis(n);
            case "m" -> Duration.ofMinutes(n);
            default -> Duration.ofSeconds(n);
        };
        if (d.compareTo(Duration.ofHours(24)) > 0) {
            throw new MqnbdCommand.UsageException(option + " " + text + " (expected: at most 24 hours)");
        }
        return d;
    }
}
