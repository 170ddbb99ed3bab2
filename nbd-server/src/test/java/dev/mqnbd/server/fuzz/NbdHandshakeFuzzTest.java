package dev.mqnbd.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.mq.Status;
import dev.mqnbd.server.EventLoopHctxExecutor;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.server.handler.TransmissionHandler;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdHandshakeHandler;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Fuzzes a whole server connection from the first byte the client sends after the greeting: option
 * haggling ({@link NbdHandshakeHandler}), and after {@code NBD_OPT_GO} or {@code NBD_OPT_EXPORT_NAME} the
 * transmission phase ({@link NbdRequestDecoder}, {@link TransmissionHandler}) over real memory exports
 * ("" and the read-only "ro") and a {@link SlowDisk} ("slow": delayed, failed, dropped and refused requests,
 * four tags, on a {@link ManualExecutor}), wired as {@code NbdServer} wires them, on an {@link
 * EmbeddedChannel}; the clocks move 1 ms per read.
 *
 * <p>Properties: no exception reaches the end of the pipeline and nothing unhandled does; the server never
 * allocates a buffer above {@link #ALLOCATION_LIMIT} whatever lengths the client claims; every option
 * reply is well framed and of a known shape ({@link HandshakeTranscript}), and what the handshake
 * negotiated is consistent; in transmission every reply starts with the magic of the negotiated framing;
 * while the channel is open it is either still haggling (handshake handler in place, no transmission
 * handlers) or in transmission (handshake handler gone, decoder and handler in place); every request ends
 * (also when the client hangs up with requests in flight); once the channel closes every buffer, inbound or
 * allocated by the server, is released.
 *
 * <p>In a normal build {@code @FuzzTest} runs the seed corpus in {@code
 * src/test/resources/dev/mqnbd/server/fuzz/NbdHandshakeFuzzTestInputs/handshake/} (regression mode);
 * {@code JAZZER_FUZZ=1} fuzzes it, as docs/hardening.md shows.
 */
class NbdHandshakeFuzzTest {
    static final int MAXIMUM_PAYLOAD = 16 * 1024;
    static final long DEFAULT_SIZE = 1 << 20;
    static final long READ_ONLY_SIZE = 64 * 1024;

    /**
     * The largest buffer the server may allocate: option data is buffered up to 16 KiB (the handshake's
     * default maximum) in a cumulation that grows by powers of two, and a READ reply is at most one payload
     * plus its header. Claimed lengths (up to 4 GiB) must never size an allocation.
     */
    static final int ALLOCATION_LIMIT = 64 * 1024;

    private static final byte[] GREETING = {
        0x4e, 0x42, 0x44, 0x4d, 0x41, 0x47, 0x49, 0x43, // NBDMAGIC
        0x49, 0x48, 0x41, 0x56, 0x45, 0x4f, 0x50, 0x54, // IHAVEOPT
        0x00, 0x03 // FIXED_NEWSTYLE | NO_ZEROES
    };

    @BeforeAll
    static void quiet() {
        QuietLogs.silence();
    }

    @AfterAll
    static void loud() {
        QuietLogs.restore();
    }

    @FuzzTest(maxDuration = "10m")
    void handshake(byte[] input) throws Exception {
        check(FuzzInput.of(input));
    }

    /** How a connection ended, for the seed corpus test. */
    record Outcome(
            boolean transmission,
            NbdSession session,
            int optionReplies,
            int transmissionReplies,
            boolean closedByServer,
            long faultsInjected) {}

    /** Runs one input through a fresh connection and checks every property; throws on a violation. */
    static Outcome check(FuzzInput input) throws Exception {
        TrackingAllocator alloc = new TrackingAllocator().limit(ALLOCATION_LIMIT);
        EmbeddedChannel ch = new EmbeddedChannel();
        ch.config().setAllocator(alloc);
        ExportRegistry exports = new ExportRegistry();
        ManualExecutor disk = new ManualExecutor();
        Connection c = new Connection(ch, exports);
        List<ByteBuf> fed = new ArrayList<>();
        boolean closedByServer = false;
        long faults = 0;
        try {
            QueueSetup setup =
                    new QueueSetup("fuzz", 1, 8, i -> new EventLoopHctxExecutor(ch.eventLoop()), Duration.ZERO);
            exports.open("", "memory:1M", "fuzz disk", new DeviceOptions(false), setup, MAXIMUM_PAYLOAD);
            exports.open("ro", "memory:64K", "", new DeviceOptions(true), setup, MAXIMUM_PAYLOAD);
            // Time stands still unless the harness moves it: the slow disk's delays and timeouts then fire at
            // points the input decides (how it is cut into reads), reproducibly.
            ch.freezeTime();
            SlowDisk.Slow slow = SlowDisk.open(disk);
            exports.add(Export.of("slow", "a slow, failing disk", slow.queue(), MAXIMUM_PAYLOAD));

            ch.pipeline().addLast("handshake", new NbdHandshakeHandler(exports, c::start));
            assertThat(drainBytes(ch)).as("greeting").isEqualTo(GREETING);

            for (byte[] chunk : input.chunks()) {
                if (!ch.isOpen()) {
                    break;
                }
                ByteBuf buf = Unpooled.wrappedBuffer(chunk);
                fed.add(buf);
                ch.writeInbound(buf);
                c.drainOutbound();
                c.checkState();
                tick(ch, disk, 1);
                c.drainOutbound();
                c.checkState();
            }
            closedByServer = !ch.isOpen();
            if (c.session == null) {
                c.optionReplies = HandshakeTranscript.checkOptionReplies(c.transcript.toByteArray());
            }
            // The client hangs up either at once, with requests still in flight, or once all were answered.
            if ((input.chunking() & 1) == 0) {
                ch.close();
            }
            for (int i = 0; i < 100 && inFlight(exports) > 0; i++) {
                tick(ch, disk, 10);
                if (i == 10) {
                    slow.faulty().endDropped(Status.TIMEOUT); // as the timeout would have, on the real clock
                }
                c.drainOutbound();
            }
            Check.that(
                    inFlight(exports) == 0, () -> "requests in flight 1 s after the input ended: " + inFlight(exports));
            for (FaultRule rule : slow.faulty().rules()) {
                faults += rule.injected();
            }
            ch.finish();
            c.drainOutbound();
            assertThat(ch.readInbound() == null)
                    .as("nothing reaches the end of the pipeline")
                    .isTrue();
            ch.checkException();
            for (Export export : exports.all()) {
                Check.that(
                        export.queue().inFlight() == 0,
                        () -> "requests in flight on \"" + export.name() + "\" after close: "
                                + export.queue().inFlight());
            }
        } finally {
            ch.finishAndReleaseAll();
            if (inFlight(exports) == 0) {
                exports.close();
            }
        }
        for (ByteBuf buf : fed) {
            Check.that(buf.refCnt() == 0, () -> "an inbound buffer after close: refCnt " + buf.refCnt());
        }
        alloc.assertAllReleased("after close");
        return new Outcome(
                c.session != null, c.session, c.optionReplies, c.transmissionReplies, closedByServer, faults);
    }

    /**
     * Moves the clocks of the channel and of the slow disk on by {@code millis} and runs what fell due there:
     * delays, BUSY retries, timeout scans, and the writes and flushes of the replies they complete.
     */
    private static void tick(EmbeddedChannel ch, ManualExecutor disk, long millis) {
        ch.advanceTimeBy(millis, TimeUnit.MILLISECONDS);
        ch.runScheduledPendingTasks();
        ch.runPendingTasks();
        disk.advance(millis);
        ch.runPendingTasks();
    }

    private static int inFlight(ExportRegistry exports) {
        int n = 0;
        for (Export export : exports.all()) {
            n += export.queue().inFlight();
        }
        return n;
    }

    private static byte[] drainBytes(EmbeddedChannel ch) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object msg; (msg = ch.readOutbound()) != null; ) {
            ByteBuf buf = (ByteBuf) msg;
            try {
                out.writeBytes(ByteBufUtil.getBytes(buf));
            } finally {
                buf.release();
            }
        }
        return out.toByteArray();
    }

    /** One connection's state as the harness sees it; the starter is {@code NbdServer}'s, plus checks. */
    private static final class Connection {
        final EmbeddedChannel ch;
        final ExportRegistry exports;
        final ByteArrayOutputStream transcript = new ByteArrayOutputStream();
        NbdSession session;
        int optionReplies;
        int transmissionReplies;

        Connection(EmbeddedChannel ch, ExportRegistry exports) {
            this.ch = ch;
            this.exports = exports;
        }

        /** Starts transmission as {@code NbdServer} does, after checking the handshake's transcript. */
        void start(ChannelHandlerContext ctx, NbdExportInfo info, NbdSession negotiated) {
            assertThat(session).as("transmission started twice").isNull();
            Export export = exports.get(info.name());
            assertThat(export).as("export \"%s\"", info.name()).isNotNull();
            drainOutbound();
            HandshakeTranscript.checkStarted(transcript.toByteArray(), info, negotiated);
            optionReplies = -1;
            session = negotiated;
            int hctx = export.queue().hctxIndexFor(0);
            ctx.pipeline()
                    .addAfter(ctx.name(), "transmission", new TransmissionHandler(export, negotiated, hctx, 0, 0));
            ctx.pipeline()
                    .addAfter(
                            ctx.name(),
                            "decoder",
                            new NbdRequestDecoder(MAXIMUM_PAYLOAD, negotiated.extendedHeaders()));
        }

        /** Handshake phase: appends to the transcript. Transmission: checks each reply's magic. */
        void drainOutbound() {
            for (Object msg; (msg = ch.readOutbound()) != null; ) {
                ByteBuf buf = (ByteBuf) msg;
                try {
                    if (session == null) {
                        transcript.writeBytes(ByteBufUtil.getBytes(buf));
                    } else if (buf.isReadable()) {
                        checkReplyMagic(buf);
                        transmissionReplies++;
                    }
                } finally {
                    buf.release();
                }
            }
        }

        private void checkReplyMagic(ByteBuf reply) {
            Check.that(
                    reply.readableBytes() >= 16,
                    () -> "reply of " + reply.readableBytes() + " bytes (expected: >= 16)");
            int magic = reply.getInt(reply.readerIndex());
            boolean ok;
            if (session.extendedHeaders()) {
                // With extended headers simple replies MUST NOT be used.
                ok = magic == NbdConstants.EXTENDED_REPLY_MAGIC;
            } else if (session.structuredReplies()) {
                ok = magic == NbdConstants.SIMPLE_REPLY_MAGIC || magic == NbdConstants.STRUCTURED_REPLY_MAGIC;
            } else {
                ok = magic == NbdConstants.SIMPLE_REPLY_MAGIC;
            }
            Check.that(
                    ok,
                    () -> "reply magic: 0x" + Integer.toHexString(magic) + " (expected: the magic of "
                            + (session.extendedHeaders()
                                    ? "extended"
                                    : session.structuredReplies() ? "structured or simple" : "simple")
                            + " replies)");
        }

        /** An open channel is either haggling or transmitting, never half way. */
        void checkState() {
            if (!ch.isOpen()) {
                return;
            }
            ChannelPipeline p = ch.pipeline();
            boolean handshake = p.get(NbdHandshakeHandler.class) != null;
            boolean decoder = p.get(NbdRequestDecoder.class) != null;
            boolean transmission = p.get(TransmissionHandler.class) != null;
            boolean ok =
                    session == null ? handshake && !decoder && !transmission : !handshake && decoder && transmission;
            Check.that(ok, () -> (session == null ? "haggling" : "transmission") + " with handlers " + p.names());
        }
    }
}
