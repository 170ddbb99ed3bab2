package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.RecordingOperations.Hw;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import dev.mqnbd.mq.RecordingOperations.QueueData;
import java.time.Duration;
import java.util.EnumSet;
import java.util.concurrent.TimeUnit;

/**
 * A {@link RecordingOperations} driver, its executors, a tag set and a queue on them, and the teardown every
 * test needs: end what the driver still holds, close the queue, close the executors, and fail the test if the
 * driver saw a breach of the contract.
 */
final class Harness implements AutoCloseable {
    static final QueueLimits LIMITS =
            new QueueLimits(1 << 20, 512, 4096, 1 << 16, 4096, EnumSet.of(Feature.FLUSH, Feature.FUA), false);

    final TestExecutors executors;
    final RecordingOperations ops;
    final RecordingCompletion completion;
    TagSet<Hw, QueueData, String, Pdu> tagSet;
    BlockQueue<Hw, QueueData, String, Pdu> queue;

    Harness() {
        this(new TestExecutors(), false);
    }

    private Harness(TestExecutors executors, boolean polling) {
        this.executors = executors;
        this.ops = polling ? new RecordingOperations.Polling(executors) : new RecordingOperations(executors);
        this.completion = new RecordingCompletion(ops, executors);
    }

    /** A harness whose driver implements {@link PollingOperations}. */
    static Harness polling() {
        return new Harness(new TestExecutors(), true);
    }

    /** A harness whose executors never run scheduled tasks (no BUSY retry timer, no timeout scan). */
    static Harness withoutTimers() {
        return new Harness(TestExecutors.withoutTimers(), false);
    }

    /** A polling harness whose executors never run scheduled tasks. */
    static Harness pollingWithoutTimers() {
        return new Harness(TestExecutors.withoutTimers(), true);
    }

    TagSet<Hw, QueueData, String, Pdu> buildTagSet(int hwQueues, int queueDepth, Duration timeout) {
        tagSet = TagSet.builder(ops)
                .hwQueues(hwQueues)
                .queueDepth(queueDepth)
                .tagSetData("tag-set-data")
                .timeout(timeout)
                .build();
        return tagSet;
    }

    BlockQueue<Hw, QueueData, String, Pdu> buildQueue() throws MqException {
        queue = BlockQueue.builder(tagSet)
                .queueData(ops.queueData)
                .limits(LIMITS)
                .executors(executors)
                .name("test")
                .build();
        return queue;
    }

    BlockQueue<Hw, QueueData, String, Pdu> start(int hwQueues, int queueDepth) throws MqException {
        return start(hwQueues, queueDepth, Duration.ZERO);
    }

    BlockQueue<Hw, QueueData, String, Pdu> start(int hwQueues, int queueDepth, Duration timeout) throws MqException {
        buildTagSet(hwQueues, queueDepth, timeout);
        return buildQueue();
    }

    /** Allocates a request on context {@code hctx}, completing to {@link #completion}, as a 512-byte WRITE. */
    Request<Pdu> allocate(int hctx) {
        Request<Pdu> rq = queue.tryAllocate(hctx, completion);
        assertThat(rq).as("a free tag on hardware context %s", hctx).isNotNull();
        return rq.prepare(ReqOp.WRITE, 0, 0, 512, null);
    }

    /** Allocates and submits a request on context {@code hctx}. */
    Request<Pdu> submit(int hctx, boolean isLast) {
        Request<Pdu> rq = allocate(hctx);
        queue.submit(rq, isLast);
        return rq;
    }

    /**
     * Waits for {@code n} more completions and for their tags to be free: a tag frees only after its completion
     * returns, on the executor, so drain every executor once the completions have run.
     */
    void awaitFreed(int n) throws Exception {
        completion.await(n);
        for (int i = 0; i < tagSet.hwQueues(); i++) {
            executors.drain(i);
        }
    }

    @Override
    public void close() throws Exception {
        try {
            if (queue != null && !queue.isClosed()) {
                // Let close() drain: requests still requeued end at their next retry, held ones end here.
                ops.onQueueRq = RecordingOperations.endInline(Status.SHUTDOWN);
                Request<Pdu> rq;
                while ((rq = ops.held.poll()) != null) {
                    try {
                        rq.end(Status.SHUTDOWN);
                    } catch (IllegalStateException alreadyEnded) {
                        // The test ended it through another reference.
                    }
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (queue.inFlight() > 0 && System.nanoTime() - deadline < 0) {
                    Thread.sleep(1);
                }
                // Fail fast rather than wait out close()'s 30 s drain.
                assertThat(queue.inFlight())
                        .as("requests still allocated at teardown")
                        .isZero();
                queue.close();
            }
        } finally {
            executors.close();
        }
        assertThat(ops.violations()).as("breaches of the driver contract").isEmpty();
    }
}
