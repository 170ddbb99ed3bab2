package dev.mqnbd.server.handler;

import static dev.mqnbd.server.handler.TransmissionHandlerTest.readReply;
import static dev.mqnbd.server.handler.TransmissionHandlerTest.request;
import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * WRITE payloads in flight are bounded per connection ({@link TransmissionHandler#MAX_WRITE_BYTES_IN_FLIGHT}),
 * and WRITE payloads and READ reply buffers across connections ({@link BufferBudget}): a connection over
 * either stops submitting and reading, and goes on when requests complete. Requests are held by a {@link
 * TestDisk} (which has no READ_SEGMENTS: every READ takes a buffer) until the test releases them.
 */
class BufferBackPressureTest {
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

    private EmbeddedChannel connect(TestDisk disk, int maxPayload, BufferBudget budget) throws Exception {
        EmbeddedChannel ch = TransmissionHandlerTest.transmission(disk, false, 32, maxPayload, budget, queues);
        channels.add(ch);
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
        EmbeddedChannel ch = connect(disk, mib32, BufferBudget.UNLIMITED);

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
    void anExportsConnections_stopAtItsHalfOfTheBudget_otherExportsGoOn_untilTheServersBound() throws Exception {
        int kib64 = 64 << 10;
        TestDisk disk = new TestDisk(1 << 20);
        disk.hold = true;
        BufferBudget server = new BufferBudget(4 * kib64);
        BufferBudget slow = server.forExport();
        BufferBudget other = server.forExport();
        BufferBudget third = server.forExport();
        EmbeddedChannel a = connect(disk, kib64, slow);
        EmbeddedChannel b = connect(disk, kib64, slow);
        EmbeddedChannel c = connect(disk, kib64, other);
        EmbeddedChannel d = connect(disk, kib64, third);

        a.writeInbound(Unpooled.wrappedBuffer(
                write(1, 0, kib64, 1), write(2, kib64, kib64, 2), write(3, 2 * kib64, kib64, 3)));
        b.writeInbound(write(11, 3 * kib64, kib64, 11));
        // The export's half of the budget is full: A's third WRITE and B's first wait, though A holds far less
        // than 64 MiB and B nothing.
        assertThat(disk.held).hasSize(2);
        assertThat(slow.held()).isEqualTo(2 * kib64);
        assertThat(a.config().isAutoRead()).isFalse();
        assertThat(b.config().isAutoRead()).isFalse();

        c.writeInbound(Unpooled.wrappedBuffer(write(21, 4 * kib64, kib64, 21), write(22, 5 * kib64, kib64, 22)));
        // Another export has its own half.
        assertThat(disk.held).hasSize(4);
        assertThat(server.held()).isEqualTo(4 * kib64);
        assertThat(c.config().isAutoRead()).isTrue();

        d.writeInbound(write(31, 6 * kib64, kib64, 31));
        // The server's bound is reached: a third export waits too, until any WRITE completes.
        assertThat(disk.held).hasSize(4);
        assertThat(d.config().isAutoRead()).isFalse();

        releaseAll(disk);

        assertThat(writesSubmitted(disk)).isEqualTo(7);
        assertThat(server.held()).isZero();
        assertThat(slow.held()).isZero();
        for (long cookie = 1; cookie <= 3; cookie++) {
            assertThat(readReply(a, 0).cookie()).isEqualTo(cookie);
        }
        assertThat(readReply(b, 0).cookie()).isEqualTo(11);
        assertThat(readReply(c, 0).cookie()).isEqualTo(21);
        assertThat(readReply(c, 0).cookie()).isEqualTo(22);
        assertThat(readReply(d, 0).cookie()).isEqualTo(31);
        for (EmbeddedChannel ch : List.of(a, b, c, d)) {
            assertThat(ch.config().isAutoRead()).isTrue();
        }
        int[] seeds = {1, 2, 3, 11, 21, 22, 31};
        for (int i = 0; i < seeds.length; i++) {
            assertThat(disk.data[i * kib64]).as("block %d", i).isEqualTo((byte) seeds[i]);
            assertThat(disk.data[(i + 1) * kib64 - 1]).as("block %d", i).isEqualTo((byte) seeds[i]);
        }
    }

    @Test
    void readBuffers_countInTheSameBudget_aReadWaitsBehindWritesOfAnotherConnection() throws Exception {
        int kib64 = 64 << 10;
        TestDisk disk = new TestDisk(1 << 20);
        disk.hold = true;
        BufferBudget budget = new BufferBudget(4 * kib64).forExport();
        EmbeddedChannel a = connect(disk, kib64, budget);
        EmbeddedChannel b = connect(disk, kib64, budget);

        a.writeInbound(Unpooled.wrappedBuffer(write(1, 0, kib64, 1), write(2, kib64, kib64, 2)));
        b.writeInbound(Unpooled.wrappedBuffer(request(READ, 11, 0, kib64), request(READ, 12, 0, kib64)));
        // A's WRITEs fill the export's budget: B's READs, which take reply buffers, wait.
        assertThat(disk.held).hasSize(2);
        assertThat(b.config().isAutoRead()).isFalse();

        releaseAll(disk);

        assertThat(disk.calls.stream().filter(c -> c.startsWith("queueRq READ")))
                .hasSize(2);
        assertThat(budget.held()).isZero();
        readReply(a, 0);
        readReply(a, 0);
        byte[] first = new byte[kib64];
        Arrays.fill(first, (byte) 1);
        for (long cookie = 11; cookie <= 12; cookie++) {
            assertThat(readReply(b, kib64)).isEqualTo(new TransmissionHandlerTest.Reply(0, cookie, first));
        }
        assertThat(b.config().isAutoRead()).isTrue();
    }

    @Test
    void aPayloadWithoutRoom_isNotTakenIn_untilAdmitted_andARefusedOrAbandonedOneGivesItsRoomBack() throws Exception {
        int kib64 = 64 << 10;
        TestDisk disk = new TestDisk(1 << 20);
        disk.hold = true;
        BufferBudget server = new BufferBudget(4 * kib64);
        BufferBudget export = server.forExport();
        EmbeddedChannel a = connect(disk, kib64, export);
        EmbeddedChannel b = connect(disk, kib64, export);
        EmbeddedChannel c = connect(disk, kib64, export);
        EmbeddedChannel d = connect(disk, kib64, export);

        a.writeInbound(Unpooled.wrappedBuffer(write(1, 0, kib64, 1), write(2, kib64, kib64, 2)));
        assertThat(export.held()).isEqualTo(2 * kib64);
        // The export is full. B's WRITE, C's WRITE past the end of the disk, and half of D's payload arrive:
        // none is taken in, so none holds memory outside the budget; their connections are not read.
        b.writeInbound(write(11, 2 * kib64, kib64, 11));
        c.writeInbound(write(21, 1 << 20, kib64, 21));
        ByteBuf dWrite = write(31, 3 * kib64, kib64, 31);
        d.writeInbound(dWrite.readRetainedSlice(kib64 / 2));
        dWrite.release();
        for (EmbeddedChannel ch : List.of(b, c, d)) {
            assertThat(ch.config().isAutoRead()).isFalse();
        }
        assertThat(export.held()).isEqualTo(2 * kib64);
        assertThat(disk.held).hasSize(2);
        d.close();

        releaseAll(disk);

        // B's WRITE was admitted and written; C's was admitted, refused with ENOSPC, and gave its room back.
        assertThat(writesSubmitted(disk)).isEqualTo(3);
        assertThat(readReply(b, 0)).isEqualTo(new TransmissionHandlerTest.Reply(0, 11, new byte[0]));
        assertThat(readReply(c, 0).error()).isEqualTo(28); // ENOSPC
        assertThat(disk.data[2 * kib64]).isEqualTo((byte) 11);
        assertThat(export.held()).isZero();
        assertThat(server.held()).isZero();
        for (EmbeddedChannel ch : List.of(a, b, c)) {
            assertThat(ch.config().isAutoRead()).isTrue();
        }
    }

    @Test
    void aRequestAlwaysGoesWhenNothingIsInFlight_smallOnesAreNotCounted_aLateWaiterIsWoken() {
        int counted = BufferBudget.COUNTED_FROM;
        BufferBudget server = new BufferBudget(2 * counted);
        BufferBudget export = server.forExport();
        assertThat(export.blocking(1 << 20)).isNull();
        export.take(1 << 20);
        assertThat(server.held()).isEqualTo(1 << 20);
        assertThat(export.blocking(counted)).isSameAs(export);
        // Small requests are not counted, and always go.
        assertThat(export.blocking(counted - 1)).isNull();
        export.take(counted - 1);
        assertThat(export.held()).isEqualTo(1 << 20);
        // Another export: its own half is empty, the server's bound is not.
        assertThat(server.forExport().blocking(counted)).isSameAs(server);
        List<String> woken = new ArrayList<>();
        export.await(counted, () -> woken.add("first"));
        assertThat(woken).isEmpty();
        export.give(1 << 20);
        assertThat(woken).containsExactly("first");
        assertThat(server.held()).isZero();
        // Room made between the check and the registration wakes at once.
        export.await(counted, () -> woken.add("second"));
        assertThat(woken).containsExactly("first", "second");
    }
}
