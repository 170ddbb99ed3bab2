package dev.mqnbd.server.lifecycle;

import dev.mqnbd.server.NbdServer;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.unix.FileDescriptor;
import io.netty.handler.codec.LineBasedFrameDecoder;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The running server's side of a hand-over: listens on the control socket and, when a new process asks to take
 * over, passes it the listening sockets, stops accepting, drains (every request read is answered; see {@link
 * NbdServer#handOver}), closes the exports (their final flush, then their file locks and S3 leases) and tells
 * the new process, which then serves.
 *
 * <p><b>Ownership:</b> owns its event loop and the control socket's path, which it removes on {@link #close()}
 * but leaves to the new process after a hand-over. <b>Threading:</b> requests arrive on its own event loop; the
 * drain runs on a thread of its own.
 */
final class HandoverControl implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(HandoverControl.class.getName());

    private final Path path;
    private final NbdServer server;
    private final Runnable beforeRelease;
    private final Runnable handedOver;
    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
    private final AtomicBoolean handing = new AtomicBoolean();
    private final CountDownLatch done = new CountDownLatch(1);
    private final Channel listener;

    private HandoverControl(Path path, NbdServer server, Runnable beforeRelease, Runnable handedOver)
            throws IOException {
        this.path = path;
        this.server = server;
        this.beforeRelease = beforeRelease;
        this.handedOver = handedOver;
        Files.deleteIfExists(path);
        try {
            listener = new ServerBootstrap()
                    .group(group)
                    .channel(EpollServerDomainSocketChannel.class)
                    .childHandler(new ChannelInitializer<>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            ch.pipeline().addLast(new LineBasedFrameDecoder(200), new Request());
                        }
                    })
                    .bind(new DomainSocketAddress(path.toString()))
                    .syncUninterruptibly()
                    .channel();
        } catch (RuntimeException e) {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
            throw new IOException("cannot listen on control socket " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * Listens on {@code path} for take-over requests.
     *
     * @param beforeRelease runs after the drain, before the new process is told to go on (closes what else
     *     holds a port, such as the metrics endpoint)
     * @param handedOver runs once the new process was told: this one may exit
     */
    static HandoverControl start(Path path, NbdServer server, Runnable beforeRelease, Runnable handedOver)
            throws IOException {
        HandoverControl control = new HandoverControl(path, server, beforeRelease, handedOver);
        LOG.log(Level.INFO, "control socket " + path + ": a new mqnbd serve --take-over replaces this one there");
        return control;
    }

    /** Whether a hand-over has begun; a stop must not remove what the new process owns then. */
    boolean handingOver() {
        return handing.get();
    }

    private final class Request extends SimpleChannelInboundHandler<ByteBuf> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ByteBuf msg) {
            String[] line = msg.toString(StandardCharsets.US_ASCII).strip().split(" ");
            if (line.length != 2 || !line[0].equals("TAKEOVER")) {
                reply(ctx, "REFUSED unknown request").addListener(ChannelFutureListener.CLOSE);
                return;
            }
            if (!handing.compareAndSet(false, true)) {
                reply(ctx, "REFUSED a hand-over is under way").addListener(ChannelFutureListener.CLOSE);
                return;
            }
            String newPid = line[1];
            long started = System.nanoTime();
            List<Integer> fds;
            try {
                fds = server.pauseAccepting();
            } catch (IOException e) {
                LOG.log(Level.WARNING, "cannot hand over to pid " + newPid + ": " + e.getMessage());
                handing.set(false);
                reply(ctx, "REFUSED " + e.getMessage()).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            LOG.log(
                    Level.INFO,
                    "handing over to pid " + newPid + ": stopped accepting, passing " + fds.size() + " listening "
                            + (fds.size() == 1 ? "socket" : "sockets") + ", draining clients");
            reply(ctx, "LISTENERS " + fds.size() + " " + ProcessHandle.current().pid());
            for (int fd : fds) {
                // OWNERSHIP: the descriptor stays the listener's; the message only names it for SCM_RIGHTS.
                ctx.write(new FileDescriptor(fd));
            }
            ctx.flush();
            Channel ch = ctx.channel();
            Thread.ofPlatform().name("mqnbd-handover").start(() -> drain(ch, newPid, started));
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            LOG.log(Level.WARNING, "control connection: " + cause.getMessage());
            ctx.close();
        }
    }

    private void drain(Channel ch, String newPid, long started) {
        long answered = server.handOver();
        beforeRelease.run();
        long millis = (System.nanoTime() - started) / 1_000_000;
        boolean told = reply(ch, "RELEASED " + answered + " " + millis).awaitUninterruptibly(5, TimeUnit.SECONDS);
        LOG.log(
                told ? Level.INFO : Level.ERROR,
                (told ? "handed over to pid " : "drained, but could not tell pid ") + newPid + ": answered "
                        + answered + " requests while draining; exports made durable and released after " + millis
                        + " ms");
        listener.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        done.countDown();
        handedOver.run();
    }

    /** Waits (up to two minutes) until a hand-over under way has finished. */
    void awaitHandedOver() {
        try {
            if (!done.await(2, TimeUnit.MINUTES)) {
                LOG.log(Level.WARNING, "the hand-over did not finish within 2 minutes; stopping anyway");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static ChannelFuture reply(ChannelHandlerContext ctx, String line) {
        return reply(ctx.channel(), line);
    }

    private static ChannelFuture reply(Channel ch, String line) {
        return ch.writeAndFlush(Unpooled.copiedBuffer(line + "\n", StandardCharsets.US_ASCII));
    }

    /** Stops listening and removes the control socket, unless a hand-over gave it to the new process. */
    @Override
    public void close() {
        if (handing.get()) {
            return;
        }
        listener.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "cannot remove control socket " + path + ": " + e.getMessage());
        }
    }
}
