package dev.mqnbd.server;

import dev.mqnbd.mq.HctxExecutor;
import dev.mqnbd.server.handler.BufferBudget;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.handler.TransmissionHandler;
import dev.mqnbd.server.log.RateLimitedLog;
import dev.mqnbd.server.protocol.ConnectionEvents;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdHandshakeHandler;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.server.protocol.PayloadBudget;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFactory;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.ServerChannel;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.unix.UnixChannel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.netty.util.concurrent.ScheduledFuture;
import io.netty.util.internal.PlatformDependent;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;

/**
 * The NBD server: listeners, event loops and the connections on them, serving the exports of an {@link
 * ExportRegistry}.
 *
 * <p>Each event loop is a submitter of blk-mq: a connection is served by its channel's event loop, and
 * event loop {@code i} maps to hardware context {@code i mod hwQueues} of every export.
 *
 * <p>Why one file of this length: binding (addresses, Unix sockets, inherited sockets), the channel
 * initializer, connection accounting and the three ways to stop (close, hand over, pause accepting) all
 * act on the same listeners and connection group; split apart they would share that state through
 * accessors and lose the one place that shows the order in which a stop undoes a start.
 *
 * <p><b>Ownership:</b> the server owns its event loops and, from {@link #start} on, the registry: {@link
 * #close()} closes both. <b>Threading:</b> {@code start} and {@code close} are called from one thread.
 */
