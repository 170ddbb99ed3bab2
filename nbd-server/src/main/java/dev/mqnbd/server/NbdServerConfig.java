package dev.mqnbd.server;

import dev.mqnbd.server.protocol.ConnectionEvents;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdTls;
import java.time.Duration;
import java.util.Objects;

/**
 * What an {@link NbdServer} offers and what it tolerates: the largest payload, TLS, and the limits that
 * keep one client from taking the server's resources.
 *
 * <p>Build one with {@link #builder()}; every setting has a default:
 *
 * <table>
 *   <caption>Settings</caption>
 *   <tr><th>setting</th><th>default</th></tr>
 *   <tr><td>{@link Builder#maxPayload}</td><td>32 MiB</td></tr>
 *   <tr><td>{@link Builder#tls}</td><td>off</td></tr>
 *   <tr><td>{@link Builder#handshakeTimeout}</td><td>10 s</td></tr>
 *   <tr><td>{@link Builder#maxConnections}</td><td>1024</td></tr>
 *   <tr><td>{@link Builder#maxConnectionsPerClient}</td><td>64</td></tr>
 *   <tr><td>{@link Builder#idleTimeout}</td><td>off</td></tr>
 *   <tr><td>{@link Builder#payloadMemory}</td><td>a quarter of the direct-memory limit, at least 64 MiB</td></tr>
 *   <tr><td>{@link Builder#spreadMin}</td><td>{@value #DEFAULT_SPREAD_MIN} bytes</td></tr>
 *   <tr><td>{@link Builder#spreadWrites}</td><td>off</td></tr>
 * </table>
 *
 * <p><b>Threading:</b> immutable.
 */
public final class NbdServerConfig {
    /** How long a client has from connecting to choosing an export, by default. */
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    /** The most connections a server holds, by default. */
    public static final int DEFAULT_MAX_CONNECTIONS = 1024;
    /** The most connections from one client IP address, by default. */
    public static final int DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64;
    /**
     * The largest {@link Builder#maxPayload} allowed: 64 MiB, what clients send when no block size was
     * negotiated (the reference client's tests, nbdkit), and what the backends accept in one request.
     */
    public static final int MAX_PAYLOAD_LIMIT = 64 << 20;
    /** The smallest READ (or WRITE, with spreadWrites) that may leave its connection's hardware context, by default: 128 KiB. */
    public static final int DEFAULT_SPREAD_MIN = 128 << 10;

    private final int maxPayload;
    private final NbdTls tls;
    private final Duration handshakeTimeout;
    private final int maxConnections;
    private final int maxConnectionsPerClient;
    private final Duration idleTimeout;
    private final long payloadMemory;
    private final int spreadMin;
    private final boolean spreadWrites;
    private final ConnectionEvents events;

    private NbdServerConfig(Builder builder) {
        this.maxPayload = builder.maxPayload;
        this.tls = builder.tls;
        this.handshakeTimeout = builder.handshakeTimeout;
        this.maxConnections = builder.maxConnections;
        this.maxConnectionsPerClient = builder.maxConnectionsPerClient;
        this.idleTimeout = builder.idleTimeout;
        this.payloadMemory = builder.payloadMemory;
        this.spreadMin = builder.spreadMin;
        this.spreadWrites = builder.spreadWrites;
        this.events = builder.events;
    }

    /** Returns a builder with every setting at its default. */
    public static Builder builder() {
        return new Builder();
    }

    /** Returns the largest READ or WRITE payload accepted. */
    public int maxPayload() {
        return maxPayload;
    }

    /** Returns the TLS offered in the handshake. */
    public NbdTls tls() {
        return tls;
    }

    /** Returns how long a client may take to choose an export; {@link Duration#ZERO} for no limit. */
    public Duration handshakeTimeout() {
        return handshakeTimeout;
    }

    /** Returns the most connections held at once. */
    public int maxConnections() {
        return maxConnections;
    }

    /** Returns the most connections from one client IP address; 0 for no limit. */
    public int maxConnectionsPerClient() {
        return maxConnectionsPerClient;
    }

    /** Returns how long a connection in transmission may stay idle; {@link Duration#ZERO} for no limit. */
    public Duration idleTimeout() {
        return idleTimeout;
    }

    /**
     * Returns the bound on payload bytes, all connections together: for WRITE payloads still arriving, and
     * again for READ and WRITE buffers in flight to the backends; 0 for the default.
     */
    public long payloadMemory() {
        return payloadMemory;
    }

    /** Returns who is told of connections accepted, refused, failed and negotiated. */
    /**
     * Returns the smallest READ (and WRITE, with {@link #spreadWrites}) that goes to the export's hardware
     * contexts in turn rather than to its connection's own; 0: every request stays on its connection's
     * context.
     */
    public int spreadMin() {
        return spreadMin;
    }

    /** Returns whether WRITEs of {@link #spreadMin} bytes or more are spread too, not only READs. */
    public boolean spreadWrites() {
        return spreadWrites;
    }

    public ConnectionEvents events() {
        return events;
    }

