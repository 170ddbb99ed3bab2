package dev.mqnbd.storage.file;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.BlockDeviceContract;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.RecordingExtents;
import dev.mqnbd.storage.TestDevice;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** The file device against the {@link BlockDeviceContract} on sparse temporary files, plus what only a file promises. */
class FileBlockDeviceTest extends BlockDeviceContract {
    private final Path dir;
    private final AtomicInteger files = new AtomicInteger();

    FileBlockDeviceTest() throws Exception {
        // On the build's own disk, not a tmpfs: holes, fallocate and fdatasync as users get them.
        Path base = Path.of("target", "file-tests").toAbsolutePath();
        Files.createDirectories(base);
        this.dir = Files.createTempDirectory(base, "dev");
    }

    @Override
    protected Backend backend() {
        return new FileBackend();
    }

    @Override
    protected String spec(long size) throws Exception {
        return FileTestSupport.sparse(dir.resolve("disk-" + files.incrementAndGet() + ".img"), size)
                .toString();
    }

    @Override
    protected void cleanup() throws Exception {
        FileTestSupport.deleteTree(dir);
    }

    private static FileStore store(TestDevice dev) {
        return (FileStore) dev.queue().queueData();
    }

    /* --------------- geometry --------------- */

    @Test
    void limits_byteAddressable_withFileFeatures() throws Exception {
        TestDevice dev = open(1 << 20);

        assertThat(dev.queue().limits().logicalBlockSize()).isEqualTo(1);
        assertThat(dev.queue().limits().physicalBlockSize()).isEqualTo(4096);
        assertThat(dev.queue().limits().maxTransferBytes()).isEqualTo(64 << 20);
        assertThat(dev.queue().limits().features())
                .contains(
                        Feature.FLUSH,
                        Feature.FUA,
                        Feature.DISCARD,
                        Feature.WRITE_ZEROES,
                        Feature.FAST_ZERO,
                        Feature.BLOCK_STATUS,
                        Feature.SHARED_FLUSH);
    }

    /* --------------- data reaches the file --------------- */

