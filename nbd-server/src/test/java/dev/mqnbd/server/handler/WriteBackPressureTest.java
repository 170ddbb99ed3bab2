package dev.mqnbd.server.handler;

import static dev.mqnbd.server.handler.TransmissionHandlerTest.readReply;
import static dev.mqnbd.server.handler.TransmissionHandlerTest.request;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.TagSet;
import dev.mqnbd.server.EventLoopHctxExecutor;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdRequestDecoder;
import dev.mqnbd.server.protocol.NbdSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * WRITE payloads in flight are bounded per connection ({@link TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT})
 * and across connections ({@link WriteBudget}): a connection over either stops submitting and reading, and
 * goes on when WRITEs complete. Requests are held by a {@link TestDisk} until the test releases them.
 */
class WriteBackPressureTest {
    private static final int WRITE = 1;
    private static final int READ = 0;

    private final List<EmbeddedChannel> channels = new ArrayList<>();
    private final List<BlockQueue<?, ?, ?, ?>> queues = new ArrayList<>();

    @AfterEach
    void tearDown() throws Exception {
        for (EmbeddedChannel ch : channels) {
            ch.finishAndReleaseAll();
        }
        for (BlockQueue<?, ?, ?, ?> queue : queues) {
            queue.close();
        }
    }

    private EmbeddedChannel connect(TestDisk disk, int maxPayload, WriteBudget budget) throws Exception {
        EmbeddedChannel ch = new EmbeddedChannel();
        channels.add(ch);
        BlockQueue<Object, Object, Object, Object> queue = BlockQueue.builder(
                        TagSet.builder(disk).queueDepth(32).build())
                .limits(TestDisk.limits(disk.data.length, false))
                .executors(i -> new EventLoopHctxExecutor(ch.eventLoop()))
                .build();
        queues.add(queue);
        Export export = Export.of("", "test disk", queue, maxPayload);
        NbdSession session = new NbdSession(
                NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE,
                export.info().transmissionFlags() & ~NbdConstants.FLAG_SEND_DF,
                true,
                false,
                false,
                0);
        ch.pipeline()
                .addLast(new NbdRequestDecoder(maxPayload), new TransmissionHandler(export, session, 0, 0, 0, budget));
        return ch;
    }

    private static ByteBuf write(long cookie, long offset, int length, int seed) {
        byte[] payload = new byte[length];
        Arrays.fill(payload, (byte) seed);
        return request(0, WRITE, cookie, offset, length, payload);
    }

    private static long writesSubmitted(TestDisk disk) {
        return disk.calls.stream().filter(c -> c.startsWith("queueRq WRITE")).count();
    }

    /** Releases what the disk holds and runs every channel's tasks, until nothing more is held. */
    private void releaseAll(TestDisk disk) {
        for (int round = 0; round < 20; round++) {
            disk.releaseHeld();
            for (EmbeddedChannel ch : channels) {
                ch.runPendingTasks();
            }
            if (disk.held.isEmpty()) {
                return;
            }
        }
    }

    @Test
    void oneConnection_keepsAtMost64MiBOfWritesInFlight_theRestWaitsInOrder() throws Exception {
        int mib32 = 32 << 20;
        TestDisk disk = new TestDisk(mib32);
        disk.hold = true;
        EmbeddedChannel ch = connect(disk, mib32, WriteBudget.UNLIMITED);

        ch.writeInbound(write(1, 0, mib32, 1));
        ch.writeInbound(write(2, 0, mib32, 2));
        ch.writeInbound(Unpooled.wrappedBuffer(write(3, 0, mib32, 3), request(READ, 4, 0, 4096)));

        // 64 MiB in flight: the third WRITE waits, and the READ behind it, and the socket is not read.
        assertThat(disk.held).hasSize(2);
        assertThat(ch.config().isAutoRead()).isFalse();

        releaseAll(disk);

        assertThat(writesSubmitted(disk)).isEqualTo(3);
        for (long cookie = 1; cookie <= 3; cookie++) {
            assertThat(readReply(ch, 0)).isEqualTo(new TransmissionHandlerTest.Reply(0, cookie, new byte[0]));
        }
        byte[] third = new byte[4096];
        Arrays.fill(third, (byte) 3);
        assertThat(readReply(ch, 4096)).isEqualTo(new TransmissionHandlerTest.Reply(0, 4, third));
        assertThat(ch.config().isAutoRead()).isTrue();
    }

