package dev.mqnbd.storage.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.BlockDeviceContract;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.Sizes;
import dev.mqnbd.storage.TestDevice;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The memory device against the {@link BlockDeviceContract}, plus what only a sparse RAM disk promises. */
class MemoryBlockDeviceTest extends BlockDeviceContract {
    private static final long TIB = 1L << 40;

    @Override
    protected Backend backend() {
        return new MemoryBackend();
    }

    @Override
    protected String spec(long size) {
        return Sizes.format(size);
    }

    private static MemoryStore store(TestDevice dev) {
        return (MemoryStore) dev.queue().queueData();
    }

    /* --------------- sparseness --------------- */

    @Test
    void open_1TiB_allocatesNothingUntilWritten() throws Exception {
        TestDevice dev = open(TIB);
        MemoryStore store = store(dev);

        assertThat(store.allocatedBytes()).isZero();
        assertThat(dev.read(0, PAGE)).isEqualTo(new byte[PAGE]);
        assertThat(dev.read(TIB / 2 - 10, 3 * PAGE)).isEqualTo(new byte[3 * PAGE]);
        assertThat(dev.read(TIB - PAGE, PAGE)).isEqualTo(new byte[PAGE]);
        assertThat(store.allocatedBytes()).as("reads allocate nothing").isZero();
    }

    @Test
    void write_1TiB_allocatesOnlyPagesWritten() throws Exception {
        TestDevice dev = open(TIB);
        MemoryStore store = store(dev);
        byte[] span = TestDevice.random(1, PAGE);
        byte[] last = {42};

        dev.write(TIB / 2 + 100, span); // straddles two pages
        dev.write(TIB - 1, last);
        dev.write(TIB / 2 + 200, new byte[10]); // inside pages already held

        assertThat(store.allocatedBytes()).isEqualTo(3 * PAGE);
        byte[] expected = span.clone();
        System.arraycopy(new byte[10], 0, expected, 100, 10);
        assertThat(dev.read(TIB / 2 + 100, PAGE)).isEqualTo(expected);
        assertThat(dev.read(TIB - 2, 2)).containsExactly(0, 42);
    }

