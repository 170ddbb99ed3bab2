package dev.mqnbd.server.handler;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagSet;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdError;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import dev.mqnbd.server.protocol.NbdSession;
import dev.mqnbd.server.protocol.PayloadBudget;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The transmission phase on an {@link EmbeddedChannel}: the real decoder and handler over a {@link
 * TestDisk} queue. Frames are spelt out field by field as proto.md "Request message" lays them out.
 */
class TransmissionHandlerTest {
    private static final int SIZE = 1 << 20;
    private static final int MAX_PAYLOAD = 64 * 1024;

    private final List<EmbeddedChannel> channels = new ArrayList<>();
    private final List<BlockQueue<?, ?, ?, ?>> queues = new ArrayList<>();
    private TestDisk disk;

    @AfterEach
    void tearDown() throws Exception {
        for (EmbeddedChannel ch : channels) {
            ch.finishAndReleaseAll();
        }
        for (BlockQueue<?, ?, ?, ?> queue : queues) {
            queue.close();
        }
    }

    /** A channel in transmission phase on a fresh disk (or the current one when {@code shareDisk}). */
    private EmbeddedChannel connect(boolean readOnly, int depth) throws Exception {
        if (disk == null) {
            disk = new TestDisk(SIZE);
        }
        EmbeddedChannel ch = transmission(disk, readOnly, depth, MAX_PAYLOAD, BufferBudget.UNLIMITED, queues);
        channels.add(ch);
        return ch;
    }

