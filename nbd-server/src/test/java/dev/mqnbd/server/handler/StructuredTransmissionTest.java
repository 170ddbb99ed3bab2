package dev.mqnbd.server.handler;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.server.EventLoopHctxExecutor;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Structured replies and extended headers on an {@link EmbeddedChannel} over a real memory export:
 * chunk framing as proto.md "Structured reply chunk message" and extension-ext-header define it.
 */
class StructuredTransmissionTest {
    private static final long SIZE = 8L << 30; // 8 GiB: room for a TRIM longer than 32 bits
    private static final int MAX_PAYLOAD = 1 << 20;
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int TRIM = 4;
    private static final int BLOCK_STATUS = 7;

    private EmbeddedChannel ch;
    private BlockQueue<?, ?, ?, ?> queue;

    @AfterEach
    void tearDown() throws Exception {
        ch.finishAndReleaseAll();
        queue.close();
    }

    private void connect(boolean extended, int context) throws Exception {
        ch = new EmbeddedChannel();
        queue = Backends.open(
                "memory:8G",
                DeviceOptions.DEFAULT,
                new QueueSetup("t", 1, 16, i -> new EventLoopHctxExecutor(ch.eventLoop()), Duration.ZERO));
        Export export = Export.of("", "test", queue, MAX_PAYLOAD);
        NbdSession session = new NbdSession(
                NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE,
                export.info().transmissionFlags(),
                true,
                true,
                extended,
                context);
        ch.pipeline()
                .addLast(
                        new NbdRequestDecoder(MAX_PAYLOAD, extended),
                        new TransmissionHandler(export, session, 0, 0, 0));
    }

