package dev.mqnbd.server.protocol;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import javax.security.auth.x500.X500Principal;
import org.jspecify.annotations.Nullable;

/**
 * Who is on the other end of a connection, as far as the handshake knows: the basis of per-export access
 * decisions ({@link NbdExports#allows}).
 *
 * @param address the client's address: an {@link InetSocketAddress} for TCP, the socket's path for a Unix
 *     socket (Unix clients have no address of their own)
 * @param tls whether {@code NBD_OPT_STARTTLS} succeeded on this connection
 * @param subject the subject of the client's certificate, verified against the server's CA; {@code null}
 *     without TLS or when the client presented no certificate
 */
public record NbdPeer(
        SocketAddress address, boolean tls, @Nullable X500Principal subject) {

    /** Returns the peer as logs show it: {@code 10.0.0.7:51234}, plus the certificate subject if any. */
    @Override
    public String toString() {
        String where = address instanceof InetSocketAddress inet && inet.getAddress() != null
                ? (inet.getAddress().getHostAddress().contains(":")
                                ? "[" + inet.getAddress().getHostAddress() + "]"
                                : inet.getAddress().getHostAddress())
                        + ":" + inet.getPort()
                : String.valueOf(address);
        return subject == null ? where : where + " (" + subject.getName() + ")";
    }
}
