package dev.mqnbd.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.mqnbd.server.fuzz.ReferenceRequests.Expected;
import dev.mqnbd.server.fuzz.ReferenceRequests.Reading;
import dev.mqnbd.server.protocol.NbdCodecException;
import dev.mqnbd.server.protocol.NbdRequest;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Fuzzes {@link NbdRequestDecoder}, compact and extended headers, with any client bytes cut into any reads
 * ({@link FuzzInput}).
 *
 * <p>Properties: the requests emitted are exactly those {@link ReferenceRequests} reads from the whole
 * stream, payloads included; the decoder fails (with {@link NbdCodecException}, which the server's pipeline
 * turns into a close) exactly when that reading meets a framing error, and throws nothing else; a payload
 * above the maximum is drained, never buffered: the input the decoder holds on to stays within one header,
 * one maximum payload and a few reads, and nothing it allocates is larger; every inbound buffer and every
 * payload is released once the channel closes.
 *
 * <p>In a normal build {@code @FuzzTest} runs the seed corpus in {@code
 * src/test/resources/dev/mqnbd/server/fuzz/NbdRequestDecoderFuzzTestInputs/<method>/} (regression mode);
 * {@code JAZZER_FUZZ=1} fuzzes one method, as docs/hardening.md shows.
 */
class NbdRequestDecoderFuzzTest {
    /** Small, so inputs of a few KiB reach both the buffered and the drained payload paths. */
    static final int MAXIMUM_PAYLOAD = 1024;

    @BeforeAll
    static void quiet() {
        QuietLogs.silence();
    }

    @AfterAll
    static void loud() {
        QuietLogs.restore();
    }

    @FuzzTest(maxDuration = "10m")
    void compactHeaders(byte[] input) {
        check(FuzzInput.of(input), false);
    }

    @FuzzTest(maxDuration = "10m")
    void extendedHeaders(byte[] input) {
        check(FuzzInput.of(input), true);
    }

    /** Runs one input through a fresh decoder and checks every property; throws on a violation. */
    static void check(FuzzInput input, boolean extended) {
        int header = extended ? 32 : 28;
        TrackingAllocator alloc = new TrackingAllocator().limit(header + MAXIMUM_PAYLOAD);
        EmbeddedChannel ch = new EmbeddedChannel();
        ch.config().setAllocator(alloc);
        Outcome outcome = new Outcome();
        ch.pipeline().addLast(new NbdRequestDecoder(MAXIMUM_PAYLOAD, extended), outcome);
        List<ByteBuf> fed = new ArrayList<>();
        List<Expected> got = new ArrayList<>();
        // What the decoder may hold: a partial frame (< one header or one buffered payload) plus the reads
        // it has not discarded yet (the current one and those pinned by requests not yet released).
        long bound = header + MAXIMUM_PAYLOAD + 4L * input.largestChunk();
        int oldestHeld = 0;
        try {
            for (byte[] chunk : input.chunks()) {
                if (!ch.isOpen()) {
                    break;
                }
                ByteBuf buf = Unpooled.wrappedBuffer(chunk);
                fed.add(buf);
                ch.writeInbound(buf);
                drain(ch, got);
                // Reads are let go of in order, so only those from the oldest one still held on count.
                while (fed.get(oldestHeld).refCnt() == 0 && oldestHeld < fed.size() - 1) {
                    oldestHeld++;
                }
                long held = 0;
                for (int i = oldestHeld; i < fed.size(); i++) {
                    held += fed.get(i).refCnt() > 0 ? fed.get(i).capacity() : 0;
                }
                long heldBytes = held;
                Check.that(
                        held <= bound,
                        () -> "input bytes the decoder holds on to: " + heldBytes + " (expected: <= " + bound + ")");
            }
            ch.finish();
            drain(ch, got);
            ch.checkException();
        } finally {
            ch.finishAndReleaseAll();
        }

        Reading expected = ReferenceRequests.read(input.stream(), extended, MAXIMUM_PAYLOAD);
        if (!outcome.unexpected.isEmpty()) {
            AssertionError e = new AssertionError("an exception other than a framing error reached the pipeline's end");
            outcome.unexpected.forEach(e::addSuppressed);
            throw e;
        }
        if (!got.equals(expected.requests())) {
            assertThat(got).as("decoded requests").containsExactlyElementsOf(expected.requests());
        }
        Check.that(
                outcome.framingError == expected.framingError(),
                () -> "framing error: " + outcome.framingError + " (expected: " + expected.framingError() + ")");
        for (ByteBuf buf : fed) {
            Check.that(buf.refCnt() == 0, () -> "an inbound buffer after close: refCnt " + buf.refCnt());
        }
        alloc.assertAllReleased("after close");
    }

    /** Reads every request the decoder emitted, checks it, and releases it. */
    private static void drain(EmbeddedChannel ch, List<Expected> got) {
        for (Object msg; (msg = ch.readInbound()) != null; ) {
            NbdRequest rq = (NbdRequest) msg;
            try {
                ByteBuf payload = rq.payload();
                Check.that(
                        payload == null || (payload.readableBytes() == rq.length() && rq.length() <= MAXIMUM_PAYLOAD),
                        () -> "payload of " + rq + ": " + payload.readableBytes() + " bytes (expected: its length, <= "
                                + MAXIMUM_PAYLOAD + ")");
                Check.that(
                        !rq.payloadDiscarded() || rq.length() > MAXIMUM_PAYLOAD,
                        () -> "drained payload of " + rq + " (expected: only above " + MAXIMUM_PAYLOAD + ")");
                got.add(Expected.of(rq));
            } finally {
                Check.that(rq.release(), () -> "the only reference to " + rq);
            }
        }
    }

    /** Stands where the server's transmission handler is: a framing error closes the channel. */
    private static final class Outcome extends ChannelInboundHandlerAdapter {
        boolean framingError;
        final List<Throwable> unexpected = new ArrayList<>();

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            if (cause instanceof NbdCodecException && !framingError) {
                framingError = true;
            } else {
                unexpected.add(cause);
            }
            ctx.close();
        }
    }
}