    /**
     * A channel in transmission phase over {@code disk}: the real decoder and handler, the export's queue
     * added to {@code queues} for closing; a pipeline exception closes the channel.
     */
    static EmbeddedChannel transmission(
            TestDisk disk,
            boolean readOnly,
            int depth,
            int maxPayload,
            BufferBudget budget,
            List<BlockQueue<?, ?, ?, ?>> queues)
            throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel();
        BlockQueue<Object, Object, Object, Object> queue = BlockQueue.builder(
                        TagSet.builder(disk).queueDepth(depth).build())
                .limits(TestDisk.limits(disk.data.length, readOnly))
                .executors(i -> new dev.mqnbd.server.EventLoopHctxExecutor(ch.eventLoop()))
                .build();
        queues.add(queue);
        Export export = Export.of(readOnly ? "ro" : "", "test disk", queue, maxPayload);
        NbdSession session = new NbdSession(
                NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE,
                export.info().transmissionFlags() & ~NbdConstants.FLAG_SEND_DF,
                true,
                false,
                false,
                0);
        // As the server wires them: the decoder reads a payload once the handler reserved room for it.
        TransmissionHandler handler = new TransmissionHandler(export, session, 0, 0, 0, budget);
        ch.pipeline()
                .addLast(
                        new NbdRequestDecoder(maxPayload, false, PayloadBudget.UNLIMITED, handler.payloadAdmission()),
                        handler,
                        new Closer());
        return ch;
    }

    private EmbeddedChannel connect() throws Exception {
        return connect(false, 16);
    }

    /** Closes the channel on a pipeline exception, as the server's pipeline does. */
    private static final class Closer extends ChannelInboundHandlerAdapter {
        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Frames

    static ByteBuf request(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.REQUEST_MAGIC); // u32 magic 0x25609513
        buf.writeShort(flags); //                    u16 command flags
        buf.writeShort(type); //                     u16 type
        buf.writeLong(cookie); //                    u64 cookie
        buf.writeLong(offset); //                    u64 offset
        buf.writeInt((int) length); //               u32 length
        if (payload != null) {
            buf.writeBytes(payload);
        }
        return buf;
    }

    static ByteBuf request(int type, long cookie, long offset, long length) {
        return request(0, type, cookie, offset, length, null);
    }

    record Reply(int error, long cookie, byte[] data) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Reply r
                    && r.error == error
                    && r.cookie == cookie
                    && java.util.Arrays.equals(r.data, data);
        }

        @Override
        public int hashCode() {
            return java.util.Objects.hash(error, cookie, java.util.Arrays.hashCode(data));
        }
    }

    /** Reads one simple reply, which the handler writes as one buffer; a successful READ carries data. */
    static Reply readReply(EmbeddedChannel ch, int dataLength) {
        ch.runPendingTasks();
        ByteBuf in = ch.readOutbound();
        assertThat(in).as("a reply").isNotNull();
        try {
            assertThat(in.readableBytes()).as("reply header").isGreaterThanOrEqualTo(16);
            assertThat(in.readInt()).as("reply magic").isEqualTo(NbdConstants.SIMPLE_REPLY_MAGIC);
            int error = in.readInt();
            long cookie = in.readLong();
            byte[] data = new byte[error == 0 ? dataLength : 0];
            in.readBytes(data);
            assertThat(in.readableBytes()).as("bytes after the reply").isZero();
            return new Reply(error, cookie, data);
        } finally {
            in.release();
        }
    }

    private static byte[] pattern(int length, int seed) {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++) {
            bytes[i] = (byte) (seed + i * 31);
        }
        return bytes;
    }

    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int DISC = 2;
    private static final int FLUSH = 3;
    private static final int TRIM = 4;
    private static final int CACHE = 5;
    private static final int WRITE_ZEROES = 6;

    // ---------------------------------------------------------------------------------------------
    // Commands

    @Test
    void write_thenRead_returnsData() throws Exception {
        EmbeddedChannel ch = connect();
        byte[] payload = pattern(5000, 7);

        ch.writeInbound(request(0, WRITE, 0x1122334455667788L, 4095, payload.length, payload));
        Reply written = readReply(ch, 0);
        ch.writeInbound(request(READ, 42, 4095, payload.length));
        Reply read = readReply(ch, payload.length);

        assertThat(written.error()).isZero();
        assertThat(written.cookie()).isEqualTo(0x1122334455667788L);
        assertThat(read.error()).isZero();
        assertThat(read.cookie()).isEqualTo(42);
        assertThat(read.data()).isEqualTo(payload);
    }

    @Test
    void write_fua_reachesDriverWithFuaFlag() throws Exception {
        EmbeddedChannel ch = connect();

        ch.writeInbound(request(NbdConstants.CMD_FLAG_FUA, WRITE, 1, 0, 4, new byte[] {1, 2, 3, 4}));

        assertThat(readReply(ch, 0).error()).isZero();
        assertThat(disk.calls).containsExactly("queueRq WRITE 0+4 flags=1 isLast=true");
    }

    @Test
    void flushTrimAndWriteZeroes_succeedAndZero() throws Exception {
        EmbeddedChannel ch = connect();
        byte[] payload = pattern(8192, 3);
        ch.writeInbound(request(0, WRITE, 1, 0, payload.length, payload));
        readReply(ch, 0);

        ch.writeInbound(request(FLUSH, 2, 0, 0));
        assertThat(readReply(ch, 0).error()).isZero();
        ch.writeInbound(request(TRIM, 3, 0, 1024));
        assertThat(readReply(ch, 0).error()).isZero();
        ch.writeInbound(request(NbdConstants.CMD_FLAG_NO_HOLE, WRITE_ZEROES, 4, 4096, 100, null));
        assertThat(readReply(ch, 0).error()).isZero();

        ch.writeInbound(request(READ, 5, 0, 8192));
        byte[] expected = payload.clone();
        java.util.Arrays.fill(expected, 0, 1024, (byte) 0);
        java.util.Arrays.fill(expected, 4096, 4196, (byte) 0);
        assertThat(readReply(ch, 8192).data()).isEqualTo(expected);
        // NO_HOLE becomes the driver's NO_UNMAP flag (2).
        assertThat(disk.calls).contains("queueRq WRITE_ZEROES 4096+100 flags=2 isLast=true");
    }

    @Test
    void manyRequestsInOneRead_areOneBatch() throws Exception {
        EmbeddedChannel ch = connect();
        ByteBuf batch =
                Unpooled.wrappedBuffer(request(READ, 1, 0, 512), request(READ, 2, 512, 512), request(FLUSH, 3, 0, 0));

        ch.writeInbound(batch);

        assertThat(disk.calls)
                .containsExactly(
                        "queueRq READ 0+512 flags=0 isLast=false",
                        "queueRq READ 512+512 flags=0 isLast=false",
                        "queueRq FLUSH 0+0 flags=0 isLast=true");
        assertThat(readReply(ch, 512).cookie()).isEqualTo(1);
        assertThat(readReply(ch, 512).cookie()).isEqualTo(2);
        assertThat(readReply(ch, 0).cookie()).isEqualTo(3);
    }

    @Test
    void batchEndingInInvalidRequest_isCommitted() throws Exception {
        EmbeddedChannel ch = connect();

        ch.writeInbound(Unpooled.wrappedBuffer(request(READ, 1, 0, 512), request(READ, 2, SIZE, 512)));

        assertThat(disk.calls).containsExactly("queueRq READ 0+512 flags=0 isLast=false", "commitRqs");
        assertThat(readReply(ch, 512).cookie()).isEqualTo(1); // completed inline, before the next was read
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EINVAL.code(), 2, new byte[0]));
    }

    @Test
    void repliesGoOutInCompletionOrder() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;
        ch.writeInbound(Unpooled.wrappedBuffer(request(READ, 1, 0, 16), request(READ, 2, 16, 16)));
        assertThat(disk.held).hasSize(2);
        var second = disk.held.remove(1);

        second.end(Status.OK);
        disk.releaseHeld();

        assertThat(readReply(ch, 16).cookie()).isEqualTo(2);
        assertThat(readReply(ch, 16).cookie()).isEqualTo(1);
    }

    // ---------------------------------------------------------------------------------------------
    // Errors: the connection lives on

    @Test
    void errors_areTheSpecsAndConnectionLivesOn() throws Exception {
        EmbeddedChannel ch = connect();

        ch.writeInbound(request(9, 1, 0, 512)); //                                unknown command
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EINVAL.code(), 1, new byte[0]));
        ch.writeInbound(request(READ, 2, SIZE - 511, 512)); //                    read past the end
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());
        ch.writeInbound(request(0, WRITE, 3, SIZE, 1, new byte[1])); //           write past the end
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.ENOSPC.code());
        ch.writeInbound(request(READ, 4, -1L, 1)); //                            offset 2^64-1
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());
        ch.writeInbound(request(FLUSH, 5, 512, 0)); //                            FLUSH offset is reserved
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());
        ch.writeInbound(request(NbdConstants.CMD_FLAG_NO_HOLE, READ, 6, 0, 512, null)); // NO_HOLE on READ
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());
        ch.writeInbound(request(CACHE, 7, SIZE, 512)); //                        cache past the end
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());
        ch.writeInbound(request(0, WRITE_ZEROES, 8, SIZE - 1, 2, null)); //        zeroes past the end
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.ENOSPC.code());
        ch.writeInbound(request(READ, 9, 0, MAX_PAYLOAD + 1)); //                 larger than advertised
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.EINVAL.code());

        assertThat(disk.calls).isEmpty();
        ch.writeInbound(request(READ, 10, 0, 8));
        assertThat(readReply(ch, 8).error()).isZero();
        assertThat(ch.isActive()).isTrue();
    }

    @Test
    void oversizedWrite_isDrainedAnsweredAndNextRequestWorks() throws Exception {
        EmbeddedChannel ch = connect();
        byte[] huge = pattern(MAX_PAYLOAD + 4096, 1);

        ch.writeInbound(Unpooled.wrappedBuffer(
                request(0, WRITE, 1, 0, huge.length, huge), request(0, WRITE, 2, 0, 2, new byte[] {9, 9})));

        assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EINVAL.code(), 1, new byte[0]));
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(0, 2, new byte[0]));
        assertThat(disk.data[0]).isEqualTo((byte) 9);
        assertThat(disk.data[2]).isZero(); // nothing of the oversized write was stored
    }

    @Test
    void readOnlyExport_refusesWritesWithEperm() throws Exception {
        EmbeddedChannel ch = connect(true, 16);

        ch.writeInbound(request(0, WRITE, 1, 0, 1, new byte[] {1}));
        ch.writeInbound(request(TRIM, 2, 0, 512));
        ch.writeInbound(request(WRITE_ZEROES, 3, 0, 512));

        for (int cookie = 1; cookie <= 3; cookie++) {
            assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EPERM.code(), cookie, new byte[0]));
        }
        assertThat(disk.calls).isEmpty();
    }

    @Test
    void driverError_becomesNbdError() throws Exception {
        EmbeddedChannel ch = connect();
        disk.failWith = Status.IO_ERROR;

        ch.writeInbound(request(READ, 1, 0, 4096));
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EIO.code(), 1, new byte[0]));
        disk.failWith = Status.NO_SPACE;
        ch.writeInbound(request(0, WRITE, 2, 0, 1, new byte[] {1}));
        assertThat(readReply(ch, 0).error()).isEqualTo(NbdError.ENOSPC.code());
    }

    @Test
    void badMagic_closesOnlyThatConnection() throws Exception {
        EmbeddedChannel bad = connect();
        EmbeddedChannel good = connect();
        ByteBuf frame = request(READ, 1, 0, 512);
        frame.setInt(0, 0x25609514);

        bad.writeInbound(frame);

        assertThat(bad.isOpen()).isFalse();
        good.writeInbound(request(READ, 2, 0, 512));
        assertThat(readReply(good, 512).cookie()).isEqualTo(2);
        assertThat(good.isOpen()).isTrue();
    }

    // ---------------------------------------------------------------------------------------------
    // Flow: back-pressure, disconnect, shutdown

    @Test
    void noFreeTag_stopsReadingAndResumesWhenOneFrees() throws Exception {
        EmbeddedChannel ch = connect(false, 2);
        disk.hold = true;

        ch.writeInbound(Unpooled.wrappedBuffer(
                request(READ, 1, 0, 8),
                request(READ, 2, 8, 8),
                request(READ, 3, 16, 8),
                request(READ, 4, 24, 8),
                request(READ, 5, 32, 8)));

        assertThat(disk.held).hasSize(2);
        assertThat(ch.config().isAutoRead()).isFalse();
        assertThat(disk.calls).last().isEqualTo("commitRqs"); // the run was cut short by the missing tag
        for (int round = 0; round < 3 && !disk.held.isEmpty(); round++) {
            disk.releaseHeld();
            ch.runPendingTasks();
        }
        assertThat(disk.calls.stream().filter(c -> c.startsWith("queueRq"))).hasSize(5);
        List<Long> cookies = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            cookies.add(readReply(ch, 8).cookie());
        }
        assertThat(cookies).containsExactlyInAnyOrder(1L, 2L, 3L, 4L, 5L);
        assertThat(ch.config().isAutoRead()).isTrue();
    }

    @Test
    void disc_finishesInFlightThenCloses() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;

        ch.writeInbound(Unpooled.wrappedBuffer(request(READ, 1, 0, 8), request(DISC, 2, 0, 0), request(READ, 3, 0, 8)));

        assertThat(disk.held).hasSize(1);
        assertThat(ch.isOpen()).isTrue();
        disk.releaseHeld();
        assertThat(readReply(ch, 8).cookie()).isEqualTo(1);
        ch.runPendingTasks();
        assertThat(ch.isOpen()).isFalse();
        // Nothing after DISC reached the driver; the run the READ opened was closed.
        assertThat(disk.calls).containsExactly("queueRq READ 0+8 flags=0 isLast=false", "commitRqs");
    }

    @Test
    void shutdown_answersInFlightThenCloses() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;
        ch.writeInbound(request(0, WRITE, 1, 0, 1, new byte[] {5}));

        ch.pipeline().get(TransmissionHandler.class).shutdown();
        assertThat(ch.isOpen()).isTrue();
        disk.releaseHeld();

        assertThat(readReply(ch, 0)).isEqualTo(new Reply(0, 1, new byte[0]));
        ch.runPendingTasks();
        assertThat(ch.isOpen()).isFalse();
        assertThat(disk.data[0]).isEqualTo((byte) 5);
    }

    @Test
    void handOver_answersWhatWasReadDropsTheRestThenCloses() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;
        ch.writeInbound(request(0, WRITE, 1, 0, 1, new byte[] {5}));
        LongAdder answered = new LongAdder();

        ch.pipeline().get(TransmissionHandler.class).handOver(answered);
        ch.writeInbound(request(0, WRITE, 2, 1, 1, new byte[] {6}));
        assertThat(ch.isOpen()).isTrue();
        disk.releaseHeld();

        // The request read before the hand-over succeeds (no ESHUTDOWN); the later one gets no reply at all.
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(0, 1, new byte[0]));
        ch.runPendingTasks();
        for (ByteBuf rest; (rest = ch.readOutbound()) != null; rest.release()) {
            assertThat(rest.readableBytes())
                    .as("bytes written after the last reply")
                    .isZero();
        }
        assertThat(ch.isOpen()).isFalse();
        assertThat(answered.sum()).isEqualTo(1);
        assertThat(disk.data[0]).isEqualTo((byte) 5);
        assertThat(disk.data[1]).isZero();
    }

    @Test
    void closedConnection_inFlightCompletionReleasesBuffers() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;
        ch.writeInbound(request(0, WRITE, 1, 0, 4, new byte[] {1, 2, 3, 4}));
        ch.writeInbound(request(READ, 2, 0, 4096));

        ch.close();
        disk.releaseHeld();
        ch.runPendingTasks();

        // Paranoid leak detection fails the build if the payload or the read buffer leaked.
        assertThat(queues.get(0).inFlight()).isZero();
    }
    // ---------------------------------------------------------------------------------------------
    // Abuse

    /** Direct buffers of 4 KiB or more fail with OutOfMemoryError while {@code failing} is set. */
    private static final class FailingAllocator extends io.netty.buffer.AbstractByteBufAllocator {
        volatile boolean failing = true;
        int failures;

        FailingAllocator() {
            super(false);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            return io.netty.buffer.UnpooledByteBufAllocator.DEFAULT.heapBuffer(initialCapacity, maxCapacity);
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            if (failing && initialCapacity >= 4096) {
                failures++;
                throw new OutOfMemoryError("Cannot reserve " + initialCapacity + " bytes of direct buffer memory");
            }
            return io.netty.buffer.UnpooledByteBufAllocator.DEFAULT.directBuffer(initialCapacity, maxCapacity);
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }
    }

    @Test
    void readBufferAllocationFailure_answersEnomem_givesTheTagBack() throws Exception {
        EmbeddedChannel ch = connect(false, 8);
        FailingAllocator alloc = new FailingAllocator();
        ch.config().setAllocator(alloc);
        byte[] payload = pattern(4096, 5);
        ch.writeInbound(request(0, WRITE, 100, 0, payload.length, payload));
        assertThat(readReply(ch, 0).error()).isZero();

        // Twice the queue depth: with a leaked tag per failure the connection would hang at the ninth.
        for (int i = 0; i < 16; i++) {
            ch.writeInbound(request(READ, i, 0, 4096));
            assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.ENOMEM.code(), i, new byte[0]));
        }
        assertThat(alloc.failures).isEqualTo(16);
        assertThat(queues.get(0).inFlight()).isZero();

        alloc.failing = false;
        ch.writeInbound(request(READ, 99, 0, 4096));
        assertThat(readReply(ch, 4096)).isEqualTo(new Reply(0, 99, payload));
        assertThat(ch.isOpen()).isTrue();
    }

    @Test
    void junkAfterDisc_repliesBeforeItStillGoOut() throws Exception {
        EmbeddedChannel ch = connect();
        disk.hold = true;

        ch.writeInbound(Unpooled.wrappedBuffer(
                request(0, WRITE, 1, 0, 4, new byte[] {1, 2, 3, 4}),
                request(DISC, 2, 0, 0),
                Unpooled.wrappedBuffer(new byte[] {
                    (byte) 0xde,
                    (byte) 0xad,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0
                })));

        assertThat(ch.isOpen()).as("open while the WRITE is in flight").isTrue();
        disk.releaseHeld();
        assertThat(readReply(ch, 0)).isEqualTo(new Reply(0, 1, new byte[0]));
        ch.runPendingTasks();
        assertThat(ch.isOpen()).isFalse();
        assertThat(disk.data[3]).isEqualTo((byte) 4);
    }

    @Test
    void writeAboveTheAdvertisedMaximum_isEinvalNotEoverflow() throws Exception {
        EmbeddedChannel ch = connect();
        // A decoder that buffers more than the export advertises: the validator still refuses.
        ch.pipeline().replace(NbdRequestDecoder.class, "decoder", new NbdRequestDecoder(4 * MAX_PAYLOAD));
        byte[] payload = new byte[2 * MAX_PAYLOAD];

        ch.writeInbound(request(0, WRITE, 7, 0, payload.length, payload));

        assertThat(readReply(ch, 0)).isEqualTo(new Reply(NbdError.EINVAL.code(), 7, new byte[0]));
        assertThat(disk.calls).isEmpty();
    }

    @Test
    void unwritableChannel_stopsSubmitting_resumesWhenRepliesDrain() throws Exception {
        EmbeddedChannel ch = connect();
        // A high-water mark below one reply: the connection pauses after each until the flush drains it.
        ch.config().setWriteBufferWaterMark(new io.netty.channel.WriteBufferWaterMark(8, 16));
        ByteBuf batch = Unpooled.buffer();
        for (int i = 0; i < 10; i++) {
            batch.writeBytes(request(READ, i, 0, 4096));
        }

        ch.writeInbound(batch);
        ch.runPendingTasks();
        ch.runPendingTasks();

        for (int i = 0; i < 10; i++) {
            assertThat(readReply(ch, 4096).cookie()).isEqualTo(i);
        }
        assertThat(disk.calls.stream().filter(c -> c.startsWith("queueRq"))).hasSize(10);
    }

    @Test
    void manyBufferReply_isWrittenInPiecesOfAtMost512Buffers() {
        EmbeddedChannel ch = new EmbeddedChannel(new ChannelInboundHandlerAdapter());
        channels.add(ch);
        ChannelHandlerContext ctx = ch.pipeline().firstContext();
        io.netty.buffer.CompositeByteBuf reply = Unpooled.compositeBuffer(Integer.MAX_VALUE);
        for (int i = 0; i < 3000; i++) {
            reply.addComponent(true, Unpooled.directBuffer(100).writeZero(100).setByte(0, i));
        }

        new ReplyWriter(ctx, "x").write(reply);
        ch.flush();

        int pieces = 0;
        int total = 0;
        ByteBuf piece;
        while ((piece = ch.readOutbound()) != null) {
            assertThat(piece.nioBufferCount()).isLessThanOrEqualTo(ReplyWriter.MAX_PIECE_BUFFERS);
            total += piece.readableBytes();
            pieces++;
            piece.release();
        }
        assertThat(total).isEqualTo(300_000);
        assertThat(pieces).isGreaterThanOrEqualTo(6);
        assertThat(reply.refCnt()).isZero();
    }
}
