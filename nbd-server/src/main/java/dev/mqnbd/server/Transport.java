package dev.mqnbd.server;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.IoEventLoopGroup;
import io.netty.channel.IoHandler;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.ServerChannel;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.epoll.EpollServerSocketChannel;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerDomainSocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringServerDomainSocketChannel;
import io.netty.channel.uring.IoUringServerSocketChannel;
import java.io.IOException;
import java.util.Locale;

/**
 * The Netty transport the event loops and sockets use.
 *
 * <p>{@link #EPOLL} is the default where its native library loads ({@link #best()}): it is the only one that
 * can serve on inherited sockets (socket activation, takeover). {@link #IO_URING} receives large WRITEs at
 * less CPU per byte and was slower on some small-request jobs (README, Performance); it needs a kernel that allows
 * io_uring, which container runtimes' default seccomp profiles often forbid. {@link #NIO} is the JDK's
 * portable fallback.
 */
public enum Transport {
    /** Native epoll. */
    EPOLL,
    /** Native io_uring. */
    IO_URING,
    /** The JDK's selector. */
    NIO;

    /** Returns epoll when its native library is available, NIO otherwise. */
    public static Transport best() {
        return Epoll.isAvailable() ? EPOLL : NIO;
    }

    /**
     * Returns the transport whose I/O handler {@code group}'s event loops run, or {@link #best()} for a group
     * this class cannot tell (not an {@link IoEventLoopGroup}).
     */
    public static Transport of(EventLoopGroup group) {
        if (group instanceof IoEventLoopGroup io) {
            for (Transport t : values()) {
                if (io.isIoType(t.ioHandler())) {
                    return t;
                }
            }
        }
        return best();
    }

    /**
     * Parses {@code auto} ({@link #best()}), {@code epoll}, {@code io_uring} (or {@code io-uring}) or {@code
     * nio}, in any case.
     *
     * @throws IllegalArgumentException for anything else
     */
    public static Transport parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "auto" -> best();
            case "epoll" -> EPOLL;
            case "io_uring", "io-uring", "iouring" -> IO_URING;
            case "nio" -> NIO;
            default ->
                throw new IllegalArgumentException(
                        "unknown transport \"" + name + "\" (expected: auto, epoll, io_uring or nio)");
        };
    }

    /**
     * Checks that this transport can run here.
     *
     * @throws IOException naming the reason when it cannot (its native library did not load, or the kernel
     *     refuses it)
     */
    public void checkAvailable() throws IOException {
        Throwable cause = switch (this) {
            case EPOLL -> Epoll.unavailabilityCause();
            case IO_URING -> IoUring.unavailabilityCause();
            case NIO -> null;
        };
        if (cause != null) {
            throw new IOException(
                    "the " + name().toLowerCase(Locale.ROOT) + " transport is not available here: " + cause, cause);
        }
    }

    IoHandlerFactory ioHandlerFactory() {
        return switch (this) {
            case EPOLL -> EpollIoHandler.newFactory();
            case IO_URING -> IoUringIoHandler.newFactory();
            case NIO -> NioIoHandler.newFactory();
        };
    }

    private Class<? extends IoHandler> ioHandler() {
        return switch (this) {
            case EPOLL -> EpollIoHandler.class;
            case IO_URING -> IoUringIoHandler.class;
            case NIO -> NioIoHandler.class;
        };
    }

    Class<? extends ServerChannel> tcpServerChannel() {
        return switch (this) {
            case EPOLL -> EpollServerSocketChannel.class;
            case IO_URING -> IoUringServerSocketChannel.class;
            case NIO -> NioServerSocketChannel.class;
        };
    }

    Class<? extends ServerChannel> unixServerChannel() {
        return switch (this) {
            case EPOLL -> EpollServerDomainSocketChannel.class;
            case IO_URING -> IoUringServerDomainSocketChannel.class;
            case NIO -> NioServerDomainSocketChannel.class;
        };
    }
}