public final class NbdServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(NbdServer.class.getName());

    /** How long a graceful stop waits for connections to finish what they have in flight. */
    private static final long DRAIN_SECONDS = 30;

    private final ExportRegistry exports;
    private final List<SocketAddress> listen;
    private final NbdServerConfig config;
    private final ConnectionLimiter limiter;
    private final RateLimitedLog handshakeTimeouts = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    private final RateLimitedLog idleTimeouts = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);
    private final RateLimitedLog payloadEvictions = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /**
     * The default bound on payload bytes, all connections together (for WRITE payloads arriving, and again
     * for READ and WRITE buffers in flight): a quarter of the direct-memory limit (every socket read lands there), at
     * least 64 MiB.
     */
    static long defaultPayloadMemory() {
        return Math.max(64L << 20, PlatformDependent.maxDirectMemory() / 4);
    }

    /**
     * The bound on the bytes of WRITE payloads that have begun to arrive on all connections together. Over
     * it, the connection whose payload has been arriving longest (1 s or more) is closed ({@link
     * PayloadBudget}).
     */
    private final PayloadBudget payloadBudget;
    /** The bound on the bytes of READ and WRITE buffers in flight to the backends ({@link BufferBudget}). */
    private final BufferBudget bufferBudget;
    /** Each export's part of {@link #bufferBudget}, by export name, made when a client first uses it. */
    private final Map<String, BufferBudget> exportBudgets = new ConcurrentHashMap<>();

    /**
     * Each connection's write-buffer water marks: above the high mark of unwritten replies a connection
     * stops reading requests (and options) until its replies fall below the low mark.
     */
    static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(1 << 20, 4 << 20);

    /**
     * The largest buffer one socket read fills: 256 KiB, four times Netty's default. Sizes adapt to what the
     * reads return, so small requests keep small buffers; a client streaming large WRITEs is read in a few
     * large reads per request instead of sixteen, and each read costs the kernel an acknowledgement and a
     * pass through the pipeline. Measured on 2 cores: the file export's 1 MiB writes at depth 8 went from
     * 2312–2723 to 3087–3244 MiB/s (3 interleaved rounds) at 0.32–0.35 instead of 0.43–0.49 CPU seconds per
     * GiB; 128 KiB gained less, 512 KiB and 1 MiB no more. A pending payload is bounded as before: by the
     * largest payload and the queue depth, plus at most one partly filled buffer.
     */
    static final int RECEIVE_BUFFER_MAX = 256 << 10;

    /** Sizes each connection's socket reads between 64 bytes and {@link #RECEIVE_BUFFER_MAX}; shared, stateless. */
    private static final AdaptiveRecvByteBufAllocator RECEIVE_BUFFERS =
            new AdaptiveRecvByteBufAllocator(64, 2048, RECEIVE_BUFFER_MAX);

    private final EventLoopGroup group;
    private final Transport transport;
    private final Map<EventExecutor, Integer> loopIndex = new IdentityHashMap<>();
    private final List<EventLoop> loops = new ArrayList<>();
    private final ChannelGroup connections = new DefaultChannelGroup("nbd-connections", GlobalEventExecutor.INSTANCE);
    private final List<Channel> listeners = new ArrayList<>();
    private volatile boolean closed;
    private volatile @Nullable ScheduledFuture<?> payloadSweeper;

    private NbdServer(
            EventLoopGroup group,
            Transport transport,
            ExportRegistry exports,
            List<SocketAddress> listen,
            NbdServerConfig config) {
        this.group = group;
        this.transport = transport;
        this.exports = exports;
        this.listen = List.copyOf(listen);
        this.config = config;
        this.limiter = new ConnectionLimiter(config.maxConnections(), config.maxConnectionsPerClient());
        long payloadMemory = config.payloadMemory() > 0 ? config.payloadMemory() : defaultPayloadMemory();
        this.payloadBudget = new PayloadBudget(
                payloadMemory,
                (channel, held, pendingNanos, total, limit, slow) -> payloadEvictions.log(
                        Level.WARNING,
                        () -> "closing connection from " + describe(channel.remoteAddress()) + ": " + (held >> 10)
                                + " KiB of a WRITE payload arrived over "
                                + TimeUnit.NANOSECONDS.toMillis(pendingNanos)
                                + (slow
                                        ? " ms (less than " + (PayloadBudget.MIN_BYTES_PER_SECOND >> 20)
                                                + " MiB/s) while other requests waited for the room it holds"
                                        : " ms and the rest did not, while partial payloads held " + (total >> 20)
                                                + " MiB of the server's " + (limit >> 20) + " MiB for them")),
                System::nanoTime,
                this::buffersAwaited);
        this.bufferBudget = new BufferBudget(payloadMemory);
        int i = 0;
        for (EventExecutor executor : group) {
            loopIndex.put(executor, i++);
            loops.add((EventLoop) executor);
        }
    }

    /** Whether a request of any connection waits for room for its buffer now. */
    private boolean buffersAwaited() {
        if (bufferBudget.waiting()) {
            return true;
        }
        for (BufferBudget export : exportBudgets.values()) {
            if (export.waiting()) {
                return true;
            }
        }
        return false;
    }

    /** Returns the server's bound on READ and WRITE buffers in flight, with what it holds now. */
    public BufferBudget bufferBudget() {
        return bufferBudget;
    }

    /** Returns each export's part of {@link #bufferBudget()}, by export name, for the exports clients have used. */
    public Map<String, BufferBudget> exportBufferBudgets() {
        return Collections.unmodifiableMap(exportBudgets);
    }

    /**
     * Creates the event loops a server and its exports' hardware contexts run on; exports must be opened
     * with {@link #hctxExecutors(EventLoopGroup)} of the same group.
     */
    public static EventLoopGroup newEventLoopGroup(int threads) {
        return new MultiThreadIoEventLoopGroup(threads, Transport.best().ioHandlerFactory());
    }

    /**
     * Creates the event loops of {@code transport}; a server started on them listens with that transport's
     * sockets.
     *
     * @throws IOException if the transport cannot run here (its reason in the message)
     */
    public static EventLoopGroup newEventLoopGroup(int threads, Transport transport) throws IOException {
        transport.checkAvailable();
        return new MultiThreadIoEventLoopGroup(threads, transport.ioHandlerFactory());
    }

    /** Returns the hardware-context executors of {@code group}: context {@code i} runs on loop {@code i mod n}. */
    public static IntFunction<HctxExecutor> hctxExecutors(EventLoopGroup group) {
        List<EventLoop> list = new ArrayList<>();
        for (EventExecutor executor : group) {
            list.add((EventLoop) executor);
        }
        return i -> new EventLoopHctxExecutor(list.get(i % list.size()));
    }

    /**
     * Binds every listen address and starts serving, without TLS and with the default limits of {@link
     * NbdServerConfig}.
     *
     * @param group the event loops from {@link #newEventLoopGroup}; the server shuts it down on close
     * @param listen TCP ({@link InetSocketAddress}) or Unix ({@link UnixDomainSocketAddress}) addresses
     * @param maxPayload the largest READ or WRITE payload the server accepts
     * @throws IOException if an address cannot be bound; nothing is left listening then
     */
    public static NbdServer start(
            EventLoopGroup group, ExportRegistry exports, List<SocketAddress> listen, int maxPayload)
            throws IOException {
        return start(
                group,
                exports,
                listen,
                NbdServerConfig.builder().maxPayload(maxPayload).build());
    }

    /**
     * Binds every listen address and starts serving.
     *
     * @param group the event loops from {@link #newEventLoopGroup}; the server shuts it down on close
     * @param listen TCP ({@link InetSocketAddress}) or Unix ({@link UnixDomainSocketAddress}) addresses, or
     *     listening sockets to serve on as they are ({@link InheritedSocket})
     * @param config the payload limit, TLS, and connection limits
     * @throws IOException if an address cannot be bound; nothing is left listening then
     */
    public static NbdServer start(
            EventLoopGroup group, ExportRegistry exports, List<SocketAddress> listen, NbdServerConfig config)
            throws IOException {
        Transport transport = Transport.of(group);
        NbdServer server = new NbdServer(group, transport, exports, listen, config);
        try {
            server.bind();
        } catch (IOException | RuntimeException e) {
            server.closeListeners();
            throw e;
        }
        server.payloadSweeper = group.next().scheduleAtFixedRate(server.payloadBudget::sweep, 1, 1, TimeUnit.SECONDS);
        return server;
    }

    private void bind() throws IOException {
        for (SocketAddress address : listen) {
            ServerBootstrap bootstrap = new ServerBootstrap()
                    .group(group)
                    .childHandler(new ChannelInitializer<>() {
                        @Override
                        protected void initChannel(Channel ch) {
                            ch.attr(ConnectionEvents.KEY).set(config.events());
                            if (!limiter.tryAcquire(ch)) {
                                // Over a cap: closed before the greeting (the limiter logged it).
                                ch.close();
                                return;
                            }
                            connections.add(ch);
                            config.events().accepted();
                            long timeout = config.handshakeTimeout().toNanos();
                            if (timeout > 0) {
                                ch.pipeline().addLast("deadline", new HandshakeDeadline(timeout, handshakeTimeouts));
                            }
                            ch.pipeline()
                                    .addLast(
                                            "handshake",
                                            new NbdHandshakeHandler(
                                                    exports,
                                                    this::startTransmission,
                                                    NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH,
                                                    config.tls()));
                        }

                        private void startTransmission(
                                ChannelHandlerContext ctx, NbdExportInfo info, NbdSession session) {
                            NbdServer.this.startTransmission(ctx, info, session);
                        }
                    })
                    .childOption(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                    .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
                    .childOption(ChannelOption.RCVBUF_ALLOCATOR, RECEIVE_BUFFERS)
                    .option(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT);
            SocketAddress bindAddress = address;
            if (address instanceof InheritedSocket inherited) {
                if (transport != Transport.EPOLL) {
                    throw new IOException("cannot serve on " + inherited + " with the "
                            + transport.name().toLowerCase(Locale.ROOT)
                            + " transport: only epoll adopts inherited sockets (use --transport epoll)");
                }
                ChannelFactory<ServerChannel> factory = inherited::newChannel;
                bootstrap.channelFactory(factory);
                if (!inherited.unix()) {
                    bootstrap.childOption(ChannelOption.TCP_NODELAY, true);
                }
                // Registered, not bound: the socket listens already, and accepting starts at once.
                Channel listener = bootstrap.register().syncUninterruptibly().channel();
                listeners.add(listener);
                LOG.log(Level.INFO, "listening on " + describe(localAddress(listener, address)) + ", " + inherited);
                continue;
            }
            if (address instanceof UnixDomainSocketAddress unix) {
                Path path = unix.getPath();
                if (Files.exists(path) && !Files.isDirectory(path)) {
                    LOG.log(Level.INFO, "removing stale socket " + path);
                    Files.delete(path);
                }
                bootstrap.channel(transport.unixServerChannel());
                bindAddress = transport == Transport.EPOLL ? new DomainSocketAddress(path.toString()) : unix;
            } else {
                bootstrap
                        .channel(transport.tcpServerChannel())
                        .option(ChannelOption.SO_REUSEADDR, true)
                        .childOption(ChannelOption.TCP_NODELAY, true);
            }
            Channel listener;
            try {
                listener = bootstrap.bind(bindAddress).syncUninterruptibly().channel();
            } catch (Exception e) {
                throw new IOException("cannot listen on " + describe(address) + ": " + e.getMessage(), e);
            }
            listeners.add(listener);
            LOG.log(Level.INFO, "listening on " + describe(localAddress(listener, address)) + " (" + transport + ")");
        }
    }

    private void startTransmission(ChannelHandlerContext ctx, NbdExportInfo info, NbdSession session) {
        Export export = Objects.requireNonNull(exports.get(info.name()), "export");
        int loop = loopIndex.getOrDefault(ctx.channel().eventLoop(), 0);
        int hctx = export.queue().hctxIndexFor(loop);
        ChannelPipeline pipeline = ctx.pipeline();
        // Transmission connections may idle as long as they like.
        if (pipeline.get(HandshakeDeadline.class) != null) {
            pipeline.remove(HandshakeDeadline.class);
        }
        limiter.transmissionStarted(ctx.channel());
        TransmissionHandler transmission = new TransmissionHandler(
                export,
                session,
                hctx,
                config.spreadMin(),
                config.spreadWrites() ? config.spreadMin() : 0,
                exportBudgets.computeIfAbsent(export.name(), name -> bufferBudget.forExport()));
        pipeline.addAfter(ctx.name(), "transmission", transmission);
        long idle = config.idleTimeout().toNanos();
        if (idle > 0) {
            pipeline.addAfter(ctx.name(), "idle", new IdleTimeout(idle, idleTimeouts));
        }
        // A WRITE payload above what the export advertises is drained, not buffered, and answered EINVAL; one
        // within it is read once the handler reserved room for it among the buffers in flight.
        pipeline.addAfter(
                ctx.name(),
                "decoder",
                new NbdRequestDecoder(
                        export.info().maximumPayload(),
                        session.extendedHeaders(),
                        payloadBudget,
                        transmission.payloadAdmission()));
        config.events()
                .negotiated(
                        session.extendedHeaders() ? "extended" : session.structuredReplies() ? "structured" : "simple",
                        pipeline.get(SslHandler.class) != null);
        LOG.log(
                Level.DEBUG,
                () -> "connection " + describe(ctx.channel().remoteAddress()) + " uses export \""
                        + info.name() + "\" on hardware context " + hctx
                        + (session.extendedHeaders()
                                ? ", extended headers"
                                : session.structuredReplies() ? ", structured replies" : ", simple replies")
                        + (pipeline.get(SslHandler.class) != null ? ", TLS" : ""));
    }

    /** Returns the address each listener is bound to; with port 0, the port the system chose. */
    public List<SocketAddress> boundAddresses() {
        List<SocketAddress> result = new ArrayList<>();
        for (int i = 0; i < listeners.size(); i++) {
            result.add(localAddress(listeners.get(i), listen.get(i)));
        }
        return result;
    }

    /** Returns the first TCP port the server listens on, or -1. */
    public int port() {
        for (SocketAddress address : boundAddresses()) {
            if (address instanceof InetSocketAddress inet) {
                return inet.getPort();
            }
        }
        return -1;
    }

    /** Returns the configuration the server runs with. */
    public NbdServerConfig config() {
        return config;
    }

    /** Returns the number of open client connections. */
    public int connectionCount() {
        return connections.size();
    }

    /**
     * Stops accepting new connections while the listening sockets stay open: connections wait in their
     * backlog for whoever serves them next. Returns the listening sockets' descriptors, in listen order, for
     * handing them to the next server process.
     *
     * @throws IOException if a listener is not an epoll channel (only those have a descriptor to hand over)
     */
    public List<Integer> pauseAccepting() throws IOException {
        List<Integer> fds = new ArrayList<>();
        for (Channel listener : listeners) {
            if (!(listener instanceof UnixChannel unix)) {
                throw new IOException("cannot hand over " + describe(listener.localAddress())
                        + ": only the epoll transport's sockets can be passed on");
            }
            listener.eventLoop()
                    .submit(() -> listener.config().setAutoRead(false))
                    .syncUninterruptibly();
            fds.add(unix.fd().intValue());
        }
        return fds;
    }

    /**
     * Stops gracefully: stops accepting; lets every connection finish and answer what it has in flight,
     * then closes it (waiting up to 30 s); closes the exports; stops the event loops.
     */
    @Override
    public void close() {
        stop(false);
    }

    /**
     * Stops for a hand-over to the next server process, as {@link #close()} but: commands each connection has
     * read are answered, later ones are left unanswered for the client to resend after it reconnects, and no
     * connection gets an error reply; Unix socket paths are left to the next process. Returns the number of
     * requests answered while draining; after it returns, the exports are closed and their locks released.
     */
    public long handOver() {
        return stop(true);
    }

    private long stop(boolean handOver) {
        if (closed) {
            return 0;
        }
        closed = true;
        ScheduledFuture<?> sweeper = payloadSweeper;
        if (sweeper != null) {
            sweeper.cancel(false);
        }
        if (handOver) {
            for (Channel listener : listeners) {
                listener.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
            }
        } else {
            closeListeners();
        }
        int open = connections.size();
        LongAdder answered = new LongAdder();
        for (Channel ch : connections) {
            TransmissionHandler handler = ch.pipeline().get(TransmissionHandler.class);
            if (handler != null && handOver) {
                handler.handOver(answered);
            } else if (handler != null) {
                handler.shutdown();
            } else {
                ch.close();
            }
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(DRAIN_SECONDS);
        while (!connections.isEmpty() && System.nanoTime() - deadline < 0) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        if (!connections.isEmpty()) {
            LOG.log(
                    Level.WARNING,
                    connections.size() + " connections still busy after " + DRAIN_SECONDS + " s; closing them");
            connections.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        }
        exports.close();
        group.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(10, TimeUnit.SECONDS);
        LOG.log(Level.INFO, "stopped; " + open + " connections were open");
        return answered.sum();
    }

    private void closeListeners() {
        for (Channel listener : listeners) {
            listener.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
        }
        for (SocketAddress address : listen) {
            if (address instanceof UnixDomainSocketAddress unix) {
                try {
                    Files.deleteIfExists(unix.getPath());
                } catch (IOException e) {
                    LOG.log(Level.WARNING, "cannot remove socket " + unix.getPath() + ": " + e.getMessage());
                }
            }
        }
    }

    private static SocketAddress localAddress(Channel listener, SocketAddress configured) {
        SocketAddress local = listener.localAddress();
        return local instanceof DomainSocketAddress ? configured : local;
    }

    /** Describes an address for logs: {@code 127.0.0.1:10809} or {@code unix:/run/mqnbd.sock}. */
    static String describe(SocketAddress address) {
        if (address instanceof InetSocketAddress inet) {
            String host = inet.getAddress() != null ? inet.getAddress().getHostAddress() : inet.getHostString();
            return (host.contains(":") ? "[" + host + "]" : host) + ":" + inet.getPort();
        }
        if (address instanceof UnixDomainSocketAddress unix) {
            return "unix:" + unix.getPath();
        }
        return String.valueOf(address);
    }
}
