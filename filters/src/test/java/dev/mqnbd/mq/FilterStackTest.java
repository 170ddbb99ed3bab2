package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.filter.Filter;
import dev.mqnbd.filter.FilterContext;
import dev.mqnbd.filter.FilterSpec;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.filter.StackContext;
import dev.mqnbd.mq.RecordingOperations.Hw;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import dev.mqnbd.mq.RecordingOperations.QueueData;
import dev.mqnbd.storage.Device;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Whole stacks of filters over a {@link RecordingOperations} driver, which files every breach of the driver
 * contract it sees: setup failures are undone in reverse order, and every request through a stack of every
 * kind ends exactly once while the driver below sees only what the contract allows.
 */
class FilterStackTest {
    private final TestExecutors executors = new TestExecutors();
    private final RecordingOperations driver = new RecordingOperations(executors);

    @TempDir
    Path dir;

    @AfterEach
    void tearDown() {
        executors.close();
        assertThat(driver.violations()).as("breaches of the driver contract").isEmpty();
    }

    /** A pass-through filter that records its setup and teardown, and can fail building one context. */
    static final class Recording<N> extends Filter<FilterContext<N>, N, QueueData, String, Pdu> {
        final List<String> events;
        final String name;
        volatile int failAt = -1;

        Recording(Operations<N, QueueData, String, Pdu> next, String name, List<String> events) {
            super(next, Harness.LIMITS);
            this.name = name;
            this.events = events;
        }

        @Override
        protected void start() {
            events.add(name + " start");
        }

        @Override
        protected void stop() {
            events.add(name + " stop");
        }

        @Override
        protected FilterContext<N> newContext(N next, int index) throws Exception {
            if (index == failAt) {
                events.add(name + " fails " + index);
                throw new IOException(name + " cannot build context " + index);
            }
            events.add(name + " init " + index);
            return new FilterContext<>(next, index);
        }

        @Override
        protected void closeContext(FilterContext<N> context) {
            events.add(name + " exit " + context.index());
        }

        @Override
        public String toString() {
            return name;
        }
    }

    @Test
    void initHctxFailingHalfWay_undoesEveryLayerInReverseOrder() {
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        Recording<Hw> inner = new Recording<>(driver, "inner", events);
        Recording<FilterContext<Hw>> outer = new Recording<>(inner, "outer", events);
        inner.failAt = 1;

        assertThatThrownBy(() -> build(outer, 3)).hasRootCauseMessage("inner cannot build context 1");

        assertThat(events)
                .containsExactly(
                        "outer start",
                        "inner start",
                        "inner init 0",
                        "outer init 0",
                        "inner fails 1",
                        "outer exit 0",
                        "inner exit 0",
                        "inner stop",
                        "outer stop");
        // The driver's context 1 was built and torn down by the filter above it, context 0 by mq-core.
        assertThat(driver.events()).containsExactly("initHctx 0", "initHctx 1", "exitHctx 1", "exitHctx 0");
    }

    @Test
    void driverFailingBelowTheFilters_undoesTheFilters() {
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        Recording<FilterContext<Hw>> outer = new Recording<>(new Recording<>(driver, "inner", events), "outer", events);
        driver.failInitAt = 2;

        assertThatThrownBy(() -> build(outer, 3)).hasRootCauseMessage("initHctx failed");

        assertThat(events)
                .containsExactly(
                        "outer start",
                        "inner start",
                        "inner init 0",
                        "outer init 0",
                        "inner init 1",
                        "outer init 1",
                        "outer exit 1",
                        "inner exit 1",
                        "outer exit 0",
                        "inner exit 0",
                        "inner stop",
                        "outer stop");
    }

    private <C> BlockQueue<C, QueueData, String, Pdu> build(Operations<C, QueueData, String, Pdu> top, int hwQueues)
            throws MqException {
        TagSet<C, QueueData, String, Pdu> tags = TagSet.builder(top)
                .hwQueues(hwQueues)
                .queueDepth(4)
                .tagSetData("t")
                .build();
        return BlockQueue.builder(tags)
                .queueData(driver.queueData)
                .limits(Harness.LIMITS)
                .executors(executors)
                .name("stack")
                .build();
    }

