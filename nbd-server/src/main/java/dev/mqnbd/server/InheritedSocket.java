package dev.mqnbd.server;

import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.unix.Socket;
import java.io.IOException;
import java.net.SocketAddress;

/**
 * A listening socket this process did not open but inherited as a file descriptor: from the service manager
 * (socket activation) or from the server process it took over from. {@link NbdServer#start} serves on it
 * instead of binding; connections that arrived before wait in its backlog.
 *
 * <p><b>Ownership:</b> the server's listener channel owns the descriptor from {@code start} on and closes it.
 */
public final class InheritedSocket extends SocketAddress {
    private static final long serialVersionUID = 1L;
    private static final int SOL_SOCKET = 1;
    private static final int SO_DOMAIN = 39;
    private static final int SO_ACCEPTCONN = 30;
    private static final int AF_UNIX = 1;

    private final int fd;
    private final String name;
    private final boolean unix;

    private InheritedSocket(int fd, String name, boolean unix) {
        this.fd = fd;
        this.name = name;
        this.unix = unix;
    }

    /**
     * Wraps the listening socket {@code fd}.
     *
     * @param name where it came from, for logs: {@code nbd (service manager)}, {@code from pid 4242}
     * @throws IOException if the epoll transport is missing (nothing else can adopt a descriptor), or {@code
     *     fd} is not a listening stream socket
     */
    public static InheritedSocket of(int fd, String name) throws IOException {
        if (!Epoll.isAvailable()) {
            throw new IOException("cannot serve on inherited socket " + fd + ": the epoll transport is not available ("
                    + Epoll.unavailabilityCause() + ")");
        }
        Socket socket = new Socket(fd);
        int domain;
        int listening;
        try {
            domain = socket.getIntOpt(SOL_SOCKET, SO_DOMAIN);
            listening = socket.getIntOpt(SOL_SOCKET, SO_ACCEPTCONN);
        } catch (IOException e) {
            throw new IOException(
                    "inherited file descriptor " + fd + " (" + name + ") is not a socket: " + e.getMessage(), e);
        }
        if (listening == 0) {
            throw new IOException("inherited socket " + fd + " (" + name
                    + ") is not listening (expected: a stream socket after" + " listen(2), as ListenStream= passes)");
        }
        return new InheritedSocket(fd, name, domain == AF_UNIX);
    }

    /** Returns the file descriptor. */
    public int fd() {
        return fd;
    }

    /** Whether it is a Unix socket (else TCP). */
    public boolean unix() {
        return unix;
    }

    /** Returns a new server channel on the descriptor. */
    ServerChannel newChannel() {
        return unix ? new EpollServerDomainSocketChannel(fd) : new EpollServerSocketChannel(fd);
    }

    @Override
    public String toString() {
        return "fd " + fd + " (" + name + ")";
    }
}
