package dev.mqnbd.server;

import dev.mqnbd.server.protocol.ConnectionEvents;
import dev.mqnbd.server.security.Cidr;
import io.netty.channel.Channel;
import java.lang.System.Logger.Level;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Caps the connections a server holds: in all, and per client IP address. A connection over a cap is
 * refused before the greeting, and the refusal is logged (at most once a second).
 *
 * <p>Unix-socket clients count towards the total only: they have no address to tell them apart.
 *
 * <p><b>Threading:</b> thread-safe; connections arrive on every event loop.
 */
final class ConnectionLimiter {
    private static final System.Logger LOG = System.getLogger(NbdServer.class.getName());

    private final int maxConnections;
    private final int maxPerClient;
    private final AtomicInteger total = new AtomicInteger();
    private final ConcurrentHashMap<InetAddress, Integer> perClient = new ConcurrentHashMap<>();
    private final RateLimitedLog refusals = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /**
     * @param maxConnections the most connections in all, at least 1
     * @param maxPerClient the most connections from one IP address, at least 1; {@code 0} for no cap
     */
    ConnectionLimiter(int maxConnections, int maxPerClient) {
        this.maxConnections = maxConnections;
        this.maxPerClient = maxPerClient;
    }

    /**
     * Counts {@code ch} in, until it closes, if that keeps every count within its cap; returns false (and
     * logs) otherwise, leaving the caller to close it.
     */
    boolean tryAcquire(Channel ch) {
        SocketAddress remote = ch.remoteAddress();
        if (total.incrementAndGet() > maxConnections) {
            total.decrementAndGet();
            ConnectionEvents.of(ch).refused("limit");
            refusals.log(Level.WARNING, () -> "refused connection from " + NbdServer.describe(remote) + ": "
                    + maxConnections + " connections open (the most allowed; see --max-connections)");
            return false;
        }
        InetAddress client = clientAddress(remote);
        if (client != null && maxPerClient > 0) {
            boolean[] over = new boolean[1];
            perClient.compute(client, (address, n) -> {
                int open = n == null ? 0 : n;
                if (open >= maxPerClient) {
                    over[0] = true;
                    return n;
                }
                return open + 1;
            });
            if (over[0]) {
                total.decrementAndGet();
                ConnectionEvents.of(ch).refused("client_limit");
                refusals.log(Level.WARNING, () -> "refused connection from " + NbdServer.describe(remote) + ": "
                        + maxPerClient + " connections from " + client.getHostAddress()
                        + " open (the most allowed; see --max-connections-per-client)");
                return false;
            }
        }
        // OWNERSHIP: the counts taken here are given back once, when the channel closes.
        ch.closeFuture().addListener(f -> release(client));
        return true;
    }

    private void release(InetAddress client) {
        total.decrementAndGet();
        if (client != null && maxPerClient > 0) {
            perClient.computeIfPresent(client, (address, n) -> n <= 1 ? null : n - 1);
        }
    }

    /** Returns the number of connections counted now. */
    int connections() {
        return total.get();
    }

    /** Returns the client's IP address (IPv4-mapped IPv6 addresses as IPv4), or null for Unix sockets. */
    static InetAddress clientAddress(SocketAddress remote) {
        if (!(remote instanceof InetSocketAddress inet) || inet.getAddress() == null) {
            return null;
        }
        return Cidr.unmapped(inet.getAddress());
    }
}
