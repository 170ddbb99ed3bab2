package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalStateException;

import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link BlockQueue#poll} reaches a {@link PollingOperations} driver, on the context's executor. */
@Timeout(20)
class PollTest {
    private Harness h;

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    @Test
    void poll_pollingDriver_calledOnTheExecutor_resultReturned() throws Exception {
        h = Harness.polling();
        h.start(2, 1);
        RecordingOperations.Polling ops = (RecordingOperations.Polling) h.ops;
        assertThat(h.tagSet.polling).isTrue();

        ops.onPoll = hw -> true;
        assertThat(h.executors.call(1, () -> h.queue.poll(1))).isTrue();
        ops.onPoll = hw -> false;
        assertThat(h.executors.call(0, () -> h.queue.poll(0))).isFalse();

        assertThat(h.ops.events()).containsExactly("initHctx 0", "initHctx 1", "poll 1", "poll 0");
    }

    @Test
    void poll_plainDriver_returnsFalse_noCallback() throws Exception {
        h = new Harness();
        h.start(1, 1);
        assertThat(h.tagSet.polling).isFalse();

        assertThat(h.executors.call(0, () -> h.queue.poll(0))).isFalse();

        assertThat(h.ops.events()).containsExactly("initHctx 0");
    }

    @Test
    void poll_offTheExecutor_throws() throws Exception {
        h = Harness.polling();
        h.start(2, 1);

        assertThatIllegalStateException()
                .isThrownBy(() -> h.queue.poll(0))
                .withMessage("poll: called off the executor of hardware context 0");
        // On the executor of another context is off this one's executor too.
        assertThatIllegalStateException().isThrownBy(() -> h.executors.call(1, () -> h.queue.poll(0)));

        assertThat(h.ops.entries("poll")).isEmpty();
    }

    @Test
    void poll_reapsHeldRequests_theyCompleteOnTheExecutor() throws Exception {
        h = Harness.polling();
        h.start(1, 4);
        RecordingOperations.Polling ops = (RecordingOperations.Polling) h.ops;
        ops.onPoll = hw -> {
            boolean any = false;
            Request<Pdu> rq;
            while ((rq = ops.held.poll()) != null) {
                rq.end(Status.OK);
                any = true;
            }
            return any;
        };
        h.submit(0, false);
        h.submit(0, false);
        h.submit(0, true);
        h.executors.drain(0);

        assertThat(h.executors.call(0, () -> h.queue.poll(0))).isTrue();
        h.awaitFreed(3);

        assertThat(h.completion.ended()).extracting(Ended::status).containsExactly(Status.OK, Status.OK, Status.OK);
        assertThat(h.ops.events())
                .containsSubsequence(
                        "queueRq 0:2 isLast=true",
                        "poll 0",
                        "completion 0:0 OK",
                        "completion 0:1 OK",
                        "completion 0:2 OK");
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void poll_reapsWhileARequestWaitsInTheRequeue_theRetryDoesNotNestInsidePoll() throws Exception {
        h = Harness.pollingWithoutTimers();
        h.start(1, 4);
        RecordingOperations.Polling ops = (RecordingOperations.Polling) h.ops;
        // Room for one request in the device; poll reaps it.
        AtomicInteger inDevice = new AtomicInteger();
        h.ops.onQueueRq = (o, hw, rq, isLast) -> {
            if (inDevice.get() > 0) {
                return Status.BUSY;
            }
            inDevice.incrementAndGet();
            o.held.add(rq);
            return Status.OK;
        };
        h.ops.onComplete = rq -> inDevice.decrementAndGet();
        ops.onPoll = hw -> {
            Request<Pdu> rq = ops.held.poll();
            if (rq == null) {
                return false;
            }
            rq.end(Status.OK);
            ops.record("poll reaped");
            return true;
        };
        h.submit(0, true);
        h.submit(0, true);
        h.executors.drain(0);

        assertThat(h.executors.call(0, () -> h.queue.poll(0))).isTrue();
        h.executors.drain(0);
        assertThat(h.executors.call(0, () -> h.queue.poll(0))).isTrue();
        h.awaitFreed(2);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=true",
                        "queueRq 0:1 isLast=true",
                        "queueRq 0:1 returned BUSY",
                        "poll 0",
                        "complete 0:0 OK",
                        "completion 0:0 OK",
                        "poll reaped",
                        "queueRq 0:1 isLast=true",
                        "poll 0",
                        "complete 0:1 OK",
                        "completion 0:1 OK",
                        "poll reaped");
    }
}