    /** Builds an {@link NbdServerConfig}. */
    public static final class Builder {
        private int maxPayload = NbdConstants.DEFAULT_MAXIMUM_PAYLOAD;
        private NbdTls tls = NbdTls.off();
        private Duration handshakeTimeout = DEFAULT_HANDSHAKE_TIMEOUT;
        private int maxConnections = DEFAULT_MAX_CONNECTIONS;
        private int maxConnectionsPerClient = DEFAULT_MAX_CONNECTIONS_PER_CLIENT;
        private Duration idleTimeout = Duration.ZERO;
        private long payloadMemory;
        private int spreadMin = DEFAULT_SPREAD_MIN;
        private boolean spreadWrites;
        private ConnectionEvents events = ConnectionEvents.NONE;

        private Builder() {}

        /**
         * Sets the largest READ or WRITE payload accepted; larger WRITE payloads are drained and refused.
         *
         * @throws IllegalArgumentException if {@code bytes} is below 512 or above {@link #MAX_PAYLOAD_LIMIT}
         */
        public Builder maxPayload(int bytes) {
            if (bytes < 512 || bytes > MAX_PAYLOAD_LIMIT) {
                throw new IllegalArgumentException(
                        "maxPayload: " + bytes + " (expected: >= 512 and <= " + MAX_PAYLOAD_LIMIT + ")");
            }
            this.maxPayload = bytes;
            return this;
        }

        /** Sets the TLS the handshake offers or requires. */
        public Builder tls(NbdTls tls) {
            this.tls = Objects.requireNonNull(tls, "tls");
            return this;
        }

        /**
         * Sets how long a client has, from connecting, to finish option haggling (TLS included) and start
         * transmission; {@link Duration#ZERO} for no limit. Connections in transmission are never timed out.
         *
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder handshakeTimeout(Duration timeout) {
            if (timeout.isNegative()) {
                throw new IllegalArgumentException("handshakeTimeout: " + timeout + " (expected: >= 0)");
            }
            this.handshakeTimeout = timeout;
            return this;
        }

        /**
         * Sets the most connections held at once; more are closed before the greeting.
         *
         * @throws IllegalArgumentException if {@code n} is below 1
         */
        public Builder maxConnections(int n) {
            if (n < 1) {
                throw new IllegalArgumentException("maxConnections: " + n + " (expected: >= 1)");
            }
            this.maxConnections = n;
            return this;
        }

        /**
         * Sets the most connections from one client IP address (Unix-socket clients are not counted); 0 for
         * no limit.
         *
         * @throws IllegalArgumentException if {@code n} is negative
         */
        public Builder maxConnectionsPerClient(int n) {
            if (n < 0) {
                throw new IllegalArgumentException("maxConnectionsPerClient: " + n + " (expected: >= 0)");
            }
            this.maxConnectionsPerClient = n;
            return this;
        }

        /**
         * Sets how long a connection in transmission may be idle (no whole request received, no reply sent,
         * nothing in flight) before it is closed; {@link Duration#ZERO}, the default, for no limit.
         *
         * @throws IllegalArgumentException if {@code timeout} is negative
         */
        public Builder idleTimeout(Duration timeout) {
            if (timeout.isNegative()) {
                throw new IllegalArgumentException("idleTimeout: " + timeout + " (expected: >= 0)");
            }
            this.idleTimeout = timeout;
            return this;
        }

        /**
         * Sets the bound on payload bytes, all connections together: WRITE payloads still arriving past it
         * close the connection whose payload has arrived the longest, and a READ or WRITE whose buffer would
         * take the buffers in flight to the backends past it waits for others to complete. 0, the default,
         * for a quarter of the JVM's direct-memory limit (where every socket read lands), at least 64 MiB.
         *
         * @throws IllegalArgumentException if {@code bytes} is negative, or positive and under 1 MiB
         */
        public Builder payloadMemory(long bytes) {
            if (bytes < 0 || (bytes > 0 && bytes < (1 << 20))) {
                throw new IllegalArgumentException("payloadMemory: " + bytes + " (expected: 0 or >= 1 MiB)");
            }
            this.payloadMemory = bytes;
            return this;
        }

        /**
         * Sets the smallest READ (and WRITE, with {@link #spreadWrites}) that goes to the export's hardware
         * contexts in turn, so that one connection's large transfers are copied on several threads while
         * its event loop goes on; 0 keeps every request on the connection's own context. Only on exports
         * where a FLUSH covers every context (multi-conn), and with more than one hardware queue.
         *
         * @throws IllegalArgumentException if {@code bytes} is negative
         */
        public Builder spreadMin(int bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("spreadMin: " + bytes + " (expected: >= 0)");
            }
            this.spreadMin = bytes;
            return this;
        }

        /**
         * Spreads WRITEs of {@link #spreadMin} bytes or more too (default: off). Their copy into the
         * backend then runs on another context's thread, which pays where a core is free for it and costs
         * a hand-off where none is.
         */
        public Builder spreadWrites(boolean on) {
            this.spreadWrites = on;
            return this;
        }

        /** Tells {@code events} of every connection accepted, refused, failed and negotiated (default: no one). */
        public Builder events(ConnectionEvents events) {
            this.events = Objects.requireNonNull(events, "events");
            return this;
        }

        /** Returns the configuration. */
        public NbdServerConfig build() {
            return new NbdServerConfig(this);
        }
    }
}
