package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalStateException;

import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** A request that outlives the tag set's timeout is handed to {@link Operations#timeout}. The timer is the subject. */
@Timeout(20)
class TimeoutTest {
    private static final Duration TIMEOUT = Duration.ofMillis(50);

    private final Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    @Test
    void timeout_driverNeverEnds_timeoutRunsOnTheExecutor_andEndingWithTimeoutCompletesTheRequest() throws Exception {
        h.start(2, 2, TIMEOUT);
        List<String> threads = Collections.synchronizedList(new ArrayList<>());
        h.ops.onTimeout = rq -> {
            threads.add(Thread.currentThread().getName()
                    + (h.executors.get(rq.hwIndex()).inExecutor() ? " (in executor)" : ""));
            rq.end(Status.TIMEOUT);
            return TimeoutAction.DONE;
        };
        assertThat(h.tagSet.timeout()).isEqualTo(TIMEOUT);

        Request<Pdu> rq = h.allocate(1).attach("cookie");
        h.queue.submit(rq, true);
        Request<Pdu> held = h.ops.takeHeld();
        h.awaitFreed(1);

        assertThat(threads).containsExactly("hctx-1 (in executor)");
        assertThat(h.completion.ended()).singleElement().satisfies(e -> {
            assertThat(e.status()).isEqualTo(Status.TIMEOUT);
            assertThat(e.attachment()).isEqualTo("cookie");
        });
        assertThat(h.ops.events())
                .containsSubsequence(
                        "queueRq 1:0 isLast=true", "timeout 1:0", "complete 1:0 TIMEOUT", "completion 1:0 TIMEOUT");
        assertThat(h.ops.timeoutCalls).hasValue(1);
        assertThat(h.queue.inFlight()).isZero();
        // The driver's own late completion must not end it again.
        assertThatIllegalStateException().isThrownBy(() -> held.end(Status.OK));
    }

    @Test
    void timeout_resetTimer_calledAgainLater_untilTheDriverEndsIt() throws Exception {
        h.start(1, 1, TIMEOUT);
        CountDownLatch twice = new CountDownLatch(2);
        List<Long> calledAt = Collections.synchronizedList(new ArrayList<>());
        h.ops.onTimeout = rq -> {
            calledAt.add(System.nanoTime());
            twice.countDown();
            return TimeoutAction.RESET_TIMER;
        };
        long submittedAt = System.nanoTime();

        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        assertThat(twice.await(5, TimeUnit.SECONDS)).as("timeout called twice").isTrue();

        // Still in flight: RESET_TIMER gave it another period each time.
        assertThat(h.tagSet.tagToRq(0, 0)).isSameAs(rq);
        assertThat(calledAt.get(0) - submittedAt).isGreaterThanOrEqualTo(TIMEOUT.toNanos());
        // Without the reset the next scan (every timeout / 4) would call it again; with it, a period passes.
        assertThat(calledAt.get(1) - calledAt.get(0)).isGreaterThan(TIMEOUT.toNanos() / 2);
        rq.end(Status.OK);
        h.awaitFreed(1);
        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
        assertThat(h.ops.entries("timeout")).allMatch(e -> e.equals("timeout 0:0"));
    }

    @Test
    void timeout_onlyForRequestsInFlight_notForTheOnesEndedInTime() throws Exception {
        h.start(1, 2, TIMEOUT);
        CountDownLatch timedOut = new CountDownLatch(1);
        h.ops.onTimeout = rq -> {
            rq.end(Status.TIMEOUT);
            timedOut.countDown();
            return TimeoutAction.DONE;
        };

        h.submit(0, false);
        h.submit(0, true);
        Request<Pdu> quick = h.ops.takeHeld();
        Request<Pdu> slow = h.ops.takeHeld();
        quick.end(Status.OK);
        assertThat(timedOut.await(5, TimeUnit.SECONDS)).isTrue();
        h.awaitFreed(2);

        assertThat(h.ops.entries("timeout")).containsExactly("timeout 0:" + slow.tag());
        assertThat(h.completion.ended()).extracting(Ended::status).containsExactly(Status.OK, Status.TIMEOUT);
    }

    @Test
    void timeout_throws_treatedAsResetTimer() throws Exception {
        h.start(1, 1, TIMEOUT);
        CountDownLatch twice = new CountDownLatch(2);
        h.ops.onTimeout = rq -> {
            twice.countDown();
            throw new IllegalStateException("driver bug (expected by the test)");
        };

        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        assertThat(twice.await(5, TimeUnit.SECONDS)).isTrue();

        assertThat(h.tagSet.tagToRq(0, 0)).isSameAs(rq);
        rq.end(Status.OK);
        h.awaitFreed(1);
    }
}
