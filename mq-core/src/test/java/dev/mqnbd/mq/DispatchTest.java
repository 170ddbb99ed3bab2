package dev.mqnbd.mq;

import static dev.mqnbd.mq.RecordingOperations.answer;
import static dev.mqnbd.mq.RecordingOperations.busyTimes;
import static dev.mqnbd.mq.RecordingOperations.endInline;
import static dev.mqnbd.mq.RecordingOperations.hold;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.assertThatIllegalStateException;

import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The dispatch path: the isLast / commitRqs contract, BUSY requeues, error statuses, which thread runs what. */
@Timeout(20)
class DispatchTest {
    private Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    private void endAllHeld(int count) throws Exception {
        for (int i = 0; i < count; i++) {
            h.ops.takeHeld().end(Status.OK);
        }
        h.awaitFreed(count);
    }

    /* --------------- isLast and commitRqs --------------- */

    @Test
    void commit_afterThreeDeferred_callsCommitRqsOnce() throws Exception {
        h.start(1, 4);
        h.submit(0, false);
        h.submit(0, false);
        h.submit(0, false);
        h.queue.commit(0);
        h.executors.drain(0);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=false",
                        "queueRq 0:2 isLast=false",
                        "commitRqs 0");
        assertThat(h.ops.commitRqsCalls).hasValue(1);
        endAllHeld(3);
    }

    @Test
    void commit_onTheExecutor_runsInline() throws Exception {
        h.start(1, 4);

        h.executors.run(0, () -> {
            h.submit(0, false);
            h.submit(0, false);
            h.queue.commit(0);
            h.ops.record("commit returned");
        });

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=false",
                        "commitRqs 0",
                        "commit returned");
        endAllHeld(2);
    }

    @Test
    void submit_runClosedByIsLast_noCommitRqs() throws Exception {
        h.start(1, 4);
        h.submit(0, false);
        h.submit(0, false);
        h.submit(0, true);
        h.executors.drain(0);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=false",
                        "queueRq 0:2 isLast=true");
        assertThat(h.ops.commitRqsCalls).hasValue(0);

        // The run is closed: a commit now finds nothing to commit.
        h.queue.commit(0);
        h.executors.drain(0);
        assertThat(h.ops.commitRqsCalls).hasValue(0);
        endAllHeld(3);
    }

    @Test
    void commit_nothingOpen_noCommitRqs() throws Exception {
        h.start(2, 4);

        h.queue.commit(0);
        h.queue.commit(1);
        h.executors.drain(0);
        h.executors.drain(1);

        assertThat(h.ops.events()).containsExactly("initHctx 0", "initHctx 1");
    }

    @Test
    void commit_twice_secondFindsNothingOpen() throws Exception {
        h.start(1, 4);
        h.submit(0, false);
        h.queue.commit(0);
        h.queue.commit(0);
        h.executors.drain(0);

        assertThat(h.ops.commitRqsCalls).hasValue(1);
        endAllHeld(1);
    }

    @Test
    void commit_onlyClosesTheRunOfItsOwnContext() throws Exception {
        h.start(2, 4);
        h.submit(0, false);
        h.submit(1, false);
        h.queue.commit(1);
        h.executors.drain(0);
        h.executors.drain(1);

        assertThat(h.ops.entries("commitRqs")).containsExactly("commitRqs 1");

        h.queue.commit(0);
        h.executors.drain(0);
        assertThat(h.ops.entries("commitRqs")).containsExactly("commitRqs 1", "commitRqs 0");
        endAllHeld(2);
    }

    @Test
    void commit_afterAnErrorStatusInTheRun_stillCallsCommitRqs() throws Exception {
        h.start(1, 4);
        AtomicInteger calls = new AtomicInteger();
        h.ops.onQueueRq = (ops, hw, rq, isLast) ->
                calls.getAndIncrement() == 1 ? Status.INVALID : hold().apply(ops, hw, rq, isLast);
        h.submit(0, false);
        h.submit(0, false);
        h.queue.commit(0);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(h.ops.events())
                .containsSubsequence(
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=false",
                        "queueRq 0:1 returned INVALID",
                        "complete 0:1 INVALID",
                        "completion 0:1 INVALID",
                        "commitRqs 0");
        endAllHeld(1);
    }

    /* --------------- BUSY --------------- */

    @Test
    void queueRq_busyOnce_requeuesAndRetries() throws Exception {
        h.start(1, 2);
        h.ops.onQueueRq = busyTimes(1, endInline(Status.OK));

        h.submit(0, true);
        h.awaitFreed(1);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=true",
                        "queueRq 0:0 returned BUSY",
                        "queueRq 0:0 isLast=true",
                        "complete 0:0 OK",
                        "completion 0:0 OK");
        HwContext<?> hctx = h.queue.hctx(0);
        assertThat(hctx.busy()).isEqualTo(1);
        assertThat(hctx.dispatched()).isEqualTo(2);
        assertThat(hctx.completed()).isEqualTo(1);
        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
    }

    @Test
    void queueRq_busyInTheMiddleOfARun_commitRqsClosesTheOpenRun() throws Exception {
        h.start(1, 4);
        AtomicInteger calls = new AtomicInteger();
        h.ops.onQueueRq =
                (ops, hw, rq, isLast) -> calls.getAndIncrement() == 1 ? Status.BUSY : hold().apply(ops, hw, rq, isLast);

        // On the executor, so the retry timer cannot run between the three submissions.
        h.executors.run(0, () -> {
            h.submit(0, false);
            h.submit(0, false);
            h.submit(0, true);
        });

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=false",
                        "queueRq 0:1 returned BUSY",
                        "commitRqs 0",
                        "queueRq 0:1 isLast=false",
                        "queueRq 0:2 isLast=true");
        assertThat(h.queue.hctx(0).busy()).isEqualTo(1);
        endAllHeld(3);
    }

    @Test
    void queueRq_busyOnTheLastOfARun_commitRqsClosesTheOpenRun() throws Exception {
        h.start(1, 4);
        AtomicInteger calls = new AtomicInteger();
        h.ops.onQueueRq =
                (ops, hw, rq, isLast) -> calls.getAndIncrement() == 1 ? Status.BUSY : hold().apply(ops, hw, rq, isLast);

        h.executors.run(0, () -> {
            h.submit(0, false);
            h.submit(0, true);
            h.ops.record("submitted");
        });

        assertThat(h.ops.events())
                .startsWith(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:1 isLast=true",
                        "queueRq 0:1 returned BUSY",
                        "commitRqs 0",
                        "submitted");
        // The timer retries the requeued request alone, so it is the last of its run.
        Request<Pdu> first = h.ops.takeHeld();
        Request<Pdu> retried = h.ops.takeHeld();
        assertThat(h.ops.events()).endsWith("queueRq 0:1 isLast=true");
        first.end(Status.OK);
        retried.end(Status.OK);
        h.awaitFreed(2);
    }

    @Test
    void queueRq_busyOnTheFirstOfARun_noCommitRqsForAnEmptyRun() throws Exception {
        h.start(1, 4);
        h.ops.onQueueRq = busyTimes(1, endInline(Status.OK));

        h.executors.run(0, () -> h.submit(0, false));
        h.executors.run(0, () -> h.submit(0, true));
        h.awaitFreed(2);

        assertThat(h.ops.entries("commitRqs")).isEmpty();
        assertThat(h.ops.entries("queueRq")).startsWith("queueRq 0:0 isLast=false", "queueRq 0:0 returned BUSY");
    }

    @Test
    void queueRq_busy_requestsSubmittedMeanwhileAreNotLost_andKeepTheirOrder() throws Exception {
        h.start(1, 8);
        h.ops.onQueueRq = busyTimes(3, endInline(Status.OK));

        for (int i = 0; i < 5; i++) {
            h.queue.submit(h.allocate(0).attach(i), true);
        }
        h.awaitFreed(5);
        h.executors.drain(0);

        assertThat(h.completion.ended()).extracting(Ended::attachment).containsExactly(0, 1, 2, 3, 4);
        assertThat(h.completion.ended()).extracting(Ended::status).containsOnly(Status.OK);
        assertThat(h.queue.hctx(0).busy()).isEqualTo(3);
        assertThat(h.queue.hctx(0).dispatched()).isEqualTo(8);
        assertThat(h.ops.entries("complete")).hasSize(5);
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void queueRq_busyWithOpenBatchesFromAnotherThread_allComplete() throws Exception {
        h.start(1, 8);
        h.ops.onQueueRq = busyTimes(4, endInline(Status.OK));

        for (int batch = 0; batch < 4; batch++) {
            h.submit(0, false);
            h.submit(0, false);
            h.queue.commit(0);
        }
        h.awaitFreed(8);

        assertThat(h.queue.hctx(0).busy()).isEqualTo(4);
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void queueRq_busyFor20Ms_retriedByTheTimerWithoutAnyNewSubmission() throws Exception {
        h.start(1, 2);
        AtomicLong firstCall = new AtomicLong();
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            long now = System.nanoTime();
            firstCall.compareAndSet(0, now);
            if (now - firstCall.get() < 20_000_000L) {
                return Status.BUSY;
            }
            rq.end(Status.OK);
            return Status.OK;
        };

        h.submit(0, true);
        h.awaitFreed(1);

        long busy = h.queue.hctx(0).busy();
        assertThat(busy).isPositive();
        assertThat(h.ops.queueRqCalls).hasValue((int) busy + 1);
        assertThat(h.ops.entries("queueRq 0:0 isLast=true")).hasSize((int) busy + 1);
        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
    }

    @Test
    void queueRq_busy_retriedWhenAnotherRequestOfTheContextCompletes() throws Exception {
        h.close();
        h = Harness.withoutTimers();
        h.start(1, 4);
        // A device with room for one request at a time.
        AtomicInteger inDevice = new AtomicInteger();
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            if (inDevice.get() > 0) {
                return Status.BUSY;
            }
            inDevice.incrementAndGet();
            return hold().apply(ops, hw, rq, isLast);
        };
        h.ops.onComplete = rq -> inDevice.decrementAndGet();

        h.submit(0, true);
        h.submit(0, true);
        Request<Pdu> first = h.ops.takeHeld();
        h.executors.drain(0);
        assertThat(h.ops.events()).endsWith("queueRq 0:1 isLast=true", "queueRq 0:1 returned BUSY");
        assertThat(h.executors.droppedTimers).as("retry timers (never run)").hasPositiveValue();

        first.end(Status.OK);
        Request<Pdu> second = h.ops.takeHeld();
        second.end(Status.OK);
        h.awaitFreed(2);

        assertThat(h.ops.events())
                .containsSubsequence(
                        "queueRq 0:0 isLast=true",
                        "queueRq 0:1 isLast=true",
                        "queueRq 0:1 returned BUSY",
                        "complete 0:0 OK",
                        "completion 0:0 OK",
                        "queueRq 0:1 isLast=true",
                        "complete 0:1 OK",
                        "completion 0:1 OK");
        assertThat(h.queue.hctx(0).busy()).isEqualTo(1);
    }

    @Test
    void queueRq_endsInlineWhileOthersWaitInTheRequeue_driverCallbacksNeverNest() throws Exception {
        h.start(1, 4);
        h.ops.onQueueRq = busyTimes(1, endInline(Status.OK));

        // On the executor, so both requests meet in the requeue before the retry timer can run.
        h.executors.run(0, () -> {
            h.submit(0, false);
            h.submit(0, true);
        });
        h.awaitFreed(2);
        h.executors.drain(0);

        assertThat(h.ops.violations()).isEmpty();
        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=false",
                        "queueRq 0:0 returned BUSY",
                        "queueRq 0:0 isLast=false",
                        "complete 0:0 OK",
                        "completion 0:0 OK",
                        "queueRq 0:1 isLast=true",
                        "complete 0:1 OK",
                        "completion 0:1 OK");
    }

    @Test
    void queueRq_busyForARequestItEnded_isReported() throws Exception {
        h.start(1, 2);
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            try {
                rq.end(Status.BUSY);
            } catch (IllegalArgumentException e) {
                thrown.set(e);
            }
            rq.end(Status.OK);
            return Status.OK;
        };

        h.submit(0, true);
        h.awaitFreed(1);

        assertThat(thrown.get())
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("status: BUSY (expected: a final status; return BUSY from queueRq)");
    }

    /* --------------- error statuses --------------- */

    @ParameterizedTest
    @EnumSource(
            value = Status.class,
            names = {"OK", "BUSY"},
            mode = EnumSource.Mode.EXCLUDE)
    void queueRq_errorStatus_endsTheRequestWithThatStatus_completionRunsOnce(Status error) throws Exception {
        h.start(1, 2);
        h.ops.onQueueRq = answer(error);

        h.queue.submit(h.allocate(0).attach("cookie"), true);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=true",
                        "queueRq 0:0 returned " + error,
                        "complete 0:0 " + error,
                        "completion 0:0 " + error);
        assertThat(h.completion.ended()).singleElement().satisfies(e -> {
            assertThat(e.status()).isEqualTo(error);
            assertThat(e.attachment()).isEqualTo("cookie");
        });
        assertThat(h.queue.inFlight()).isZero();
        assertThat(h.queue.hctx(0).completed()).isEqualTo(1);
        assertThat(h.queue.hctx(0).busy()).isZero();
    }

    @Test
    void queueRq_throws_endsTheRequestWithIoError() throws Exception {
        h.start(1, 2);
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            throw new IllegalStateException("driver bug (expected by the test)");
        };

        h.submit(0, true);
        h.awaitFreed(1);

        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.IO_ERROR);
        assertThat(h.ops.events()).endsWith("complete 0:0 IO_ERROR", "completion 0:0 IO_ERROR");
    }

    @Test
    void queueRq_throwsAfterEndingTheRequest_completionRunsOnce() throws Exception {
        h.start(1, 2);
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            rq.end(Status.NO_SPACE);
            throw new IllegalStateException("driver bug (expected by the test)");
        };

        h.submit(0, true);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.NO_SPACE);
    }

    /* --------------- threads --------------- */

    @Test
    void submit_fromAForeignThread_dispatchesOnTheContextsExecutor() throws Exception {
        h.start(2, 2);
        List<String> threads = new ArrayList<>();
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            synchronized (threads) {
                threads.add(Thread.currentThread().getName()
                        + (ops == h.ops && h.executors.get(hw.index).inExecutor() ? " in executor" : ""));
            }
            return hold().apply(ops, hw, rq, isLast);
        };

        h.submit(1, true);
        h.submit(0, true);
        endAllHeld(2);

        synchronized (threads) {
            assertThat(threads).containsExactlyInAnyOrder("hctx-1 in executor", "hctx-0 in executor");
        }
    }

    @Test
    void submit_onTheExecutor_dispatchesInline() throws Exception {
        h.start(1, 2);

        h.executors.run(0, () -> {
            h.submit(0, true);
            h.ops.record("submit returned");
        });

        assertThat(h.ops.events()).containsExactly("initHctx 0", "queueRq 0:0 isLast=true", "submit returned");
        endAllHeld(1);
    }

    @Test
    void submit_twice_throws() throws Exception {
        h.start(1, 2);
        Request<Pdu> rq = h.submit(0, true);
        assertThat(h.ops.takeHeld()).isSameAs(rq);

        assertThatIllegalStateException()
                .isThrownBy(() -> h.queue.submit(rq, true))
                .withMessageContaining("expected: ALLOCATED");

        rq.end(Status.OK);
        h.awaitFreed(1);
    }

    @Test
    void submit_requestOfAnotherQueue_throws() throws Exception {
        h.start(1, 2);
        try (Harness other = new Harness()) {
            other.start(1, 2);
            Request<Pdu> foreign = other.allocate(0);

            assertThatIllegalArgumentException()
                    .isThrownBy(() -> h.queue.submit(foreign, true))
                    .withMessageContaining("was not allocated from queue test");

            other.queue.abandon(foreign);
        }
    }
}