    // Compact request: u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u32 length | payload
    private static ByteBuf request(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.REQUEST_MAGIC)
                .writeShort(flags)
                .writeShort(type)
                .writeLong(cookie);
        buf.writeLong(offset).writeInt((int) length);
        return payload == null ? buf : buf.writeBytes(payload);
    }

    // Extended request: u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u64 length | payload
    private static ByteBuf extendedRequest(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC)
                .writeShort(flags)
                .writeShort(type)
                .writeLong(cookie);
        buf.writeLong(offset).writeLong(length);
        return payload == null ? buf : buf.writeBytes(payload);
    }

    record Chunk(int flags, int type, long cookie, long offset, byte[] payload) {
        boolean done() {
            return (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
        }
    }

    /** Reads every chunk written so far; structured (20-byte) or extended (32-byte) headers. */
    private List<Chunk> chunks(boolean extended) throws InterruptedException {
        ch.runPendingTasks();
        // The pieces of a split TRIM are scheduled a few microseconds apart: run them all.
        for (int i = 0; i < 10_000 && ch.runScheduledPendingTasks() != -1; i++) {
            Thread.sleep(0, 100_000);
            ch.runPendingTasks();
        }
        ch.runPendingTasks(); // the flush of the last piece's reply
        ByteBuf all = Unpooled.buffer();
        ByteBuf msg;
        while ((msg = ch.readOutbound()) != null) {
            all.writeBytes(msg);
            msg.release();
        }
        List<Chunk> chunks = new ArrayList<>();
        while (all.isReadable()) {
            int magic = all.readInt();
            assertThat(magic)
                    .isEqualTo(extended ? NbdConstants.EXTENDED_REPLY_MAGIC : NbdConstants.STRUCTURED_REPLY_MAGIC);
            int flags = all.readUnsignedShort();
            int type = all.readUnsignedShort();
            long cookie = all.readLong();
            long offset = extended ? all.readLong() : -1;
            long length = extended ? all.readLong() : all.readUnsignedInt();
            byte[] payload = new byte[(int) length];
            all.readBytes(payload);
            chunks.add(new Chunk(flags, type, cookie, offset, payload));
        }
        return chunks;
    }

    private static byte[] bytes(int n, int value) {
        byte[] b = new byte[n];
        java.util.Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void read_overHolesAndData_sendsHoleAndDataChunksThenNone() throws Exception {
        connect(false, 0);
        ch.writeInbound(request(0, WRITE, 1, 8192, 4096, bytes(4096, 7)));
        ReferenceCountUtil.release(ch.readOutbound()); // the WRITE's simple reply (allowed with structured replies)
        ch.releaseOutbound();

        ch.writeInbound(request(0, READ, 2, 0, 16384, null));
        List<Chunk> chunks = chunks(false);

        assertThat(chunks)
                .extracting(Chunk::type)
                .containsExactly(
                        NbdConstants.REPLY_TYPE_OFFSET_HOLE, NbdConstants.REPLY_TYPE_OFFSET_DATA,
                        NbdConstants.REPLY_TYPE_OFFSET_HOLE, NbdConstants.REPLY_TYPE_NONE);
        assertThat(chunks).allMatch(c -> c.cookie() == 2);
        assertThat(chunks.get(3).done()).isTrue();
        assertThat(chunks.subList(0, 3)).noneMatch(Chunk::done);
        // OFFSET_HOLE: u64 offset | u32 size
        assertThat(Unpooled.wrappedBuffer(chunks.get(0).payload()).readLong()).isZero();
        assertThat(Unpooled.wrappedBuffer(chunks.get(0).payload()).getInt(8)).isEqualTo(8192);
        // OFFSET_DATA: u64 offset | data
        ByteBuf data = Unpooled.wrappedBuffer(chunks.get(1).payload());
        assertThat(data.readLong()).isEqualTo(8192);
        assertThat(data.readableBytes()).isEqualTo(4096);
        assertThat(data.getByte(8 + 100)).isEqualTo((byte) 7);
    }

    /**
     * Large READs are answered with the memory backend's own pages (READ_SEGMENTS) and large WRITEs that
     * arrive in several network buffers are taken as a gather list (WRITE_SEGMENTS): the bytes that come
     * back are the bytes that went in, with holes as holes, in one chunk with DF.
     */
    @ParameterizedTest(name = "df={0}")
    @ValueSource(booleans = {false, true})
    void largeWriteInPieces_thenLargeRead_sameBytes(boolean df) throws Exception {
        connect(false, 0);
        byte[] data = new byte[300_000];
        new java.util.Random(5).nextBytes(data);
        ByteBuf frame = request(0, WRITE, 1, 65_636, data.length, data);
        while (frame.isReadable()) {
            ch.writeInbound(frame.readRetainedSlice(Math.min(frame.readableBytes(), 65_536))
                    .copy());
        }
        frame.release();
        ch.runPendingTasks();
        ch.releaseOutbound();

        ch.writeInbound(request(df ? NbdConstants.CMD_FLAG_DF : 0, READ, 2, 0, 512 << 10, null));
        List<Chunk> chunks = chunks(false);

        byte[] expected = new byte[512 << 10];
        System.arraycopy(data, 0, expected, 65_636, data.length);
        byte[] got = new byte[512 << 10];
        java.util.Arrays.fill(got, (byte) 0x5A);
        for (Chunk c : chunks) {
            ByteBuf p = Unpooled.wrappedBuffer(c.payload());
            if (c.type() == NbdConstants.REPLY_TYPE_OFFSET_DATA) {
                int at = (int) p.readLong();
                p.readBytes(got, at, p.readableBytes());
            } else if (c.type() == NbdConstants.REPLY_TYPE_OFFSET_HOLE) {
                int at = (int) p.readLong();
                java.util.Arrays.fill(got, at, at + p.readInt(), (byte) 0);
            }
        }
        assertThat(got).isEqualTo(expected);
        assertThat(chunks.getLast().done()).isTrue();
        if (df) {
            assertThat(chunks).hasSize(1);
        } else {
            assertThat(chunks).extracting(Chunk::type).contains(NbdConstants.REPLY_TYPE_OFFSET_HOLE);
        }
    }

    @Test
    void read_withDf_sendsOneDataChunk() throws Exception {
        connect(false, 0);

        ch.writeInbound(request(NbdConstants.CMD_FLAG_DF, READ, 3, 4096, 8192, null));
        List<Chunk> chunks = chunks(false);

        assertThat(chunks).hasSize(1);
        assertThat(chunks.get(0).type()).isEqualTo(NbdConstants.REPLY_TYPE_OFFSET_DATA);
        assertThat(chunks.get(0).done()).isTrue();
        assertThat(chunks.get(0).payload()).hasSize(8 + 8192);
    }

    @Test
    void read_pastEnd_isAnErrorChunk() throws Exception {
        connect(false, 0);

        ch.writeInbound(request(0, READ, 4, SIZE - 100, 4096, null));
        List<Chunk> chunks = chunks(false);

        assertThat(chunks).hasSize(1);
        assertThat(chunks.get(0).type()).isEqualTo(NbdConstants.REPLY_TYPE_ERROR);
        assertThat(chunks.get(0).done()).isTrue();
        ByteBuf payload = Unpooled.wrappedBuffer(chunks.get(0).payload());
        assertThat(payload.readInt()).isEqualTo(NbdError.EINVAL.code()); // u32 error | u16 length | message
        assertThat(payload.readUnsignedShort()).isEqualTo(payload.readableBytes());
    }

    @Test
    void blockStatus_withoutContext_isInvalid_withContext_reportsExtents() throws Exception {
        connect(false, 0);
        ch.writeInbound(request(0, BLOCK_STATUS, 5, 0, 65536, null));
        List<Chunk> refused = chunks(false);
        assertThat(refused).extracting(Chunk::type).containsExactly(NbdConstants.REPLY_TYPE_ERROR);
        tearDown();

        connect(false, 1);
        ch.writeInbound(request(0, WRITE, 6, 4096, 4096, bytes(4096, 1)));
        ch.releaseOutbound();
        ch.writeInbound(request(0, BLOCK_STATUS, 7, 0, 65536, null));
        List<Chunk> chunks = chunks(false);

        assertThat(chunks).hasSize(1);
        assertThat(chunks.get(0).type()).isEqualTo(NbdConstants.REPLY_TYPE_BLOCK_STATUS);
        assertThat(chunks.get(0).done()).isTrue();
        ByteBuf p = Unpooled.wrappedBuffer(chunks.get(0).payload());
        assertThat(p.readInt()).isEqualTo(1); // context id
        assertThat(new long[] {
                    p.readUnsignedInt(), p.readInt(), p.readUnsignedInt(), p.readInt(), p.readUnsignedInt(), p.readInt()
                })
                .containsExactly(4096, 3, 4096, 0, 65536 - 8192, 3);
        assertThat(p.isReadable()).isFalse();
    }

    @Test
    void extendedHeaders_writeReadBlockStatusAndLongTrim() throws Exception {
        connect(true, 1);
        byte[] payload = bytes(4096, 9);

        ch.writeInbound(extendedRequest(NbdConstants.CMD_FLAG_PAYLOAD_LEN, WRITE, 10, 7L << 30, 4096, payload));
        ch.writeInbound(extendedRequest(0, READ, 11, 7L << 30, 4096, null));
        // A TRIM of 6 GiB: only extended headers can say that in one request.
        ch.writeInbound(extendedRequest(0, TRIM, 12, 0, 6L << 30, null));
        // From 4 KiB before the write to the end: the reply covers at most MAX_BLOCK_STATUS_SPAN of that.
        ch.writeInbound(extendedRequest(0, BLOCK_STATUS, 13, (7L << 30) - 4096, SIZE - (7L << 30) + 4096, null));
        List<Chunk> chunks = chunks(true);

        // The TRIM's 1 GiB pieces are scheduled one after the other: its reply may come after the BLOCK_STATUS's.
        assertThat(chunks)
                .extracting(Chunk::cookie, Chunk::type)
                .containsExactlyInAnyOrder(
                        org.assertj.core.groups.Tuple.tuple(10L, NbdConstants.REPLY_TYPE_NONE),
                        org.assertj.core.groups.Tuple.tuple(11L, NbdConstants.REPLY_TYPE_OFFSET_DATA),
                        org.assertj.core.groups.Tuple.tuple(12L, NbdConstants.REPLY_TYPE_NONE),
                        org.assertj.core.groups.Tuple.tuple(13L, NbdConstants.REPLY_TYPE_BLOCK_STATUS_EXT));
        chunks.sort(java.util.Comparator.comparingLong(Chunk::cookie));
        assertThat(chunks).allMatch(Chunk::done);
        assertThat(chunks.get(0).offset()).isEqualTo(7L << 30); // the header echoes the request offset
        ByteBuf data = Unpooled.wrappedBuffer(chunks.get(1).payload());
        assertThat(data.readLong()).isEqualTo(7L << 30);
        assertThat(data.getByte(8)).isEqualTo((byte) 9);
        // BLOCK_STATUS_EXT: u32 id | u32 count | n × (u64 length | u64 flags); the TRIM (0..6G, split into
        // 1 GiB pieces) spared 7G.
        ByteBuf status = Unpooled.wrappedBuffer(chunks.get(3).payload());
        assertThat(status.readInt()).isEqualTo(1);
        assertThat(status.readInt()).isEqualTo(3);
        assertThat(new long[] {
                    status.readLong(),
                    status.readLong(),
                    status.readLong(),
                    status.readLong(),
                    status.readLong(),
                    status.readLong()
                })
                .containsExactly(4096, 3, 4096, 0, TransmissionHandler.MAX_BLOCK_STATUS_SPAN - 8192, 3);
    }

    @Test
    void extendedHeaders_errorsAreChunksToo() throws Exception {
        connect(true, 0);

        ch.writeInbound(extendedRequest(0, 9, 20, 0, 0, null)); // unknown command
        List<Chunk> chunks = chunks(true);

        assertThat(chunks).hasSize(1);
        assertThat(chunks.get(0).type()).isEqualTo(NbdConstants.REPLY_TYPE_ERROR);
        assertThat(Unpooled.wrappedBuffer(chunks.get(0).payload()).readInt()).isEqualTo(NbdError.EINVAL.code());
    }

    @Test
    void trimOverGigabytes_isSplitIntoPieces_answeredOnceAfterTheLast() throws Exception {
        connect(true, 1);
        byte[] payload = bytes(4096, 5);
        for (long at : new long[] {0, (3L << 30) + 4096, (6L << 30) - 4096, 6L << 30}) {
            ch.writeInbound(extendedRequest(NbdConstants.CMD_FLAG_PAYLOAD_LEN, WRITE, 1, at, 4096, payload));
        }
        chunks(true);

        ch.writeInbound(extendedRequest(0, TRIM, 2, 0, 6L << 30, null));
        List<Chunk> replies = chunks(true);

        assertThat(replies)
                .extracting(Chunk::cookie, Chunk::type)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(2L, NbdConstants.REPLY_TYPE_NONE));
        assertThat(replies.get(0).offset()).isZero();
        // Pieces of at most MAX_ZERO_CHUNK: six of them, each a request of its own.
        assertThat((6L << 30) / TransmissionHandler.MAX_ZERO_CHUNK).isEqualTo(6);
        ch.writeInbound(extendedRequest(0, BLOCK_STATUS, 3, (6L << 30) - 8192, 16384, null));
        ByteBuf status = Unpooled.wrappedBuffer(chunks(true).get(0).payload());
        status.skipBytes(8);
        // Everything trimmed up to 6 GiB; the page at 6 GiB, past the TRIM, kept.
        assertThat(new long[] {status.readLong(), status.readLong(), status.readLong(), status.readLong()})
                .containsExactly(8192, 3, 4096, 0);
    }
}