    /** Stacks {@code specs} (first closest to the client) on the recording driver, as the command line does. */
    private Device<?, QueueData, String, Pdu> stack(String... specs) throws Exception {
        QueueLimits limits = new QueueLimits(
                1 << 20,
                512,
                4096,
                1 << 16,
                4096,
                EnumSet.of(Feature.FLUSH, Feature.FUA, Feature.DISCARD, Feature.WRITE_ZEROES, Feature.BLOCK_STATUS),
                false);
        Device<?, QueueData, String, Pdu> device = new Device<>(driver, "tags", driver.queueData, limits, "recording");
        for (int i = specs.length - 1; i >= 0; i--) {
            FilterSpec spec = FilterSpec.parse("x=" + specs[i]);
            device = Filters.stack(Filters.kind(spec.kind()), spec.settings(), device, new StackContext("x", false));
        }
        return device;
    }

    @Test
    void stackDescription_listsTheLayersClosestToTheClientFirst() throws Exception {
        Device<?, QueueData, String, Pdu> device =
                stack("rate,iops=1000", "error,rate=0.5,ops=write", "delay,read=1ms");
        assertThat(device.description())
                .isEqualTo("rate(iops=1000) -> error(rate=0.5,ops=write) -> delay(read=1ms) -> recording");
        assertThat(device.limits().has(Feature.DISCARD)).isTrue();
    }

    @Test
    void cow_declaresAWritableStackOverAReadOnlyBase_andDropsZeroCopyReads() throws Exception {
        Device<?, QueueData, String, Pdu> device = stack("cow");
        assertThat(device.limits().readOnly()).isFalse();
        assertThat(device.limits().features())
                .contains(Feature.FLUSH, Feature.FUA, Feature.DISCARD, Feature.WRITE_ZEROES, Feature.SHARED_FLUSH)
                .doesNotContain(Feature.READ_SEGMENTS);
        assertThat(Filters.kind("cow").opensBelowReadOnly()).isTrue();
        assertThat(Filters.kind("rate").opensBelowReadOnly()).isFalse();
    }

    @Test
    @Timeout(60)
    void everyKindStacked_manySubmitters_everyRequestEndsOnce_andTheContractHolds() throws Exception {
        Path log = dir.resolve("requests.log");
        Device<?, QueueData, String, Pdu> device = stack(
                "log,file=" + log,
                "rate,iops=1000000,burst=1s",
                "error,rate=0.05,ops=write|flush,seed=3",
                "delay,read=1ms",
                "cow");
        driver.recordIo = false;
        // Below: a batching driver that sometimes answers BUSY and ends the rest inline or from a pool thread.
        driver.onQueueRq = (ops, hw, rq, isLast) -> {
            int dice = ThreadLocalRandom.current().nextInt(64);
            if (dice == 0) {
                return Status.BUSY;
            }
            if (dice < 32) {
                rq.end(Status.OK);
            } else {
                Thread.ofVirtual().start(() -> rq.end(Status.OK));
            }
            return Status.OK;
        };
        run(device, 4, 8, 4, 5_000);
        long lines;
        try (var stream = Files.lines(log)) {
            lines = stream.filter(l -> l.contains(" op=")).count();
        }
        assertThat(lines).as("one log line per request").isEqualTo(4 * 5_000);
    }