    @Test
    void connectionsTogether_stopAtTheBudget_aConnectionsOnlyWriteGoesUpToTwiceIt() throws Exception {
        int kib64 = 64 << 10;
        TestDisk disk = new TestDisk(1 << 20);
        disk.hold = true;
        WriteBudget budget = new WriteBudget(2 * kib64);
        EmbeddedChannel a = connect(disk, kib64, budget);
        EmbeddedChannel b = connect(disk, kib64, budget);

        a.writeInbound(Unpooled.wrappedBuffer(
                write(1, 0, kib64, 1), write(2, kib64, kib64, 2), write(3, 2 * kib64, kib64, 3)));
        // A's first two fill the budget; its third waits, although A itself holds far less than 64 MiB.
        assertThat(disk.held).hasSize(2);
        assertThat(budget.held()).isEqualTo(2 * kib64);
        assertThat(a.config().isAutoRead()).isFalse();

        b.writeInbound(Unpooled.wrappedBuffer(write(11, 4 * kib64, kib64, 11), write(12, 5 * kib64, kib64, 12)));
        // B has nothing in flight: its first WRITE goes, past the budget but within twice it; its second waits.
        assertThat(disk.held).hasSize(3);
        assertThat(budget.held()).isEqualTo(3 * kib64);
        assertThat(b.config().isAutoRead()).isFalse();

        releaseAll(disk);

        assertThat(writesSubmitted(disk)).isEqualTo(5);
        assertThat(budget.held()).isZero();
        for (long cookie = 1; cookie <= 3; cookie++) {
            assertThat(readReply(a, 0).cookie()).isEqualTo(cookie);
        }
        assertThat(readReply(b, 0).cookie()).isEqualTo(11);
        assertThat(readReply(b, 0).cookie()).isEqualTo(12);
        assertThat(a.config().isAutoRead()).isTrue();
        assertThat(b.config().isAutoRead()).isTrue();
        for (int i : new int[] {0, 1, 2, 4, 5}) {
            int seed = i < 3 ? i + 1 : i + 7;
            assertThat(disk.data[i * kib64]).as("block %d", i).isEqualTo((byte) seed);
            assertThat(disk.data[(i + 1) * kib64 - 1]).as("block %d", i).isEqualTo((byte) seed);
        }
    }

    @Test
    void pastTwiceTheBudget_evenAConnectionsOnlyWriteWaits_andIsWokenByAnother() throws Exception {
        int kib64 = 64 << 10;
        TestDisk disk = new TestDisk(1 << 20);
        disk.hold = true;
        WriteBudget budget = new WriteBudget(kib64);
        EmbeddedChannel a = connect(disk, kib64, budget);
        EmbeddedChannel b = connect(disk, kib64, budget);
        EmbeddedChannel c = connect(disk, kib64, budget);

        a.writeInbound(write(1, 0, kib64, 1));
        b.writeInbound(write(2, kib64, kib64, 2));
        assertThat(budget.held()).isEqualTo(2 * kib64);
        c.writeInbound(write(3, 2 * kib64, kib64, 3));
        // Twice the budget is in flight: C's only WRITE waits until A's or B's completes.
        assertThat(disk.held).hasSize(2);
        assertThat(c.config().isAutoRead()).isFalse();

        disk.releaseHeld();
        a.runPendingTasks();
        b.runPendingTasks();
        c.runPendingTasks();

        assertThat(disk.held).hasSize(1);
        assertThat(budget.held()).isEqualTo(kib64);
        releaseAll(disk);
        assertThat(readReply(c, 0).cookie()).isEqualTo(3);
        assertThat(budget.held()).isZero();
        assertThat(c.config().isAutoRead()).isTrue();
    }

    @Test
    void aWriteAlwaysGoesWhenNothingIsInFlight_evenOverTheBudget() {
        int counted = WriteBudget.COUNTED_FROM;
        WriteBudget budget = new WriteBudget(counted);
        assertThat(budget.fits(1 << 20, false)).isTrue();
        budget.take(1 << 20);
        assertThat(budget.fits(counted, true)).isFalse();
        // Small WRITEs are not counted, and always fit.
        assertThat(budget.fits(counted - 1, false)).isTrue();
        budget.take(counted - 1);
        assertThat(budget.held()).isEqualTo(1 << 20);
        List<String> woken = new ArrayList<>();
        budget.await(counted, true, () -> woken.add("first"));
        assertThat(woken).isEmpty();
        budget.give(1 << 20);
        assertThat(woken).containsExactly("first");
        // Room made between the check and the registration wakes at once.
        budget.await(counted, false, () -> woken.add("second"));
        assertThat(woken).containsExactly("first", "second");
    }
}