    @Test
    void discard_wholePages_releasesThem_partialPagesStay() throws Exception {
        TestDevice dev = open(1 << 20);
        MemoryStore store = store(dev);
        dev.write(0, TestDevice.random(2, 16 * PAGE));
        assertThat(store.allocatedBytes()).isEqualTo(16 * PAGE);

        // Pages 2 and 10 are partly covered and stay; pages 3..9 are released.
        assertThat(dev.noData(ReqOp.DISCARD, 0, 2 * PAGE + 1, 8 * PAGE)).isEqualTo(Status.OK);
        assertThat(store.allocatedBytes()).isEqualTo(9 * PAGE);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, 1 << 20)).isEqualTo(Status.OK);
        assertThat(store.allocatedBytes()).isZero();
        assertThat(dev.read(0, 16 * PAGE)).isEqualTo(new byte[16 * PAGE]);
    }

    @Test
    void discard_lastPageOfOddSizedDevice_releasesIt() throws Exception {
        long size = (1 << 20) + 1536;
        TestDevice dev = open(size);
        dev.write(size - 1536, TestDevice.random(3, 1536));
        assertThat(store(dev).allocatedBytes()).isEqualTo(PAGE);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 1 << 20, 1536)).isEqualTo(Status.OK);

        assertThat(store(dev).allocatedBytes()).isZero();
    }

    @Test
    void writeZeroes_releasesPages_unlessNoUnmap() throws Exception {
        TestDevice dev = open(1 << 20);
        MemoryStore store = store(dev);
        dev.write(0, TestDevice.random(4, 8 * PAGE));

        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.NO_UNMAP, 0, 4 * PAGE))
                .isEqualTo(Status.OK);
        assertThat(store.allocatedBytes()).as("NO_UNMAP keeps the pages").isEqualTo(8 * PAGE);
        assertThat(dev.read(0, 4 * PAGE)).isEqualTo(new byte[4 * PAGE]);

        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, 0, 8 * PAGE)).isEqualTo(Status.OK);
        assertThat(store.allocatedBytes()).isZero();
        assertThat(dev.read(0, 8 * PAGE)).isEqualTo(new byte[8 * PAGE]);
    }

    @Test
    void discard_whole1TiB_isQuickAndReleasesEverything() throws Exception {
        TestDevice dev = open(TIB);
        dev.write(0, TestDevice.random(5, PAGE));
        dev.write(TIB - PAGE, TestDevice.random(6, PAGE));

        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, TIB)).isEqualTo(Status.OK);

        assertThat(store(dev).allocatedBytes()).isZero();
        assertThat(dev.read(TIB - PAGE, PAGE)).isEqualTo(new byte[PAGE]);
    }

    /* --------------- the driver --------------- */

    @Test
    void limits_areByteAddressable_withPageSizedPhysicalBlocks() throws Exception {
        TestDevice dev = open(1 << 20);

        assertThat(dev.queue().limits().logicalBlockSize()).isEqualTo(1);
        assertThat(dev.queue().limits().physicalBlockSize()).isEqualTo(PAGE);
        assertThat(dev.queue().limits().discardGranularity()).isEqualTo(PAGE);
        assertThat(dev.queue().limits().maxTransferBytes()).isEqualTo(64 << 20);
        assertThat(dev.queue().limits().features())
                .containsExactlyInAnyOrder(
                        Feature.FLUSH,
                        Feature.FUA,
                        Feature.DISCARD,
                        Feature.WRITE_ZEROES,
                        Feature.FAST_ZERO,
                        Feature.CACHE,
                        Feature.BLOCK_STATUS,
                        Feature.SHARED_FLUSH,
                        Feature.WRITE_SEGMENTS,
                        Feature.READ_SEGMENTS);
    }

    @Test
    void writeSegments_landInOrder_acrossPages() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] all = TestDevice.random(11, 6003);
        ByteBuffer[] segments = {
            TestDevice.direct(Arrays.copyOfRange(all, 0, 1000)),
            TestDevice.direct(Arrays.copyOfRange(all, 1000, 6000)),
            TestDevice.direct(Arrays.copyOfRange(all, 6000, 6003)),
        };

        Status status =
                dev.submit(0, rq -> rq.prepare(ReqOp.WRITE, 0, 4090, 6003, null).segments(segments, 3));

        assertThat(status).isEqualTo(Status.OK);
        assertThat(dev.read(4090, 6003)).isEqualTo(all);
        assertThat(segments[1].position()).isZero();
    }

    @Test
    void readSegments_areViewsOfThePages_andZeroesOverHoles() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] data = TestDevice.random(12, 3 * PAGE);
        dev.write(PAGE, data); // pages 1-3 hold data; 0 and 4.. are holes
        List<ByteBuffer> views = new ArrayList<>();

        Status status = dev.submit(
                0, rq -> rq.prepare(ReqOp.READ, 0, 100, 5 * PAGE, null).readSegments(views::add));

        assertThat(status).isEqualTo(Status.OK);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (ByteBuffer view : views) {
            byte[] bytes = new byte[view.remaining()];
            view.duplicate().get(bytes);
            out.write(bytes);
        }
        byte[] expected = new byte[5 * PAGE];
        System.arraycopy(data, 0, expected, PAGE - 100, data.length);
        assertThat(out.toByteArray()).isEqualTo(expected);
        assertThat(views)
                .as("a hole, the three held pages as one view of the mapping, a hole")
                .hasSize(3);
        // Views, not copies: a later write shows through (a racing read may see it, as NBD allows).
        dev.write(PAGE, new byte[] {42});
        assertThat(views.get(1).get(views.get(1).position())).isEqualTo((byte) 42);
    }

    @Test
    void segments_onARead_areInvalid() throws Exception {
        TestDevice dev = open(1 << 20);
        ByteBuffer[] two = {TestDevice.direct(new byte[10]), TestDevice.direct(new byte[10])};

        Status status =
                dev.submit(0, rq -> rq.prepare(ReqOp.READ, 0, 0, 20, null).segments(two, 2));

        assertThat(status).as("segments are for WRITE only").isEqualTo(Status.INVALID);
    }

    @Test
    void readAndWrite_leaveBufferPositionAndLimitAlone() throws Exception {
        TestDevice dev = open(1 << 20);
        ByteBuffer src = TestDevice.direct(TestDevice.random(7, 1000));
        ByteBuffer dst = ByteBuffer.allocateDirect(1000);

        assertThat(dev.submit(ReqOp.WRITE, 0, 4000, 1000, src)).isEqualTo(Status.OK);
        assertThat(dev.submit(ReqOp.READ, 0, 4000, 1000, dst)).isEqualTo(Status.OK);

        assertThat(src.position()).isZero();
        assertThat(src.limit()).isEqualTo(1000);
        assertThat(dst.position()).isZero();
        assertThat(dst.limit()).isEqualTo(1000);
        assertThat(dst).isEqualTo(src);
    }

    @Test
    void read_largerThanMaxTransfer_isOverflow() throws Exception {
        TestDevice dev = open(128 << 20);
        int length = (64 << 20) + 1;

        assertThat(dev.submit(ReqOp.READ, 0, 0, length, ByteBuffer.allocateDirect(length)))
                .isEqualTo(Status.OVERFLOW);
    }

    @Test
    void hwData_countsWhatEachContextServed() throws Exception {
        TestDevice dev = open(1 << 20, false, 2);
        dev.write(1, 0, 0, new byte[PAGE]);
        dev.read(1, 0, 100);
        dev.noData(ReqOp.FLUSH, 0, 0, 0);
        dev.noData(ReqOp.DISCARD, 0, 0, PAGE);
        dev.tryRead(1, 1 << 20, 1);

        MemoryHwData hw0 = (MemoryHwData) dev.queue().hctx(0).hwData();
        MemoryHwData hw1 = (MemoryHwData) dev.queue().hctx(1).hwData();
        assertThat(hw1.writes()).isEqualTo(1);
        assertThat(hw1.bytesWritten()).isEqualTo(PAGE);
        assertThat(hw1.reads()).isEqualTo(1);
        assertThat(hw1.bytesRead()).isEqualTo(100);
        assertThat(hw1.errors()).isEqualTo(1);
        assertThat(hw0.flushes()).isEqualTo(1);
        assertThat(hw0.zeroings()).isEqualTo(1);
        assertThat(hw0.writes()).isZero();
    }

    @Test
    void write_outOfMemory_endsWithNoSpace_andDeviceKeepsServing() throws Exception {
        AtomicInteger budget = new AtomicInteger(2);
        MemoryStore store = new MemoryStore(1 << 20, () -> {
            if (budget.getAndDecrement() <= 0) {
                throw new OutOfMemoryError("test: no direct memory left");
            }
            return ByteBuffer.allocateDirect(MemoryStore.PAGE_SIZE);
        });
        BlockQueue<MemoryHwData, MemoryStore, Void, Void> queue =
                closeAfterTest(MemoryBackend.open(store, DeviceOptions.DEFAULT, queueSetup(1)));
        TestDevice dev = new TestDevice(queue);
        byte[] data = TestDevice.random(8, 2 * PAGE);
        dev.write(0, data);

        assertThat(dev.tryWrite(0, 0, 2 * PAGE, TestDevice.random(9, PAGE))).isEqualTo(Status.NO_SPACE);
        assertThat(dev.tryWrite(0, 0, 3 * PAGE, TestDevice.random(9, PAGE))).isEqualTo(Status.NO_SPACE);

        assertThat(queue.hctx(0).hwData().allocationFailures()).isEqualTo(2);
        assertThat(store.allocatedBytes()).isEqualTo(2 * PAGE);
        byte[] rewrite = TestDevice.random(10, 500);
        dev.write(100, rewrite); // pages already held need no memory
        System.arraycopy(rewrite, 0, data, 100, rewrite.length);
        byte[] expected = new byte[4 * PAGE];
        System.arraycopy(data, 0, expected, 0, data.length);
        assertThat(dev.read(0, 4 * PAGE)).isEqualTo(expected);
    }

    /* --------------- concurrency --------------- */

    @Test
    void write_concurrentStripesOnSeveralContexts_loseNoBytes() throws Exception {
        int hctxs = 4;
        int threads = hctxs * 4;
        int stripe = 512;
        int region = 64 * PAGE;
        int rounds = 8;
        int stripesPerRegion = region / stripe;
        TestDevice dev = open((long) rounds * region, false, hctxs);
        byte[] model = new byte[rounds * region];
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            for (int round = 0; round < rounds; round++) {
                int base = round * region;
                CyclicBarrier start = new CyclicBarrier(threads);
                List<Future<?>> done = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    int thread = t;
                    done.add(pool.submit(() -> {
                        start.await();
                        // Every page has stripes of eight threads on all four contexts; going up the pages in
                        // step makes the threads race to install each fresh page.
                        for (int s = thread; s < stripesPerRegion; s += threads) {
                            byte[] data = TestDevice.random((long) base + s, stripe);
                            dev.write(thread % hctxs, 0, base + (long) s * stripe, data);
                        }
                        return null;
                    }));
                    for (int s = t; s < stripesPerRegion; s += threads) {
                        byte[] data = TestDevice.random((long) base + s, stripe);
                        System.arraycopy(data, 0, model, base + s * stripe, stripe);
                    }
                }
                for (Future<?> f : done) {
                    f.get(30, TimeUnit.SECONDS);
                }
            }
        } finally {
            pool.shutdownNow();
        }

        assertContent(dev, model);
        assertThat(store(dev).allocatedBytes()).isEqualTo(model.length);
    }

    /* --------------- spec and set-up --------------- */

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "1000 | size: 1000 (expected: a positive multiple of 512)",
                "0    | size: 0 (expected: a positive multiple of 512)",
                "4097T | size: 4097T (expected: at most 4P)",
                "8P   | size: 8P (expected: at most 4P)",
                "1.5G | size: \"1.5G\" (expected: a number of bytes, optionally with K, M, G, T, P or E)",
                "-1G  | size: \"-1G\" (expected: 0 to 8 EiB - 1)"
            })
    void open_badSize_isRejected(String spec, String message) {
        QueueSetup setup = queueSetup(1);

        assertThatThrownBy(() -> new MemoryBackend()
                        .open(spec, DeviceOptions.DEFAULT, setup)
                        .build(setup))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(message);
    }

    @Test
    void open_largestSize_works() throws Exception {
        long max = MemoryStore.MAX_CAPACITY;
        TestDevice dev = open(max);

        dev.write(max - 3, new byte[] {1, 2, 3});

        assertThat(dev.read(max - 4, 4)).containsExactly(0, 1, 2, 3);
        assertThat(dev.tryWrite(0, 0, max - 1, new byte[2])).isEqualTo(Status.NO_SPACE);
    }

    @Test
    void open_failingHctxSetup_closesTheStore() {
        MemoryStore store = new MemoryStore(1 << 20);
        assertThat(store.write(0, ByteBuffer.allocate(PAGE), 0, PAGE)).isTrue();
        QueueSetup one = queueSetup(1);
        QueueSetup bad =
                new QueueSetup("bad", 2, 4, i -> i == 0 ? one.executors().apply(0) : null, Duration.ZERO);

        assertThatThrownBy(() -> MemoryBackend.open(store, DeviceOptions.DEFAULT, bad))
                .isInstanceOf(MqException.class)
                .hasMessageContaining("hardware context 1");
        assertThat(store.allocatedBytes()).isZero();
    }

    @Test
    void open_badQueueSetup_closesTheStore() {
        MemoryStore store = new MemoryStore(1 << 20);
        assertThat(store.write(0, ByteBuffer.allocate(PAGE), 0, PAGE)).isTrue();
        QueueSetup one = queueSetup(1);
        QueueSetup bad = new QueueSetup("bad", 0, 4, one.executors(), Duration.ZERO);

        assertThatThrownBy(() -> MemoryBackend.open(store, DeviceOptions.DEFAULT, bad))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("hwQueues: 0 (expected: 1..1024)");
        assertThat(store.allocatedBytes()).isZero();
    }

    @Test
    void close_dropsEveryPage() throws Exception {
        TestDevice dev = open(1 << 20);
        dev.write(0, TestDevice.random(11, 5 * PAGE));
        MemoryStore store = store(dev);

        dev.queue().close();

        assertThat(store.allocatedBytes()).isZero();
    }
}