    /**
     * Builds {@code device} on {@code hwQueues} contexts of {@code depth} tags, then {@code submitters} threads
     * each submit {@code perSubmitter} random requests in batches; checks each completes exactly once and every
     * tag comes back, then closes the queue.
     */
    private <C> void run(
            Device<C, QueueData, String, Pdu> device, int hwQueues, int depth, int submitters, int perSubmitter)
            throws Exception {
        TagSet<C, QueueData, String, Pdu> tags = TagSet.builder(device.driver())
                .hwQueues(hwQueues)
                .queueDepth(depth)
                .tagSetData(device.tagSetData())
                .build();
        BlockQueue<C, QueueData, String, Pdu> queue = BlockQueue.builder(tags)
                .queueData(device.queueData())
                .limits(device.limits())
                .executors(executors)
                .name("stack")
                .build();
        int total = submitters * perSubmitter;
        AtomicIntegerArray completions = new AtomicIntegerArray(total);
        CountDownLatch all = new CountDownLatch(total);
        ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
        RequestCompletion completion = rq -> {
            if (!executors.get(rq.hwIndex()).inExecutor()) {
                problems.add("completion off the executor: " + rq);
            }
            completions.incrementAndGet((Integer) rq.attachment());
            all.countDown();
        };
        List<Thread> threads = new ArrayList<>();
        for (int s = 0; s < submitters; s++) {
            int submitter = s;
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    submit(queue, hwQueues, submitter, perSubmitter, completion);
                } catch (Throwable t) {
                    problems.add("submitter " + submitter + ": " + t);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        assertThat(all.await(30, TimeUnit.SECONDS))
                .as("all completed (missing %s)", all.getCount())
                .isTrue();
        for (int i = 0; i < hwQueues; i++) {
            executors.drain(i);
        }
        assertThat(problems).isEmpty();
        for (int id = 0; id < total; id++) {
            assertThat(completions.get(id)).as("completions of request %s", id).isEqualTo(1);
        }
        assertThat(queue.inFlight()).isZero();
        queue.close();
    }

    private static final ReqOp[] OPS = {
        ReqOp.READ,
        ReqOp.READ,
        ReqOp.WRITE,
        ReqOp.WRITE,
        ReqOp.FLUSH,
        ReqOp.DISCARD,
        ReqOp.WRITE_ZEROES,
        ReqOp.BLOCK_STATUS
    };

    private static void submit(
            BlockQueue<?, QueueData, String, Pdu> queue,
            int hwQueues,
            int submitter,
            int count,
            RequestCompletion completion)
            throws InterruptedException {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        Semaphore freed = new Semaphore(0);
        int next = 0;
        while (next < count) {
            int hctx = random.nextInt(hwQueues);
            int batch = Math.min(1 + random.nextInt(4), count - next);
            boolean open = false;
            for (int i = 0; i < batch; ) {
                Request<Pdu> rq = queue.tryAllocate(hctx, completion);
                if (rq == null) {
                    if (open) {
                        queue.commit(hctx);
                        open = false;
                    }
                    freed.drainPermits();
                    queue.waitForTag(hctx, freed::release);
                    if (!freed.tryAcquire(10, TimeUnit.SECONDS)) {
                        throw new AssertionError("no tag on " + hctx + " for 10 s");
                    }
                    continue;
                }
                ReqOp op = OPS[random.nextInt(OPS.length)];
                long offset = random.nextInt(2048) * 512L;
                long length = op == ReqOp.FLUSH ? 0 : 512;
                ByteBuffer data = op == ReqOp.READ || op == ReqOp.WRITE ? ByteBuffer.allocate(512) : null;
                rq.prepare(op, 0, op == ReqOp.FLUSH ? 0 : offset, length, data).attach(submitter * count + next);
                if (op == ReqOp.BLOCK_STATUS) {
                    rq.extents(new Runs());
                }
                boolean last = i == batch - 1 && random.nextBoolean();
                queue.submit(rq, last);
                open = !last;
                next++;
                i++;
            }
            if (open) {
                queue.commit(hctx);
            }
        }
    }

    /** A small extent sink. */
    static final class Runs implements Extents {
        private final long[] lengths = new long[16];
        private final int[] flags = new int[16];
        private int count;

        @Override
        public boolean add(long length, int runFlags) {
            if (count > 0 && flags[count - 1] == runFlags) {
                lengths[count - 1] += length;
                return true;
            }
            if (count == lengths.length) {
                return false;
            }
            lengths[count] = length;
            flags[count++] = runFlags;
            return true;
        }

        @Override
        public void clear() {
            count = 0;
        }

        @Override
        public int count() {
            return count;
        }

        @Override
        public long total() {
            long t = 0;
            for (int i = 0; i < count; i++) {
                t += lengths[i];
            }
            return t;
        }

        @Override
        public long runLength(int i) {
            return lengths[i];
        }

        @Override
        public int runFlags(int i) {
            return flags[i];
        }
    }
}
