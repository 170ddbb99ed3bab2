package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.RecordingOperations.Hw;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Many submitters, a deferring driver that sometimes answers BUSY and ends requests inline or on a pool: every
 * request completes exactly once, every tag comes back, the driver contract holds throughout.
 */
class StressTest {
    private static final int HW_QUEUES = 4;
    private static final int DEPTH = 8;
    private static final int SUBMITTERS = 4;
    private static final int PER_SUBMITTER = 20_000;
    private static final int TOTAL = SUBMITTERS * PER_SUBMITTER;

    private final Harness h = new Harness();
    private final ExecutorService driverThreads = Executors.newFixedThreadPool(3, r -> {
        Thread t = new Thread(r, "driver-io");
        t.setDaemon(true);
        return t;
    });

    @AfterEach
    void tearDown() throws Exception {
        driverThreads.shutdownNow();
        h.close();
    }

    /** Starts every request the driver deferred: some end inline on the executor, the others on the pool. */
    private void startDeferred(Hw hw) {
        List<Request<Pdu>> batch = new ArrayList<>(hw.deferred);
        hw.deferred.clear();
        for (Request<Pdu> rq : batch) {
            if (ThreadLocalRandom.current().nextInt(4) == 0) {
                rq.end(Status.OK);
            } else {
                driverThreads.execute(() -> rq.end(Status.OK));
            }
        }
    }

    @Test
    @Timeout(60)
    void manySubmitters_everyCompletionRunsOnce_everyTagFreed_contractHolds() throws Exception {
        h.start(HW_QUEUES, DEPTH);
        h.ops.recordIo = false;
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            int dice = ThreadLocalRandom.current().nextInt(256);
            if (dice == 0) {
                return Status.BUSY;
            }
            if (dice < 32 && hw.deferred.isEmpty()) {
                // Like the memory backend: done before queueRq returns.
                rq.end(Status.OK);
                if (isLast) {
                    startDeferred(hw);
                }
                return Status.OK;
            }
            // A batching driver: defer until the batch ends.
            hw.deferred.add(rq);
            if (isLast) {
                startDeferred(hw);
            }
            return Status.OK;
        };
        h.ops.onCommitRqs = this::startDeferred;

        AtomicIntegerArray completions = new AtomicIntegerArray(TOTAL);
        CountDownLatch allCompleted = new CountDownLatch(TOTAL);
        ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
        RequestCompletion completion = rq -> {
            if (!h.executors.get(rq.hwIndex()).inExecutor()) {
                problems.add("completion off the executor: " + rq);
            }
            if (rq.status() != Status.OK) {
                problems.add("completion with " + rq.status() + ": " + rq);
            }
            completions.incrementAndGet((Integer) rq.attachment());
            allCompleted.countDown();
        };

        List<Thread> submitters = new ArrayList<>();
        for (int s = 0; s < SUBMITTERS; s++) {
            int submitter = s;
            submitters.add(Thread.ofPlatform().name("submitter-" + s).start(() -> {
                try {
                    submit(submitter, completion);
                } catch (Throwable t) {
                    problems.add("submitter " + submitter + " failed: " + t);
                }
            }));
        }
        for (Thread t : submitters) {
            t.join();
        }
        assertThat(problems).isEmpty();
        assertThat(allCompleted.await(30, TimeUnit.SECONDS))
                .as("all %s requests completed (missing: %s)", TOTAL, allCompleted.getCount())
                .isTrue();
        for (int i = 0; i < HW_QUEUES; i++) {
            h.executors.drain(i);
        }

        assertThat(problems).isEmpty();
        for (int id = 0; id < TOTAL; id++) {
            if (completions.get(id) != 1) {
                problems.add("request " + id + " completed " + completions.get(id) + " times");
            }
        }
        assertThat(problems).isEmpty();
        assertThat(h.queue.inFlight()).isZero();
        long completed = 0;
        long dispatched = 0;
        long busy = 0;
        for (int i = 0; i < HW_QUEUES; i++) {
            completed += h.queue.hctx(i).completed();
            dispatched += h.queue.hctx(i).dispatched();
            busy += h.queue.hctx(i).busy();
        }
        assertThat(completed).isEqualTo(TOTAL);
        assertThat(busy).as("BUSY answers (the requeue path ran)").isPositive();
        assertThat(dispatched).isEqualTo(TOTAL + busy);
        assertThat(h.ops.completeCalls).hasValue(TOTAL);
        assertThat(h.ops.newRequestDataCalls()).isEqualTo(HW_QUEUES * DEPTH);
        // Every tag is free again.
        for (int i = 0; i < HW_QUEUES; i++) {
            List<Request<Pdu>> all = new ArrayList<>();
            for (int t = 0; t < DEPTH; t++) {
                Request<Pdu> rq = h.queue.tryAllocate(i, completion);
                assertThat(rq).as("tag %s of hardware context %s", t, i).isNotNull();
                all.add(rq);
            }
            assertThat(h.queue.tryAllocate(i, completion)).isNull();
            all.forEach(h.queue::abandon);
        }
        assertThat(h.ops.violations()).isEmpty();

        h.queue.close();
        assertThat(h.ops.events()
                        .subList(
                                h.ops.events().size() - HW_QUEUES - 1,
                                h.ops.events().size()))
                .containsExactly("exitHctx 3", "exitHctx 2", "exitHctx 1", "exitHctx 0", "close queueData");
    }

    /**
     * One submitter: batches of 1..6 requests on a random context, each closed by an isLast request or by a
     * commit. With no free tag it closes its open batch, then waits for a tag; it never spins.
     */
    private void submit(int submitter, RequestCompletion completion) throws InterruptedException {
        ThreadLocalRandom random = ThreadLocalRandom.current();
        Semaphore tagFreed = new Semaphore(0);
        int next = 0;
        while (next < PER_SUBMITTER) {
            int hctx = random.nextInt(HW_QUEUES);
            int batch = Math.min(1 + random.nextInt(6), PER_SUBMITTER - next);
            boolean closeWithCommit = random.nextBoolean();
            boolean open = false;
            for (int i = 0; i < batch; ) {
                Request<Pdu> rq = h.queue.tryAllocate(hctx, completion);
                if (rq == null) {
                    if (open) {
                        // Our own deferred requests may hold the tags we wait for: start them first.
                        h.queue.commit(hctx);
                        open = false;
                    }
                    tagFreed.drainPermits();
                    h.queue.waitForTag(hctx, tagFreed::release);
                    if (!tagFreed.tryAcquire(10, TimeUnit.SECONDS)) {
                        throw new AssertionError("submitter " + submitter + ": no tag on " + hctx + " for 10 s");
                    }
                    continue;
                }
                int id = submitter * PER_SUBMITTER + next;
                rq.prepare(ReqOp.WRITE, 0, (long) id * 512, 512, null).attach(id);
                boolean last = i == batch - 1;
                h.queue.submit(rq, last && !closeWithCommit);
                open = !(last && !closeWithCommit);
                next++;
                i++;
            }
            if (open) {
                h.queue.commit(hctx);
            }
        }
    }
}
