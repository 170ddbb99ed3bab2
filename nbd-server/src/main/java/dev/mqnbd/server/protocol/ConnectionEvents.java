package dev.mqnbd.server.protocol;

import io.netty.channel.Channel;
import io.netty.util.AttributeKey;

/**
 * What happens to connections, told to whoever counts it (the metrics endpoint): one call per event, from
 * where the server logs it. The server attaches its listener to each channel ({@link #KEY}); code that
 * sees an event asks the channel for it with {@link #of}.
 *
 * <p><b>Threading:</b> called on the connections' event loops, concurrently; implementations are
 * thread-safe and return quickly.
 */
public interface ConnectionEvents {
    /** The channel attribute holding a connection's listener. */
    AttributeKey<ConnectionEvents> KEY = AttributeKey.valueOf(ConnectionEvents.class, "events");

    /** A listener that ignores everything. */
    ConnectionEvents NONE = new ConnectionEvents() {};

    /** Returns the listener attached to {@code ch}, or {@link #NONE}. */
    static ConnectionEvents of(Channel ch) {
        ConnectionEvents events = ch.attr(KEY).get();
        return events != null ? events : NONE;
    }

    /** A connection was accepted: it passed the connection limits and gets the greeting. */
    default void accepted() {}

    /**
     * A connection, or its request for an export, was refused.
     *
     * @param reason {@code limit} (too many connections), {@code client_limit} (too many from its address),
     *     {@code access} (an export's access list), {@code tls} (an export asked for before TLS was started
     *     where TLS is required)
     */
    default void refused(String reason) {}

    /**
     * A connection closed in the handshake without reaching transmission.
     *
     * @param reason {@code protocol} (a MUST violation), {@code tls} (the TLS handshake failed), {@code
     *     timeout} (no export chosen in time), {@code io} (the connection broke)
     */
    default void handshakeFailed(String reason) {}

    /**
     * A connection entered transmission.
     *
     * @param mode {@code simple}, {@code structured} or {@code extended} (the reply format negotiated)
     * @param tls whether the connection runs over TLS
     */
    default void negotiated(String mode, boolean tls) {}
}
