package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.ThreadHctxExecutor;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What every storage backend's device must do, driven through the real mq-core path: {@link
 * Backend#open} builds the tag set and queue on {@link ThreadHctxExecutor}s, and {@link TestDevice}
 * allocates, prepares and submits each request and waits for its completion.
 *
 * <p>A subclass supplies the {@link #backend()}, a {@link #spec(long)} for a new empty device of a given
 * size, and {@link #cleanup()}. Tests keep a byte-for-byte model of the device and compare the whole
 * device with it, so a write that spills past its range fails as surely as one that goes missing.
 *
 * <p>Statuses are part of the contract: a range past the end ends a READ with {@code INVALID} and a
 * WRITE, DISCARD or WRITE_ZEROES with {@code NO_SPACE}; a read-only device refuses the latter three with
 * {@code READ_ONLY} (see {@link RequestChecks}).
 */
public abstract class BlockDeviceContract {
    protected static final int PAGE = 4096;
    protected static final int QUEUE_DEPTH = 16;

    private final List<BlockQueue<?, ?, ?, ?>> queues = new ArrayList<>();
    private final List<ThreadHctxExecutor> executors = new ArrayList<>();

    /** Returns the backend under test. */
    protected abstract Backend backend();

    /** Returns the spec (what follows {@code scheme:}) of a new device of {@code size} bytes, all zeroes. */
    protected abstract String spec(long size) throws Exception;

    /**
     * Returns the options to open a device with; backends that need settings (an S3 endpoint) add them.
     * The default has no settings.
     */
    protected DeviceOptions options(boolean readOnly) {
        return new DeviceOptions(readOnly);
    }

    /** Releases whatever {@link #spec} created; runs after every queue of the test has been closed. */
    protected void cleanup() throws Exception {}

    /** Device sizes: a whole number of pages, and one whose last page is partly past the end. */
    protected static Stream<Long> sizes() {
        return Stream.of(1L << 20, (1L << 20) + 1536);
    }

    /**
     * I/O shapes {@code (size, offset, length)}; a negative offset counts from the end of the device.
     * Aligned, sector-sized, single bytes, odd spans across one and several page boundaries, the end.
     */
    protected static Stream<Arguments> shapes() {
        long[][] shapes = {
            {0, PAGE},
            {PAGE, PAGE},
            {512, 512},
            {1, 1},
            {PAGE - 1, 2},
            {4000, 10_000},
            {12_345, 67_890},
            {3 * PAGE + 17, 5 * PAGE},
            {-1, 1},
            {-5000, 5000},
            {-(PAGE + 7), PAGE + 7},
            {0, 256 << 10}
        };
        return sizes().flatMap(size -> Arrays.stream(shapes).map(s -> Arguments.of(size, s[0], s[1])));
    }

    /** Ranges {@code (size, offset from the end, length)} that end past the end of the device. */
    protected static Stream<Arguments> pastEnd() {
        return sizes().flatMap(size -> Stream.of(
                Arguments.of(size, 0L, 1L),
                Arguments.of(size, -512L, 1024L),
                Arguments.of(size, -1L, 2L),
                Arguments.of(size, -size, size + 1)));
    }

    @AfterEach
    final void closeDevices() throws Exception {
        try {
            for (BlockQueue<?, ?, ?, ?> q : queues) {
                q.close();
            }
            for (ThreadHctxExecutor e : executors) {
                e.close();
            }
        } finally {
            cleanup();
        }
    }

    /** Opens {@code spec} with this contract's backend and builds its queue on {@code hwQueues} contexts. */
    protected final BlockQueue<?, ?, ?, ?> openQueue(String spec, DeviceOptions options, int hwQueues)
            throws Exception {
        QueueSetup setup = queueSetup(hwQueues);
        return backend().open(spec, options, setup).build(setup);
    }

    /** Opens a new device of {@code size} bytes with {@code hwQueues} hardware contexts. */
    protected final TestDevice open(long size, boolean readOnly, int hwQueues) throws Exception {
        QueueSetup setup = queueSetup(hwQueues);
        BlockQueue<?, ?, ?, ?> queue =
                backend().open(spec(size), options(readOnly), setup).build(setup);
        return new TestDevice(closeAfterTest(queue));
    }

    /** Returns a setup whose executors are threads of their own, stopped after the test. */
    protected final QueueSetup queueSetup(int hwQueues) {
        ThreadHctxExecutor[] ex = new ThreadHctxExecutor[hwQueues];
        for (int i = 0; i < hwQueues; i++) {
            ex[i] = new ThreadHctxExecutor("hctx-" + i);
            executors.add(ex[i]);
        }
        return new QueueSetup("test", hwQueues, QUEUE_DEPTH, i -> ex[i], Duration.ZERO);
    }

    /** Closes {@code queue} after the test, before its executors stop. */
    protected final <Q extends BlockQueue<?, ?, ?, ?>> Q closeAfterTest(Q queue) {
        queues.add(queue);
        return queue;
    }

    protected final TestDevice open(long size) throws Exception {
        return open(size, false, 1);
    }

    /** Asserts that the whole device reads as {@code model}. */
    protected static void assertContent(TestDevice dev, byte[] model) {
        byte[] actual = dev.read(0, model.length);
        for (int i = 0; i < model.length; i++) {
            if (actual[i] != model[i]) {
                throw new AssertionError("byte " + i + ": " + actual[i] + " (expected: " + model[i] + ")");
            }
        }
    }

    private static long at(long size, long offset) {
        return offset < 0 ? size + offset : offset;
    }

    /* --------------- geometry --------------- */

    @ParameterizedTest
    @MethodSource("sizes")
    void limits_matchSpec(long size) throws Exception {
        TestDevice dev = open(size);

        assertThat(dev.queue().limits().capacity()).isEqualTo(size);
        assertThat(dev.queue().limits().readOnly()).isFalse();
        assertThat(dev.queue().limits().maxTransferBytes()).isGreaterThanOrEqualTo(256 << 10);
    }

    /* --------------- read and write --------------- */

    @ParameterizedTest
    @MethodSource("sizes")
    void read_neverWritten_returnsZeroes(long size) throws Exception {
        TestDevice dev = open(size);

        assertContent(dev, new byte[(int) size]);
        assertThat(dev.read(size - 1, 1)).containsExactly(0);
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void write_thenRead_returnsData(long size, long offset, long length) throws Exception {
        TestDevice dev = open(size);
        long start = at(size, offset);
        byte[] data = TestDevice.random(start * 31 + length, (int) length);
        byte[] model = new byte[(int) size];
        System.arraycopy(data, 0, model, (int) start, data.length);

        dev.write(start, data);

        assertThat(dev.read(start, (int) length)).isEqualTo(data);
        assertContent(dev, model);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void write_overlapping_lastWriteWins(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] model = new byte[(int) size];
        long[][] writes = {{0, 3 * PAGE}, {1000, 3000}, {PAGE - 3, 7}, {2 * PAGE + 100, PAGE}, {size - 9000, 9000}};
        for (int i = 0; i < writes.length; i++) {
            byte[] data = TestDevice.random(i, (int) writes[i][1]);
            dev.write(writes[i][0], data);
            System.arraycopy(data, 0, model, (int) writes[i][0], data.length);
        }

        assertContent(dev, model);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void write_wholeDevice_readsBackInPieces(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] data = TestDevice.random(size, (int) size);

        dev.write(0, data);

        for (long offset = 0; offset < size; offset += 65_537) {
            int n = (int) Math.min(65_537, size - offset);
            assertThat(dev.read(offset, n)).isEqualTo(Arrays.copyOfRange(data, (int) offset, (int) offset + n));
        }
    }

    @Test
    void write_heapBuffers_roundTrip() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] data = TestDevice.random(7, 3 * PAGE + 5);

        assertThat(dev.submit(ReqOp.WRITE, 0, 777, data.length, ByteBuffer.wrap(data)))
                .isEqualTo(Status.OK);
        ByteBuffer dst = ByteBuffer.allocate(data.length);
        assertThat(dev.submit(ReqOp.READ, 0, 777, data.length, dst)).isEqualTo(Status.OK);

        assertThat(dst.array()).isEqualTo(data);
    }

    @Test
    void write_onOneContext_readsBackOnAnother() throws Exception {
        TestDevice dev = open(1 << 20, false, 3);
        byte[] data = TestDevice.random(3, 2 * PAGE + 1);

        dev.write(0, 0, 5000, data);

        assertThat(dev.read(1, 5000, data.length)).isEqualTo(data);
        assertThat(dev.read(2, 5000, data.length)).isEqualTo(data);
    }

    @Test
    void write_smallestDevice_oneSector() throws Exception {
        TestDevice dev = open(512);
        byte[] data = TestDevice.random(512, 512);

        dev.write(0, data);

        assertThat(dev.read(0, 512)).isEqualTo(data);
        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, 512)).isEqualTo(Status.OK);
        assertThat(dev.read(0, 512)).isEqualTo(new byte[512]);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void writeFua_thenRead_returnsData(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] data = TestDevice.random(11, 2 * PAGE);

        dev.write(0, ReqFlags.FUA, PAGE + 512, data);

        assertThat(dev.read(PAGE + 512, data.length)).isEqualTo(data);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void flush_succeeds(long size) throws Exception {
        TestDevice dev = open(size);
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);

        byte[] data = TestDevice.random(13, PAGE);
        dev.write(0, data);

        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);
        assertThat(dev.read(0, PAGE)).isEqualTo(data);
    }

    /* --------------- discard and write zeroes --------------- */

    @ParameterizedTest
    @MethodSource("sizes")
    void discard_thenRead_returnsZeroes(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] model = TestDevice.random(17, (int) size);
        dev.write(0, model);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 4 * PAGE, 8 * PAGE)).isEqualTo(Status.OK);

        Arrays.fill(model, 4 * PAGE, 12 * PAGE, (byte) 0);
        assertContent(dev, model);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void discard_partialPages_keepsNeighbours(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] model = new byte[(int) size];
        byte[] data = TestDevice.random(19, 4 * PAGE);
        dev.write(0, data);
        System.arraycopy(data, 0, model, 0, data.length);

        assertThat(dev.noData(ReqOp.DISCARD, 0, 100, 8000)).isEqualTo(Status.OK);
        assertThat(dev.noData(ReqOp.DISCARD, 0, 3 * PAGE + 1, 1)).isEqualTo(Status.OK);

        Arrays.fill(model, 100, 8100, (byte) 0);
        model[3 * PAGE + 1] = 0;
        assertContent(dev, model);
    }

    @ParameterizedTest
    @MethodSource("sizes")
    void discard_toTheEnd_readsZeroes(long size) throws Exception {
        TestDevice dev = open(size);
        byte[] model = TestDevice.random(23, (int) size);
        dev.write(0, model);

        assertThat(dev.noData(ReqOp.DISCARD, 0, size - 3 * PAGE - 5, 3 * PAGE + 5))
                .isEqualTo(Status.OK);

        Arrays.fill(model, (int) size - 3 * PAGE - 5, (int) size, (byte) 0);
        assertContent(dev, model);
    }

    static Stream<Arguments> zeroFlags() {
        return sizes().flatMap(size -> Stream.of(Arguments.of(size, 0), Arguments.of(size, ReqFlags.NO_UNMAP)));
    }

    @ParameterizedTest
    @MethodSource("zeroFlags")
    void writeZeroes_thenRead_returnsZeroes(long size, int flags) throws Exception {
        TestDevice dev = open(size);
        byte[] model = new byte[(int) size];
        byte[] data = TestDevice.random(29, 6 * PAGE + 333);
        dev.write(0, data);
        System.arraycopy(data, 0, model, 0, data.length);

        // Aligned pages, a partial page at each end, and a stretch that was never written.
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, flags, PAGE, 2 * PAGE)).isEqualTo(Status.OK);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, flags, 3 * PAGE + 777, 2 * PAGE + 1))
                .isEqualTo(Status.OK);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, flags, 6 * PAGE, 20 * PAGE)).isEqualTo(Status.OK);

        Arrays.fill(model, PAGE, 3 * PAGE, (byte) 0);
        Arrays.fill(model, 3 * PAGE + 777, 5 * PAGE + 778, (byte) 0);
        Arrays.fill(model, 6 * PAGE, 26 * PAGE, (byte) 0);
        assertContent(dev, model);
    }

    @ParameterizedTest
    @MethodSource("zeroFlags")
    void writeZeroes_thenWrite_returnsNewData(long size, int flags) throws Exception {
        TestDevice dev = open(size);
        dev.write(0, TestDevice.random(31, 4 * PAGE));
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, flags, 0, 4 * PAGE)).isEqualTo(Status.OK);
        byte[] data = TestDevice.random(37, 100);

        dev.write(PAGE + 50, data);

        byte[] expected = new byte[4 * PAGE];
        System.arraycopy(data, 0, expected, PAGE + 50, data.length);
        assertThat(dev.read(0, 4 * PAGE)).isEqualTo(expected);
    }

    /* --------------- bounds --------------- */

    @ParameterizedTest
    @MethodSource("pastEnd")
    void read_pastEnd_isInvalid(long size, long offset, long length) throws Exception {
        TestDevice dev = open(size);

        assertThat(dev.submit(ReqOp.READ, 0, size + offset, length, TestDevice.poisoned((int) length)))
                .isEqualTo(Status.INVALID);
    }

    @ParameterizedTest
    @MethodSource("pastEnd")
    void writes_pastEnd_areNoSpace_andChangeNothing(long size, long offset, long length) throws Exception {
        TestDevice dev = open(size);
        byte[] model = TestDevice.random(41, (int) size);
        dev.write(0, model);
        long start = size + offset;

        assertThat(dev.submit(ReqOp.WRITE, 0, start, length, TestDevice.poisoned((int) length)))
                .isEqualTo(Status.NO_SPACE);
        assertThat(dev.noData(ReqOp.DISCARD, 0, start, length)).isEqualTo(Status.NO_SPACE);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, start, length)).isEqualTo(Status.NO_SPACE);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.NO_UNMAP, start, length))
                .isEqualTo(Status.NO_SPACE);

        assertContent(dev, model);
    }

    @Test
    void requests_overflowingOrNegativeRanges_areRefused() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] model = TestDevice.random(43, 1 << 20);
        dev.write(0, model);

        assertThat(dev.submit(ReqOp.READ, 0, Long.MAX_VALUE - 10, 512, TestDevice.poisoned(512)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.READ, 0, -512, 512, TestDevice.poisoned(512)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.WRITE, 0, Long.MAX_VALUE - 10, 512, TestDevice.poisoned(512)))
                .isEqualTo(Status.NO_SPACE);
        assertThat(dev.submit(ReqOp.WRITE, 0, -512, 512, TestDevice.poisoned(512)))
                .isEqualTo(Status.NO_SPACE);
        assertThat(dev.noData(ReqOp.DISCARD, 0, 512, Long.MAX_VALUE)).isEqualTo(Status.NO_SPACE);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, 0, -1)).isEqualTo(Status.NO_SPACE);

        assertContent(dev, model);
    }

    @Test
    void requests_withoutEnoughData_areInvalid() throws Exception {
        TestDevice dev = open(1 << 20);
        byte[] model = TestDevice.random(47, 1 << 20);
        dev.write(0, model);

        assertThat(dev.submit(ReqOp.WRITE, 0, 0, PAGE, null)).isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.WRITE, 0, 0, PAGE, TestDevice.poisoned(PAGE - 1)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.READ, 0, 0, PAGE, null)).isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.READ, 0, 0, PAGE, TestDevice.poisoned(PAGE - 1)))
                .isEqualTo(Status.INVALID);
        assertThat(dev.submit(ReqOp.READ, 0, 0, PAGE, ByteBuffer.allocate(PAGE).asReadOnlyBuffer()))
                .isEqualTo(Status.INVALID);

        assertContent(dev, model);
    }

    /* --------------- read-only --------------- */

    @ParameterizedTest
    @MethodSource("sizes")
    void readOnly_refusesWritesDiscardAndZeroes_andKeepsData(long size) throws Exception {
        TestDevice dev = open(size, true, 2);
        byte[] before = dev.read(0, (int) size);

        assertThat(dev.queue().limits().readOnly()).isTrue();
        assertThat(dev.tryWrite(0, 0, 0, TestDevice.random(53, PAGE))).isEqualTo(Status.READ_ONLY);
        assertThat(dev.tryWrite(1, ReqFlags.FUA, size - 1, new byte[] {1})).isEqualTo(Status.READ_ONLY);
        assertThat(dev.noData(ReqOp.DISCARD, 0, 0, size)).isEqualTo(Status.READ_ONLY);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, 0, 0, size)).isEqualTo(Status.READ_ONLY);
        assertThat(dev.noData(ReqOp.WRITE_ZEROES, ReqFlags.NO_UNMAP, PAGE, PAGE))
                .isEqualTo(Status.READ_ONLY);
        assertThat(dev.noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);

        assertThat(dev.read(1, 0, (int) size)).isEqualTo(before);
    }

    /* --------------- close --------------- */

    @Test
    void close_twice_secondIsNoOp() throws Exception {
        TestDevice dev = open(1 << 20, false, 2);
        dev.write(0, TestDevice.random(59, PAGE));
        BlockQueue<?, ?, ?, ?> queue = dev.queue();

        queue.close();
        assertThat(queue.isClosed()).isTrue();
        queue.close();

        assertThat(queue.inFlight()).isZero();
        assertThatThrownBy(() -> queue.tryAllocate(0, rq -> {})).isInstanceOf(IllegalStateException.class);
    }
}
