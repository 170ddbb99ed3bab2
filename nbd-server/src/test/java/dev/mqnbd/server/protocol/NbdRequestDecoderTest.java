package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.concat;
import static dev.mqnbd.server.protocol.Frames.hex;
import static dev.mqnbd.server.protocol.Frames.request;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.protocol.Frames.Feed;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.IllegalReferenceCountException;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class NbdRequestDecoderTest {
    // READ, flags FUA, cookie 0x0102030405060708, offset 0x1000, length 0x200 (proto.md "Request message").
    private static final byte[] READ_FRAME =
            hex("25609513 | 0001 | 0000 | 0102030405060708 | 0000000000001000 | 00000200");
    // WRITE, no flags, cookie 0xcafe, offset 0x200, length 5, payload "hello".
    private static final byte[] WRITE_FRAME =
            hex("25609513 | 0000 | 0001 | 000000000000cafe | 0000000000000200 | 00000005 | 68656c6c6f");

    /* --------------- frames --------------- */

    @Test
    void requestHelper_matchesGoldenFrames() {
        assertThat(request(1, 0, 0x0102030405060708L, 0x1000, 0x200, new byte[0]))
                .isEqualTo(READ_FRAME);
        assertThat(request(0, 1, 0xcafe, 0x200, 5, Frames.utf8("hello"))).isEqualTo(WRITE_FRAME);
    }

    @ParameterizedTest
    @EnumSource(NbdCommand.class)
    void decode_eachCommand_wholeSplitAndGlued(NbdCommand command) {
        byte[] payload = command == NbdCommand.WRITE ? Frames.utf8("hello") : new byte[0];
        int length = command == NbdCommand.WRITE ? payload.length : 4096;
        byte[] frame = request(NbdConstants.CMD_FLAG_FUA, command.code(), -2L, 0x8000_0000_0000_0000L, length, payload);
        for (Feed feed : Frames.feeds(concat(frame, READ_FRAME), true)) {
            EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
            List<ByteBuf> written = Frames.write(ch, feed);
            List<Object> in = Frames.readAllInbound(ch);
            try {
                assertThat(in).as(feed.name()).hasSize(2);
                NbdRequest rq = (NbdRequest) in.get(0);
                assertThat(rq.command()).isEqualTo(command);
                assertThat(rq.type()).isEqualTo(command.code());
                assertThat(rq.flags()).isEqualTo(NbdConstants.CMD_FLAG_FUA);
                assertThat(rq.cookie()).isEqualTo(-2L);
                assertThat(rq.offset()).isEqualTo(0x8000_0000_0000_0000L);
                assertThat(rq.length()).isEqualTo(length);
                assertThat(rq.payloadDiscarded()).isFalse();
                if (command == NbdCommand.WRITE) {
                    assertThat(ByteBufUtil.getBytes(rq.payload())).isEqualTo(payload);
                } else {
                    assertThat(rq.payload()).isNull();
                }
                assertRead((NbdRequest) in.get(1));
            } finally {
                Frames.releaseAll(in);
            }
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    private static void assertRead(NbdRequest rq) {
        assertThat(rq.command()).isEqualTo(NbdCommand.READ);
        assertThat(rq.flags()).isEqualTo(NbdConstants.CMD_FLAG_FUA);
        assertThat(rq.cookie()).isEqualTo(0x0102030405060708L);
        assertThat(rq.offset()).isEqualTo(0x1000);
        assertThat(rq.length()).isEqualTo(0x200);
        assertThat(rq.payload()).isNull();
    }

    @Test
    void decode_lengthIsUnsigned32() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        ch.writeInbound(Unpooled.wrappedBuffer(request(0, NbdCommand.TRIM.code(), 1, 0, 0xffff_ffff, new byte[0])));
        NbdRequest rq = ch.readInbound();
        assertThat(rq.length()).isEqualTo(0xffff_ffffL);
        rq.release();
        assertThat(ch.finish()).isFalse();
    }

    /* --------------- WRITE payloads --------------- */

    @Test
    void write_payloadIsRetainedSliceOfInbound_releasedOnce() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        ByteBuf in = Unpooled.directBuffer().writeBytes(WRITE_FRAME);
        ch.writeInbound(in);
        NbdRequest rq = ch.readInbound();
        // No copy: the payload shares the inbound buffer's memory, and holds the only reference to it.
        in.setByte(NbdConstants.REQUEST_HEADER_LENGTH, 'J');
        assertThat(rq.payload().toString(java.nio.charset.StandardCharsets.US_ASCII))
                .isEqualTo("Jello");
        assertThat(in.refCnt()).isEqualTo(1);
        assertThat(rq.refCnt()).isEqualTo(1);

        assertThat(rq.release()).isTrue();
        assertThat(in.refCnt()).isZero();
        assertThat(rq.payload().refCnt()).isZero();
        assertThatThrownBy(rq::release).isInstanceOf(IllegalReferenceCountException.class);
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void write_largePayloadAcrossReads_isAGatherListOverTheNetworkBuffers_notTheCumulation() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1 << 20));
        byte[] payload = new byte[100_000];
        new java.util.Random(3).nextBytes(payload);
        byte[] frame = concat(request(0, NbdCommand.WRITE.code(), 3, 0, payload.length, payload), READ_FRAME);
        int cut1 = NbdConstants.REQUEST_HEADER_LENGTH + 5;
        int cut2 = NbdConstants.REQUEST_HEADER_LENGTH + 60_000;
        ByteBuf first = Unpooled.directBuffer().writeBytes(frame, 0, cut1);
        ByteBuf second = Unpooled.directBuffer().writeBytes(frame, cut1, cut2 - cut1);
        ByteBuf third = Unpooled.directBuffer().writeBytes(frame, cut2, frame.length - cut2);

        ch.writeInbound(first);
        ch.writeInbound(second);
        ch.writeInbound(third);
        NbdRequest write = ch.readInbound();
        NbdRequest read = ch.readInbound();

        // Three network buffers, no copy: the payload is a gather list over them.
        assertThat(write.payload().nioBufferCount()).isEqualTo(3);
        assertThat(ByteBufUtil.getBytes(write.payload())).isEqualTo(payload);
        assertRead(read);
        read.release();
        // The decoder let go of everything it read: only the payload keeps the buffers it covers.
        assertThat(ch.finish()).isFalse();
        assertThat(first.refCnt()).isEqualTo(1);
        assertThat(second.refCnt()).isEqualTo(1);
        assertThat(third.refCnt()).isEqualTo(1);
        assertThat(write.release()).isTrue();
        assertThat(first.refCnt()).isZero();
        assertThat(second.refCnt()).isZero();
        assertThat(third.refCnt()).isZero();
    }

    @Test
    void write_smallPayloadAcrossReads_isOneContiguousCopy_andTheNetworkBuffersAreFreed() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        byte[] payload = Frames.utf8("0123456789abcdef");
        byte[] frame = request(0, NbdCommand.WRITE.code(), 3, 0, payload.length, payload);
        int cut = NbdConstants.REQUEST_HEADER_LENGTH + 5;
        ByteBuf first = Unpooled.directBuffer().writeBytes(frame, 0, cut);
        ByteBuf second = Unpooled.directBuffer().writeBytes(frame, cut, frame.length - cut);

        ch.writeInbound(first);
        ch.writeInbound(second);
        NbdRequest write = ch.readInbound();

        assertThat(write.payload().nioBufferCount()).isEqualTo(1);
        assertThat(write.payload().toString(java.nio.charset.StandardCharsets.US_ASCII))
                .isEqualTo("0123456789abcdef");
        assertThat(first.refCnt()).isZero();
        assertThat(second.refCnt()).isZero();
        assertThat(write.release()).isTrue();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void write_zeroLength_emptyPayload() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        ch.writeInbound(Unpooled.wrappedBuffer(concat(request(0, 1, 7, 0, 0, new byte[0]), READ_FRAME)));
        NbdRequest write = ch.readInbound();
        assertThat(write.payload().readableBytes()).isZero();
        write.release();
        NbdRequest read = ch.readInbound();
        assertRead(read);
        read.release();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void write_aboveMaximum_drainedAndEmittedDiscarded_nextRequestDecoded() {
        byte[] payload = new byte[100];
        byte[] big = request(0, NbdCommand.WRITE.code(), 9, 4096, payload.length, payload);
        byte[] atMax = request(0, NbdCommand.WRITE.code(), 10, 0, 16, new byte[16]);
        for (Feed feed : Frames.feeds(concat(big, atMax, READ_FRAME), true)) {
            EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(16));
            List<ByteBuf> written = Frames.write(ch, feed);
            List<Object> in = Frames.readAllInbound(ch);
            try {
                assertThat(in).as(feed.name()).hasSize(3);
                NbdRequest discarded = (NbdRequest) in.get(0);
                assertThat(discarded.command()).isEqualTo(NbdCommand.WRITE);
                assertThat(discarded.cookie()).isEqualTo(9);
                assertThat(discarded.offset()).isEqualTo(4096);
                assertThat(discarded.length()).isEqualTo(100);
                assertThat(discarded.payloadDiscarded()).isTrue();
                assertThat(discarded.payload()).isNull();
                NbdRequest kept = (NbdRequest) in.get(1);
                assertThat(kept.payloadDiscarded()).isFalse();
                assertThat(kept.payload().readableBytes()).isEqualTo(16);
                assertRead((NbdRequest) in.get(2));
            } finally {
                Frames.releaseAll(in);
            }
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    @Test
    void write_aboveMaximum_isNotBuffered() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(16));
        ch.writeInbound(Unpooled.wrappedBuffer(request(0, 1, 9, 0, 1 << 30, new byte[0])));
        // 1 GiB announced: each chunk is skipped as it arrives, and each inbound buffer is freed at once.
        for (int i = 0; i < 4; i++) {
            ByteBuf chunk = Unpooled.buffer(64 * 1024).writeZero(64 * 1024);
            ch.writeInbound(chunk);
            assertThat(chunk.refCnt()).isZero();
        }
        assertThat(ch.<Object>readInbound()).isNull();
        assertThat(ch.finish()).isFalse();
    }

    /** An admission the test opens and closes: it reserves each admitted payload's length and records give-backs. */
    private static final class Gate implements PayloadAdmission {
        boolean open;
        long reserved;
        final List<Runnable> resumes = new ArrayList<>();

        @Override
        public long admit(long length, Runnable resume) {
            if (!open) {
                resumes.add(resume);
                return -1;
            }
            reserved += length;
            return length;
        }

        @Override
        public void giveBack(long bytes) {
            reserved -= bytes;
        }
    }

    @Test
    void admission_aPayloadWithoutRoomIsNotRead_untilResumed_thenCarriesItsReservation() {
        Gate gate = new Gate();
        PayloadBudget partial = new PayloadBudget(1 << 20, PayloadBudget.Eviction.NONE, System::nanoTime);
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024, false, partial, gate));
        byte[] write = request(0, 1, 7, 0, 5, Frames.utf8("hello"));
        // The header and the first two bytes of its payload, then a READ: nothing is taken in past the header.
        ch.writeInbound(Unpooled.wrappedBuffer(java.util.Arrays.copyOf(write, write.length - 3)));
        assertThat((Object) ch.readInbound()).isNull();
        assertThat(partial.held()).as("payload bytes counted as arriving").isZero();
        assertThat(gate.resumes).hasSize(1);
        ch.writeInbound(Unpooled.wrappedBuffer(concat(Frames.utf8("llo"), READ_FRAME)));
        assertThat((Object) ch.readInbound()).isNull();

        gate.open = true;
        gate.resumes.get(gate.resumes.size() - 1).run();
        NbdRequest rq = ch.readInbound();
        assertThat(ByteBufUtil.getBytes(rq.payload())).isEqualTo(Frames.utf8("hello"));
        assertThat(rq.reserved()).isEqualTo(5);
        assertRead(ch.readInbound());
        assertThat(gate.reserved).isEqualTo(5);
        rq.release();
        assertThat(gate.reserved).as("given back with the request").isZero();

        // Taken over with the payload, the reservation is no longer the request's to give back.
        ch.writeInbound(Unpooled.wrappedBuffer(write));
        NbdRequest second = ch.readInbound();
        assertThat(second.takeReservation()).isEqualTo(5);
        second.release();
        assertThat(gate.reserved).isEqualTo(5);
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void admission_aConnectionClosedHalfWayThroughAnAdmittedPayload_givesItsReservationBack() {
        Gate gate = new Gate();
        gate.open = true;
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024, false, PayloadBudget.UNLIMITED, gate));
        byte[] write = request(0, 1, 7, 0, 5, Frames.utf8("hello"));
        ch.writeInbound(Unpooled.wrappedBuffer(java.util.Arrays.copyOf(write, write.length - 1)));
        assertThat(gate.reserved).isEqualTo(5);
        ch.close();
        assertThat(gate.reserved).isZero();
    }

    @Test
    void close_midPayload_releasesEverything() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        ByteBuf in = Unpooled.wrappedBuffer(WRITE_FRAME, 0, WRITE_FRAME.length - 2);
        ch.writeInbound(in);
        assertThat(ch.<Object>readInbound()).isNull();
        assertThat(ch.finish()).isFalse();
        assertThat(in.refCnt()).isZero();
    }

    /* --------------- violations --------------- */

    @Test
    void unknownCommand_emittedWithNullCommand() {
        byte[] unknown = request(0, 42, 5, 0, 0, new byte[0]);
        for (Feed feed : Frames.feeds(concat(unknown, READ_FRAME), true)) {
            EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
            List<ByteBuf> written = Frames.write(ch, feed);
            List<Object> in = Frames.readAllInbound(ch);
            try {
                assertThat(in).hasSize(2);
                NbdRequest rq = (NbdRequest) in.get(0);
                assertThat(rq.command()).isNull();
                assertThat(rq.type()).isEqualTo(42);
                assertThat(rq.cookie()).isEqualTo(5);
                assertRead((NbdRequest) in.get(1));
            } finally {
                Frames.releaseAll(in);
            }
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    @Test
    void badMagic_throwsCodecException_thenSkipsEverything() {
        byte[] bad = READ_FRAME.clone();
        bad[0] = 0x26;
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024));
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(concat(READ_FRAME, bad, READ_FRAME))))
                .isInstanceOf(NbdCodecException.class)
                .hasMessage("request magic: 0x26609513 (expected: 0x25609513)");
        NbdRequest first = ch.readInbound();
        assertRead(first);
        first.release();
        // BAD: the stream cannot be resynced, so even a valid frame is skipped.
        ByteBuf later = Unpooled.wrappedBuffer(READ_FRAME);
        ch.writeInbound(later);
        assertThat(later.refCnt()).isZero();
        assertThat(ch.<Object>readInbound()).isNull();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void badMagic_pipelineClosesChannel() {
        byte[] bad = READ_FRAME.clone();
        bad[3] = 0;
        for (Feed feed : Frames.feeds(concat(bad, READ_FRAME), true)) {
            List<Throwable> caught = new ArrayList<>();
            EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024), new CloseOnException(caught));
            List<ByteBuf> written = Frames.write(ch, feed);
            assertThat(ch.isActive()).isFalse();
            assertThat(caught).singleElement().isInstanceOf(NbdCodecException.class);
            assertThat(ch.<Object>readInbound()).isNull();
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    /** Closes the channel on any exception, as the server's last handler does. */
    private static final class CloseOnException extends ChannelInboundHandlerAdapter {
        private final List<Throwable> caught;

        CloseOnException(List<Throwable> caught) {
            this.caught = caught;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            caught.add(cause);
            ctx.close();
        }
    }

    @Test
    void constructor_negativeMaximum_throws() {
        assertThatThrownBy(() -> new NbdRequestDecoder(-1))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("maximumPayload: -1 (expected: >= 0)");
    }

    /* --------------- extended headers (ext branch) --------------- */

    @Test
    void extended_writeAndLongTrim() {
        // WRITE, flags PAYLOAD_LEN, cookie 3, offset 0, u64 length 4, payload "abcd".
        byte[] write =
                hex("21e41c71 | 0020 | 0001 | 0000000000000003 | 0000000000000000 | 0000000000000004 | 61626364");
        assertThat(write)
                .isEqualTo(Frames.extendedRequest(NbdConstants.CMD_FLAG_PAYLOAD_LEN, 1, 3, 0, 4, Frames.utf8("abcd")));
        // TRIM of 8 GiB: an effect length, no payload.
        byte[] trim = Frames.extendedRequest(0, NbdCommand.TRIM.code(), 4, 4096, 1L << 33, new byte[0]);
        // WRITE above the maximum, drained.
        byte[] big = Frames.extendedRequest(NbdConstants.CMD_FLAG_PAYLOAD_LEN, 1, 5, 0, 40, new byte[40]);
        for (Feed feed : Frames.feeds(concat(write, trim, big, trim), true)) {
            EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(32, true));
            List<ByteBuf> written = Frames.write(ch, feed);
            List<Object> in = Frames.readAllInbound(ch);
            try {
                assertThat(in).hasSize(4);
                NbdRequest w = (NbdRequest) in.get(0);
                assertThat(w.command()).isEqualTo(NbdCommand.WRITE);
                assertThat(ByteBufUtil.getBytes(w.payload())).isEqualTo(Frames.utf8("abcd"));
                NbdRequest t = (NbdRequest) in.get(1);
                assertThat(t.command()).isEqualTo(NbdCommand.TRIM);
                assertThat(t.length()).isEqualTo(1L << 33);
                assertThat(t.payload()).isNull();
                NbdRequest b = (NbdRequest) in.get(2);
                assertThat(b.payloadDiscarded()).isTrue();
                assertThat(b.length()).isEqualTo(40);
                assertThat(((NbdRequest) in.get(3)).cookie()).isEqualTo(4);
            } finally {
                Frames.releaseAll(in);
            }
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    @Test
    void extended_compactMagic_throws() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(32, true));
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(concat(READ_FRAME, new byte[4]))))
                .isInstanceOf(NbdCodecException.class)
                .hasMessage("request magic: 0x25609513 (expected: 0x21e41c71)");
        assertThat(ch.finish()).isFalse();
    }
}
