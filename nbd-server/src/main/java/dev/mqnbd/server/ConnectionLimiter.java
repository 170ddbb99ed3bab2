package dev.mqnbd.server;

import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.ConnectionEvents;
import dev.mqnbd.server.security.Cidr;
import io.netty.channel.Channel;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import org.jspecify.annotations.Nullable;

/**
 * Caps the connections a server holds: in all, and per client IP address, in such a way that the caps
 * cannot be used to lock well-behaved clients out.
 *
 * <p>Policy: a connection counts from its arrival until it closes. When a new connection would go over a
 * cap, the oldest connection that is still in the handshake (has not chosen an export) and counts towards
 * that cap is closed to make room: for the total cap the oldest of all, for the per-client cap the oldest
 * from the same address. Only when every connection under the cap is in transmission is the new one
 * refused, before the greeting. So stalled handshakes, which the handshake deadline drops anyway, never
 * keep out a client that is ready to work; connections in transmission are never evicted (kernel clients
 * keep idle connections for days), unless an idle timeout is configured for them. Refusals and evictions
 * are logged, at most once a second each.
 *
 * <p>Unix-socket clients count towards the total only: they have no address to tell them apart.
 *
 * <p><b>Threading:</b> thread-safe; connections arrive on every event loop. Every method holds the
 * limiter's lock briefly; closing an evicted channel happens outside it.
 */
final class ConnectionLimiter {
    private static final System.Logger LOG = System.getLogger(NbdServer.class.getName());

    private final int maxConnections;
    private final int maxPerClient;
    private int total;
    private final Map<InetAddress, Integer> perClient = new HashMap<>();
    /** Connections still in the handshake, oldest first. */
    private final LinkedHashSet<Counted> handshaking = new LinkedHashSet<>();

    private final RateLimitedLog refusals = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    private final RateLimitedLog evictions = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /** One counted connection; released once, when it closes or is evicted. */
    private static final class Counted {
        final Channel channel;
        final @Nullable InetAddress client;
        boolean released;

        Counted(Channel channel, @Nullable InetAddress client) {
            this.channel = channel;
            this.client = client;
        }
    }

    /**
     * @param maxConnections the most connections in all, at least 1
     * @param maxPerClient the most connections from one IP address, at least 1; {@code 0} for no cap
     */
    ConnectionLimiter(int maxConnections, int maxPerClient) {
        this.maxConnections = maxConnections;
        this.maxPerClient = maxPerClient;
    }

    /**
     * Counts {@code ch} in, as a connection in the handshake, until it closes. When that would break a cap,
     * evicts the oldest handshaking connection under that cap (closing it); if there is none, returns false
     * (and logs), leaving the caller to close {@code ch}.
     */
    boolean tryAcquire(Channel ch) {
        SocketAddress remote = ch.remoteAddress();
        InetAddress client = clientAddress(remote);
        boolean perClientCap = client != null && maxPerClient > 0;
        Counted counted = new Counted(ch, client);
        Counted evictedForClient = null;
        Counted evictedForTotal = null;
        synchronized (this) {
            if (perClientCap && perClient.getOrDefault(client, 0) >= maxPerClient) {
                evictedForClient = oldestHandshaking(client);
                if (evictedForClient == null) {
                    ConnectionEvents.of(ch).refused("client_limit");
                    refusals.log(
                            Level.WARNING,
                            () -> "refused connection from " + NbdServer.describe(remote) + ": "
                                    + maxPerClient + " connections from "
                                    + Objects.requireNonNull(client).getHostAddress()
                                    + " in transmission (the most allowed; see --max-connections-per-client)");
                    return false;
                }
                release(evictedForClient);
            }
            if (total >= maxConnections) {
                evictedForTotal = oldestHandshaking(null);
                if (evictedForTotal == null) {
                    ConnectionEvents.of(ch).refused("limit");
                    refusals.log(
                            Level.WARNING,
                            () -> "refused connection from " + NbdServer.describe(remote) + ": " + maxConnections
                                    + " connections in transmission (the most allowed; see --max-connections)");
                    return false;
                }
                release(evictedForTotal);
            }
            total++;
            if (perClientCap) {
                perClient.merge(client, 1, Integer::sum);
            }
            handshaking.add(counted);
        }
        evict(evictedForClient, "--max-connections-per-client", remote);
        evict(evictedForTotal, "--max-connections", remote);
        // OWNERSHIP: the counts taken here are given back once: on close, or on eviction.
        ch.closeFuture().addListener(f -> {
            synchronized (this) {
                release(counted);
            }
        });
        return true;
    }

    /** Marks {@code ch} as in transmission: from now on it is never evicted to make room. */
    synchronized void transmissionStarted(Channel ch) {
        handshaking.removeIf(c -> c.channel == ch);
    }

    private @Nullable Counted oldestHandshaking(@Nullable InetAddress client) {
        for (Iterator<Counted> it = handshaking.iterator(); it.hasNext(); ) {
            Counted c = it.next();
            if (client == null || client.equals(c.client)) {
                return c;
            }
        }
        return null;
    }

    private void evict(@Nullable Counted victim, String cap, SocketAddress newcomer) {
        if (victim == null) {
            return;
        }
        evictions.log(
                Level.INFO,
                () -> "closing connection from " + NbdServer.describe(victim.channel.remoteAddress())
                        + ", still in the handshake, to make room for " + NbdServer.describe(newcomer) + " (" + cap
                        + ")");
        victim.channel.close();
    }

    private void release(Counted c) {
        if (c.released) {
            return;
        }
        c.released = true;
        handshaking.remove(c);
        total--;
        if (c.client != null && maxPerClient > 0) {
            perClient.computeIfPresent(c.client, (address, n) -> n <= 1 ? null : n - 1);
        }
    }

    /** Returns the number of connections counted now. */
    synchronized int connections() {
        return total;
    }

    /** Returns the number of counted connections still in the handshake. */
    synchronized int handshakes() {
        return handshaking.size();
    }

    /** Returns the client's IP address (IPv4-mapped IPv6 addresses as IPv4), or null for Unix sockets. */
    static @Nullable InetAddress clientAddress(SocketAddress remote) {
        if (!(remote instanceof InetSocketAddress inet) || inet.getAddress() == null) {
            return null;
        }
        return Cidr.unmapped(inet.getAddress());
    }
}
