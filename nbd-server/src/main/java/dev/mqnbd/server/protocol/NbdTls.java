package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslHandler;
import java.net.SocketAddress;
import java.nio.channels.ClosedChannelException;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Objects;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.security.auth.x500.X500Principal;
import org.jspecify.annotations.Nullable;

/**
 * The TLS a server offers in the handshake: a {@link NbdTlsMode} and, unless it is {@code OFF}, the server
 * {@link SslContext} that {@code NBD_OPT_STARTTLS} starts TLS with. Whether clients must present a
 * certificate is the context's business ({@code ClientAuth}); the subject of a verified client certificate
 * reaches {@link NbdExports#allows} through {@link NbdPeer#subject()}.
 *
 * <p><b>Threading:</b> immutable; one instance serves every connection.
 */
public final class NbdTls {
    private static final NbdTls OFF = new NbdTls(NbdTlsMode.OFF, null);

    private final NbdTlsMode mode;
    private final @Nullable SslContext context;

    private NbdTls(NbdTlsMode mode, @Nullable SslContext context) {
        this.mode = mode;
        this.context = context;
    }

    /** Returns NOTLS mode: {@code NBD_OPT_STARTTLS} is not supported. */
    public static NbdTls off() {
        return OFF;
    }

    /**
     * Returns TLS in {@code mode} with the server context {@code context}.
     *
     * @param context a server-side context; ignored (and may be {@code null}) when {@code mode} is {@code OFF}
     * @throws IllegalArgumentException if {@code mode} is not {@code OFF} and {@code context} is {@code null}
     *     or a client context
     */
    public static NbdTls of(NbdTlsMode mode, SslContext context) {
        Objects.requireNonNull(mode, "mode");
        if (mode == NbdTlsMode.OFF) {
            return OFF;
        }
        if (context == null || !context.isServer()) {
            throw new IllegalArgumentException("TLS context: " + context + " (expected: a server context)");
        }
        return new NbdTls(mode, context);
    }

    /** Returns the mode. */
    public NbdTlsMode mode() {
        return mode;
    }

    /** Returns whether {@code NBD_OPT_STARTTLS} is supported. */
    boolean enabled() {
        return mode != NbdTlsMode.OFF;
    }

    /** Returns whether every option but STARTTLS and ABORT must wait for TLS. */
    boolean required() {
        return mode == NbdTlsMode.REQUIRE;
    }

    /** Returns a new server-side handler for one connection. */
    SslHandler newHandler(ByteBufAllocator alloc) {
        return Objects.requireNonNull(context, "TLS is off").newHandler(alloc);
    }

    /** Returns the subject of the peer's verified certificate, or {@code null} if it sent none. */
    static @Nullable X500Principal peerSubject(SSLSession session) {
        try {
            Certificate[] chain = session.getPeerCertificates();
            if (chain.length > 0 && chain[0] instanceof X509Certificate certificate) {
                return certificate.getSubjectX500Principal();
            }
        } catch (SSLPeerUnverifiedException e) {
            // No certificate: the context did not ask for one, or the client sent none where that is allowed.
        }
        return null;
    }

    /** Returns who the client is: its address and, inside TLS, its verified certificate's subject. */
    static NbdPeer peer(ChannelHandlerContext ctx, boolean tlsActive) {
        Channel ch = ctx.channel();
        // A Unix-socket client has no address of its own: it is known by the socket's path.
        SocketAddress address = ch.remoteAddress() != null ? ch.remoteAddress() : ch.localAddress();
        X500Principal subject = null;
        if (tlsActive) {
            SslHandler ssl = ctx.pipeline().get(SslHandler.class);
            if (ssl != null) {
                subject = peerSubject(ssl.engine().getSession());
            }
        }
        return new NbdPeer(address, tlsActive, subject);
    }

    /** Describes the connection's TLS session for logs: protocol and cipher suite. */
    static String describeSession(ChannelHandlerContext ctx) {
        SslHandler ssl = ctx.pipeline().get(SslHandler.class);
        if (ssl == null) {
            return "(no TLS handler)";
        }
        SSLSession session = ssl.engine().getSession();
        return session.getProtocol() + ", " + session.getCipherSuite();
    }

    /** Returns why a TLS handshake (or a connection) failed, for a log line. */
    static String failureMessage(Throwable cause) {
        if (causedBy(cause, ClosedChannelException.class)) {
            return "the connection closed before the handshake finished";
        }
        Throwable root = cause;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getMessage() != null ? root.getMessage() : root.toString();
    }

    static boolean causedBy(Throwable cause, Class<? extends Throwable> type) {
        for (Throwable t = cause; t != null; t = t.getCause()) {
            if (type.isInstance(t)) {
                return true;
            }
        }
        return false;
    }

    @Override
    public String toString() {
        return mode.toString();
    }
}
