package dev.mqnbd.storage.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.storage.RecordingExtents;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The sparse page table on its own, without a queue in front of it. */
class MemoryStoreTest {
    private static final int PAGE = MemoryStore.PAGE_SIZE;

    /* --------------- geometry --------------- */

    @ParameterizedTest
    @CsvSource({
        // capacity, top-level entries, pages per leaf
        "512, 1, 1024",
        "4194304, 1, 1024", // 4 MiB: one leaf
        "4194305, 2, 1024",
        "1099511627776, 262144, 1024", // 1 TiB: 2^18 leaves of 4 MiB
        "17592186044416, 1048576, 4096", // 16 TiB: the top level is full, leaves grow
        "4503599627370496, 1048576, 1048576" // 4 PiB: the largest
    })
    void new_sizesTableToCapacity(long capacity, int topEntries, int leafPages) {
        MemoryStore store = new MemoryStore(capacity);

        assertThat(store.topEntries()).isEqualTo(topEntries);
        assertThat(store.leafPages()).isEqualTo(leafPages);
        assertThat(store.allocatedBytes()).isZero();
    }

    @ParameterizedTest
    @CsvSource({"0", "-1", "4503599627370497"})
    void new_capacityOutOfRange_throws(long capacity) {
        assertThatThrownBy(() -> new MemoryStore(capacity))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("capacity: " + capacity + " (expected: 1 to 4P)");
    }

    /* --------------- read, write, zero --------------- */

    @Test
    void write_acrossLeaves_allocatesEachPageOnce() {
        MemoryStore store = new MemoryStore(64L << 20);
        long leafBytes = (long) store.leafPages() * PAGE;
        byte[] data = random(1, 3 * PAGE);

        assertThat(store.write(leafBytes - PAGE - 1, ByteBuffer.wrap(data), 0, data.length))
                .isTrue();

        assertThat(store.allocatedBytes()).isEqualTo(4 * PAGE);
        ByteBuffer dst = ByteBuffer.allocate(data.length);
        store.read(leafBytes - PAGE - 1, dst, 0, data.length);
        assertThat(dst.array()).isEqualTo(data);
    }

    @Test
    void readAndWrite_honourBufferIndexes() {
        MemoryStore store = new MemoryStore(1 << 20);
        byte[] data = random(2, 300);
        ByteBuffer src = ByteBuffer.allocate(1000).put(100, data);

        store.write(5000, src, 100, 300);
        ByteBuffer dst = ByteBuffer.allocate(1000);
        store.read(5000, dst, 600, 300);

        byte[] out = new byte[300];
        dst.get(600, out);
        assertThat(out).isEqualTo(data);
        assertThat(dst.get(599)).isZero();
        assertThat(dst.get(900)).isZero();
    }

    @Test
    void zero_overHoles_allocatesNothing() {
        MemoryStore store = new MemoryStore(1L << 40);

        store.zero(0, 1L << 40, false);
        store.zero(12345, 1L << 39, true);

        assertThat(store.allocatedBytes()).isZero();
    }

    @Test
    void close_dropsPages_andSecondCloseIsNoOp() {
        MemoryStore store = new MemoryStore(1 << 30);
        for (long offset = 0; offset < 1 << 30; offset += 64 << 20) {
            store.write(offset, ByteBuffer.allocate(1), 0, 1);
        }
        assertThat(store.allocatedBytes()).isEqualTo(16 * PAGE);

        store.close();
        store.close();

        assertThat(store.allocatedBytes()).isZero();
        ByteBuffer dst = ByteBuffer.allocate(1);
        store.read(0, dst, 0, 1);
        assertThat(dst.get(0)).isZero();
    }

    /* --------------- concurrency --------------- */

    @Test
    void write_racingOnFreshPages_installsOnePageEach_andLosesNoBytes() throws Exception {
        int threads = 8;
        int pages = 16;
        int rounds = 100;
        int stripe = PAGE / threads;
        MemoryStore store = new MemoryStore((long) rounds * pages * PAGE);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            CyclicBarrier start = new CyclicBarrier(threads);
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                done.add(pool.submit(() -> {
                    ByteBuffer src = ByteBuffer.allocateDirect(stripe);
                    for (int round = 0; round < rounds; round++) {
                        start.await();
                        for (int p = 0; p < pages; p++) {
                            long offset = ((long) round * pages + p) * PAGE + (long) thread * stripe;
                            src.put(0, pattern(offset, stripe));
                            store.write(offset, src, 0, stripe);
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(30, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }

        assertThat(store.allocatedBytes()).isEqualTo((long) rounds * pages * PAGE);
        ByteBuffer dst = ByteBuffer.allocate(stripe);
        byte[] actual = new byte[stripe];
        for (long offset = 0; offset < store.capacity(); offset += stripe) {
            store.read(offset, dst, 0, stripe);
            dst.get(0, actual);
            assertThat(actual).as("stripe at %s", offset).isEqualTo(pattern(offset, stripe));
        }
    }

    private static byte[] pattern(long offset, int length) {
        byte[] bytes = new byte[length];
        for (int i = 0; i < length; i++) {
            bytes[i] = (byte) ((offset + i) * 0x9E3779B1L >>> 24);
        }
        return bytes;
    }

    private static byte[] random(long seed, int length) {
        byte[] bytes = new byte[length];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }

    @Test
    void extents_reportHeldPagesAsDataAndTheRestAsZeroHoles() {
        MemoryStore store = new MemoryStore(1L << 40);
        ByteBuffer one = ByteBuffer.allocateDirect(1);
        store.write(PAGE + 10, one, 0, 1); //                 page 1
        store.write((1L << 30) + 5, one, 0, 1); //            a page in another leaf

        RecordingExtents runs = new RecordingExtents(16);
        store.extents(100, (1L << 30) + 2 * PAGE, runs);

        assertThat(runs.described())
                .containsExactly(
                        (PAGE - 100) + ":3",
                        PAGE + ":0",
                        ((1L << 30) - 2 * PAGE) + ":3",
                        PAGE + ":0",
                        (PAGE + 100) + ":3");
    }

    @Test
    void extents_stopWhenTheSinkIsFull_andReleasedPagesAreHolesAgain() {
        MemoryStore store = new MemoryStore(1 << 20);
        ByteBuffer one = ByteBuffer.allocateDirect(1);
        store.write(0, one, 0, 1);
        store.write(2 * PAGE, one, 0, 1);
        RecordingExtents two = new RecordingExtents(2);
        store.extents(0, 1 << 20, two);
        assertThat(two.described()).containsExactly(PAGE + ":0", PAGE + ":3");

        store.zero(0, 4 * PAGE, true);
        RecordingExtents all = new RecordingExtents(16);
        store.extents(0, 1 << 20, all);
        assertThat(all.described()).containsExactly((1 << 20) + ":3");
    }
}