    @Test
    void write_landsInTheFile_atTheRightOffset() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] data = TestDevice.random(1, 3 * PAGE + 7);

        dev.write(12_345, data);

        byte[] file = Files.readAllBytes(store(dev).path());
        assertThat(file).hasSize(1 << 20);
        byte[] expected = new byte[1 << 20];
        System.arraycopy(data, 0, expected, 12_345, data.length);
        assertThat(file).isEqualTo(expected);
    }

    @Test
    void read_ofCachedData_isServedOnTheContextsThread_uncachedByTheIoThread() throws Exception {
        TestDevice dev = open(4 << 20);
        byte[] data = TestDevice.random(3, 64 << 10);
        dev.write(8192, data); // now in the page cache
        @SuppressWarnings("unchecked")
        FileHwData hw = ((BlockQueue<FileHwData, ?, ?, ?>) dev.queue()).hctx(0).hwData();
        awaitIdle(hw);

        assertThat(dev.read(8192 + 100, 60_000)).isEqualTo(java.util.Arrays.copyOfRange(data, 100, 60_100));
        assertThat(hw.cachedReads())
                .as("served from the page cache without the I/O thread")
                .isEqualTo(1);

        // Past the end of a file that shrank: preadv2 reads short, so the I/O thread serves it (zeroes).
        Files.write(store(dev).path(), new byte[4096]);
        awaitIdle(hw);
        assertThat(dev.read(1 << 20, 4096)).isEqualTo(new byte[4096]);
        assertThat(hw.cachedReads()).isEqualTo(1);
        assertThat(hw.reads()).isEqualTo(2);
    }

    @Test
    void writeSegments_landInOrder() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] all = TestDevice.random(4, 70_001);
        ByteBuffer[] segments = {
            TestDevice.direct(java.util.Arrays.copyOfRange(all, 0, 65_536)),
            ByteBuffer.wrap(java.util.Arrays.copyOfRange(all, 65_536, 70_000)), // heap: through the bounce buffer
            TestDevice.direct(java.util.Arrays.copyOfRange(all, 70_000, 70_001)),
        };

        assertThat(dev.queue().limits().features()).contains(Feature.WRITE_SEGMENTS);
        assertThat(dev.submit(
                        0,
                        rq -> rq.prepare(ReqOp.WRITE, 0, 1000, all.length, null).segments(segments, 3)))
                .isEqualTo(Status.OK);

        byte[] file = Files.readAllBytes(store(dev).path());
        assertThat(java.util.Arrays.copyOfRange(file, 1000, 1000 + all.length)).isEqualTo(all);
    }

    @Test
    void directSegments_goOutGathered_andLandInOrder() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] all = TestDevice.random(5, 5 * 65_536 + 3);
        ByteBuffer[] segments = new ByteBuffer[6];
        for (int i = 0; i < segments.length; i++) {
            int from = i * 65_536;
            int to = Math.min(all.length, from + 65_536);
            // Each segment sits at a position past the start of its buffer, as a slice of a network read does.
            ByteBuffer b = ByteBuffer.allocateDirect(to - from + 7);
            b.position(7);
            b.put(all, from, to - from).position(7);
            segments[i] = b;
        }

        assertThat(dev.submit(
                        0,
                        rq -> rq.prepare(ReqOp.WRITE, 0, 4097, all.length, null).segments(segments, segments.length)))
                .isEqualTo(Status.OK);

        assertThat(dev.read(4097, all.length)).isEqualTo(all);
        byte[] file = Files.readAllBytes(store(dev).path());
        assertThat(java.util.Arrays.copyOfRange(file, 0, 4097)).isEqualTo(new byte[4097]);
    }

    /** Waits until the context's I/O thread sleeps with nothing to do (reads are served inline only then). */
    private static void awaitIdle(FileHwData hw) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!hw.ioIdle()) {
            assertThat(System.nanoTime() - deadline)
                    .as("the I/O thread goes idle")
                    .isNegative();
            Thread.sleep(1);
        }
    }

    @Test
    void existingFile_isServedWithItsContents() throws Exception {
        Path image = dir.resolve("existing.img");
        byte[] content = TestDevice.random(2, 300_000);
        Files.write(image, content);
        TestDevice dev = new TestDevice(closeAfterTest(openQueue(image.toString(), DeviceOptions.DEFAULT, 2)));

        assertThat(dev.queue().limits().capacity()).isEqualTo(300_000);
        assertThat(dev.read(1, 0, 300_000)).isEqualTo(content);
    }

    /* --------------- sparseness --------------- */

    @Test
    void discard_punchesHoles_andFreesBlocks() throws Exception {
        TestDevice dev = open(16L << 20);
        Path file = store(dev).path();
        dev.write(0, TestDevice.random(3, 8 << 20));
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
        assertThat(FileTestSupport.allocated(file)).isGreaterThanOrEqualTo(8L << 20);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, 8 << 20)).isEqualTo(Status.OK);

        assertThat(FileTestSupport.allocated(file)).isLessThan(64 << 10);
        assertThat(dev.read(0, 8 << 20)).isEqualTo(new byte[8 << 20]);
    }

    @Test
    void writeZeroes_punches_unlessNoUnmap_whichKeepsBlocks() throws Exception {
        TestDevice dev = open(16L << 20);
        Path file = store(dev).path();
        dev.write(0, TestDevice.random(4, 8 << 20));

        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.NO_UNMAP, 0, 4 << 20))
                .isEqualTo(Status.OK);
        assertThat(FileTestSupport.allocated(file)).as("NO_UNMAP keeps blocks").isGreaterThanOrEqualTo(8L << 20);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, 4 << 20, 4 << 20)).isEqualTo(Status.OK);

        assertThat(FileTestSupport.allocated(file)).isBetween(4L << 20, (4L << 20) + (64 << 10));
        assertThat(dev.read(0, 8 << 20)).isEqualTo(new byte[8 << 20]);
    }

    @Test
    void writeZeroes_fastZero_succeedsWhereFallocateWorks() throws Exception {
        TestDevice dev = open(1 << 20);
        dev.write(0, TestDevice.random(5, 64 << 10));

        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.FAST_ZERO, 0, 32 << 10))
                .isEqualTo(Status.OK);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.FAST_ZERO | ReqFlags.NO_UNMAP, 32 << 10, 32 << 10))
                .isEqualTo(Status.OK);

        assertThat(dev.read(0, 64 << 10)).isEqualTo(new byte[64 << 10]);
    }

    /* --------------- block status --------------- */

    /** A test sink: records the runs in order. */
    private static Status blockStatus(TestDevice dev, long offset, long length, Extents sink) throws Exception {
        CompletableFuture<Status> done = new CompletableFuture<>();
        BlockQueue<?, ?, ?, ?> queue = dev.queue();
        Request<?> rq = queue.tryAllocate(0, r -> done.complete(r.status()));
        rq.prepare(ReqOp.BLOCK_STATUS, 0, offset, length, null).extents(sink);
        queue.submit(rq, true);
        return done.get(10, TimeUnit.SECONDS);
    }

    @Test
    void blockStatus_reportsHolesAndData_likeSeekDataSeekHole() throws Exception {
        TestDevice dev = open(4L << 20);
        dev.write(1 << 20, TestDevice.random(6, 64 << 10));
        dev.write(3L << 20, TestDevice.random(7, 4096));
        RecordingExtents sink = new RecordingExtents();

        assertThat(blockStatus(dev, 0, 4L << 20, sink)).isEqualTo(Status.OK);

        int hole = Extents.HOLE | Extents.ZERO;
        assertThat(sink.runs)
                .containsExactly(
                        new long[] {1 << 20, hole},
                        new long[] {64 << 10, 0},
                        new long[] {(2L << 20) - (64 << 10), hole},
                        new long[] {4096, 0},
                        new long[] {(1L << 20) - 4096, hole});
    }

    /* --------------- durability --------------- */

    @Test
    void fuaWritesFromManyThreadsOnFourContexts_shareFdatasyncs() throws Exception {
        FileStore store = FileOpener.open(FileSpec.parse(spec(8L << 20)), false, "gc", null);
        BlockQueue<FileHwData, FileStore, FileStore, Void> queue =
                closeAfterTest(FileBackend.open(store, queueSetup(4)));
        TestDevice dev = new TestDevice(queue);
        int threads = 32;
        int writesEach = 40;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int thread = t;
                done.add(pool.submit(() -> {
                    for (int i = 0; i < writesEach; i++) {
                        byte[] data = TestDevice.random(thread * 1000L + i, 4096);
                        dev.write(thread % 4, ReqFlags.FUA, ((long) thread * writesEach + i) * 4096, data);
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        long writes = (long) threads * writesEach;

        assertThat(store.fdatasyncCalls()).isPositive().isLessThan(writes / 4);
        for (int t = 0; t < threads; t += 7) {
            assertThat(dev.read((long) t * writesEach * 4096, 4096)).isEqualTo(TestDevice.random(t * 1000L, 4096));
        }
    }

    @Test
    void flush_afterWritesOnOtherContexts_syncsOnce_thenNeedsNoSync() throws Exception {
        TestDevice dev = open(1 << 20, false, 3);
        FileStore store = store(dev);
        dev.write(1, 0, 0, TestDevice.random(8, 4096));
        dev.write(2, 0, 4096, TestDevice.random(9, 4096));

        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
        long afterFirst = store.fdatasyncCalls();
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);

        assertThat(afterFirst).isEqualTo(1);
        assertThat(store.fdatasyncCalls()).as("nothing written since").isEqualTo(1);
    }

    @Test
    void close_syncsDirtyData_andReleasesTheLock() throws Exception {
        TestDevice dev = open(1 << 20);
        FileStore store = store(dev);
        dev.write(0, TestDevice.random(10, 4096));

        dev.queue().close();

        assertThat(store.fdatasyncCalls()).isEqualTo(1);
        BlockQueue<?, ?, ?, ?> again = closeAfterTest(openQueue(store.path().toString(), DeviceOptions.DEFAULT, 1));
        assertThat(new TestDevice(again).read(0, 4096)).isEqualTo(TestDevice.random(10, 4096));
    }
}
