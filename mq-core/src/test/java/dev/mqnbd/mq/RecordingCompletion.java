package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * The submitter's completion in tests: copies out what the request says while it is still valid, logs {@code
 * completion i:t S} into the driver's log, and lets the test wait for a number of completions.
 */
final class RecordingCompletion implements RequestCompletion {

    /** What a completion saw; the request itself is reused as soon as the completion returns. */
    record Ended(
            int hwIndex,
            int tag,
            int generation,
            Status status,
            Object attachment,
            boolean onExecutor,
            boolean tagInFlight) {}

    private final RecordingOperations ops;
    private final TestExecutors executors;
    private final List<Ended> ended = Collections.synchronizedList(new ArrayList<>());
    private final Semaphore completions = new Semaphore(0);

    RecordingCompletion(RecordingOperations ops, TestExecutors executors) {
        this.ops = ops;
        this.executors = executors;
    }

    @Override
    public void completed(Request<?> rq) {
        boolean onExecutor = executors.get(rq.hwIndex()).inExecutor();
        if (!onExecutor) {
            ops.violation("completion " + RecordingOperations.id(rq) + " ran off the executor");
        }
        ended.add(new Ended(
                rq.hwIndex(),
                rq.tag(),
                rq.generation(),
                rq.status(),
                rq.attachment(),
                onExecutor,
                rq.state() != Request.IDLE));
        if (ops.recordIo) {
            ops.record("completion " + RecordingOperations.id(rq) + " " + rq.status());
        }
        completions.release();
    }

    /** Waits for {@code n} more completions (each counted once across calls). */
    void await(int n) throws InterruptedException {
        assertThat(completions.tryAcquire(n, 5, TimeUnit.SECONDS))
                .as("%s completions within 5 s (ended so far: %s)", n, ended())
                .isTrue();
    }

    /** Returns every completion so far, in the order they ran. */
    List<Ended> ended() {
        synchronized (ended) {
            return List.copyOf(ended);
        }
    }

    int count() {
        return ended.size();
    }
}
