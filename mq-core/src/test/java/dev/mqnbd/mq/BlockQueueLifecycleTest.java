package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.assertThatIllegalStateException;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Set-up and tear-down: initHctx / exitHctx pairing and order, close, abandon. */
@Timeout(20)
class BlockQueueLifecycleTest {
    private final Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    private static List<String> repeat(String entry, int times) {
        return Collections.nCopies(times, entry);
    }

    /* --------------- build --------------- */

    @Test
    void build_initsEveryContextInIndexOrder_beforeTheFirstQueueRq() throws Exception {
        h.start(4, 2);
        for (int hw = 0; hw < 4; hw++) {
            h.submit(hw, true);
        }
        List<Request<Pdu>> held = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            held.add(h.ops.takeHeld());
        }
        held.forEach(rq -> rq.end(Status.OK));
        h.awaitFreed(4);

        List<String> log = h.ops.events();
        assertThat(log.subList(0, 4)).containsExactly("initHctx 0", "initHctx 1", "initHctx 2", "initHctx 3");
        assertThat(log.subList(4, 8))
                .containsExactlyInAnyOrder(
                        "queueRq 0:0 isLast=true",
                        "queueRq 1:0 isLast=true",
                        "queueRq 2:0 isLast=true",
                        "queueRq 3:0 isLast=true");
        assertThat(h.queue.hwQueues()).isEqualTo(4);
        for (int hw = 0; hw < 4; hw++) {
            assertThat(h.queue.hctx(hw).index()).isEqualTo(hw);
            assertThat(h.queue.hctx(hw).hwData().index).isEqualTo(hw);
            assertThat(h.queue.hctx(hw).hwData().tagSetData).isEqualTo("tag-set-data");
            assertThat(h.queue.hctx(hw).executor()).isSameAs(h.executors.get(hw));
        }
    }

    @Test
    void build_initHctxFailsOnTheThirdContext_exitsTheFirstTwoInReverse_nothingElse() {
        h.ops.failInitAt = 2;
        h.buildTagSet(4, 2, Duration.ZERO);

        assertThatThrownBy(h::buildQueue)
                .isInstanceOf(MqException.class)
                .hasMessage("queue test: initHctx failed for hardware context 2")
                .hasCause(h.ops.initFailure);

        List<String> expected = new ArrayList<>(repeat("newRequestData", 8));
        expected.addAll(List.of("initHctx 0", "initHctx 1", "initHctx 2", "exitHctx 1", "exitHctx 0"));
        assertThat(h.ops.log()).containsExactlyElementsOf(expected);
    }

    @Test
    void build_initHctxFailsOnTheFirstContext_noExitHctx() {
        h.ops.failInitAt = 0;
        h.buildTagSet(3, 1, Duration.ZERO);

        assertThatThrownBy(h::buildQueue).isInstanceOf(MqException.class).hasCause(h.ops.initFailure);

        assertThat(h.ops.events()).containsExactly("initHctx 0");
    }

    @Test
    void build_initHctxFailsAndAnExitHctxFailsToo_exitFailureSuppressed_othersStillExit() {
        h.ops.failInitAt = 2;
        h.ops.failExitAt.add(1);
        h.buildTagSet(3, 1, Duration.ZERO);

        assertThatThrownBy(h::buildQueue)
                .isInstanceOf(MqException.class)
                .hasCause(h.ops.initFailure)
                .satisfies(e -> assertThat(e.getCause().getSuppressed()).containsExactly(h.ops.exitFailures.get(1)));

        assertThat(h.ops.events())
                .containsExactly("initHctx 0", "initHctx 1", "initHctx 2", "exitHctx 1", "exitHctx 0");
    }

    @Test
    void build_withoutLimits_throws() {
        h.buildTagSet(1, 1, Duration.ZERO);

        assertThatIllegalStateException()
                .isThrownBy(() ->
                        BlockQueue.builder(h.tagSet).executors(h.executors).build())
                .withMessage("limits and executors are required");
        assertThat(h.ops.events()).isEmpty();
    }

    @Test
    void build_withoutExecutors_throws() {
        h.buildTagSet(1, 1, Duration.ZERO);

        assertThatIllegalStateException()
                .isThrownBy(() ->
                        BlockQueue.builder(h.tagSet).limits(Harness.LIMITS).build())
                .withMessage("limits and executors are required");
    }

    @Test
    void name_empty_throws() {
        h.buildTagSet(1, 1, Duration.ZERO);

        assertThatIllegalArgumentException()
                .isThrownBy(() -> BlockQueue.builder(h.tagSet).name(""))
                .withMessage("name: \"\" (expected: non-empty)");
    }

    @Test
    void hctxIndexFor_mapsSubmittersOntoContextsModuloTheirCount() throws Exception {
        h.start(3, 1);

        assertThat(List.of(0, 1, 2, 3, 4, -1).stream().map(h.queue::hctxIndexFor))
                .containsExactly(0, 1, 2, 0, 1, 2);
    }

    /* --------------- close --------------- */

    @Test
    void close_exitsEveryContextInReverse_afterTheLastRequestEnded_thenClosesQueueData() throws Exception {
        h.start(3, 2);
        for (int hw = 0; hw < 3; hw++) {
            h.submit(hw, true);
        }
        for (int i = 0; i < 3; i++) {
            h.ops.takeHeld().end(Status.OK);
        }
        h.awaitFreed(3);

        h.queue.close();

        List<String> log = h.ops.events();
        assertThat(log.subList(0, 3)).containsExactly("initHctx 0", "initHctx 1", "initHctx 2");
        assertThat(log.subList(log.size() - 4, log.size()))
                .containsExactly("exitHctx 2", "exitHctx 1", "exitHctx 0", "close queueData");
        assertThat(log.indexOf("exitHctx 2")).isGreaterThan(lastIndexStartingWith(log, "completion"));
        assertThat(h.ops.entries("exitHctx")).hasSize(3);
        assertThat(h.queue.isClosed()).isTrue();
    }

    @Test
    void close_waitsForARequestEndedLaterOnAnotherThread_beforeExitHctx() throws Exception {
        h.start(2, 2);
        h.submit(1, true);
        Request<Pdu> rq = h.ops.takeHeld();
        Thread ender = Thread.ofPlatform().name("late-ender").start(() -> {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            h.ops.record("ending late");
            rq.end(Status.OK);
        });

        h.queue.close();
        ender.join();

        assertThat(h.ops.events())
                .containsSubsequence(
                        "queueRq 1:0 isLast=true",
                        "ending late",
                        "complete 1:0 OK",
                        "completion 1:0 OK",
                        "exitHctx 1",
                        "exitHctx 0",
                        "close queueData");
        assertThat(h.queue.inFlight()).isZero();
        assertThat(h.completion.count()).isEqualTo(1);
    }

    @Test
    void close_waitsForAnAllocatedRequestThatIsAbandonedLater() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.allocate(0);
        CountDownLatch closing = new CountDownLatch(1);
        Thread closer = Thread.ofPlatform().name("closer").start(() -> {
            closing.countDown();
            try {
                h.queue.close();
            } catch (MqException e) {
                h.ops.record("close failed: " + e);
            }
        });
        closing.await();
        assertThat(closer.join(Duration.ofMillis(50)))
                .as("close returned while a request was allocated")
                .isFalse();

        h.queue.abandon(rq);
        closer.join();

        assertThat(h.ops.events()).containsExactly("initHctx 0", "exitHctx 0", "close queueData");
    }

    @Test
    void close_twice_secondIsANoOp() throws Exception {
        h.start(2, 1);
        h.queue.close();
        List<String> afterFirst = h.ops.log();

        h.queue.close();

        assertThat(h.ops.log()).isEqualTo(afterFirst);
        assertThat(h.ops.entries("exitHctx")).containsExactly("exitHctx 1", "exitHctx 0");
        assertThat(h.ops.entries("close queueData")).hasSize(1);
    }

    @Test
    void close_exitHctxThrows_theOthersStillRun_failuresSuppressed_queueDataClosedLast() throws Exception {
        h.start(4, 1);
        h.ops.failExitAt.addAll(List.of(2, 0));

        assertThatThrownBy(h.queue::close)
                .isInstanceOf(MqException.class)
                .hasMessage("exitHctx failed for hardware context 2")
                .hasCause(h.ops.exitFailures.get(2))
                .satisfies(e -> assertThat(e.getSuppressed()).containsExactly(h.ops.exitFailures.get(0)));

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "initHctx 1",
                        "initHctx 2",
                        "initHctx 3",
                        "exitHctx 3",
                        "exitHctx 2",
                        "exitHctx 1",
                        "exitHctx 0",
                        "close queueData");
        assertThat(h.queue.isClosed()).isTrue();
    }

    @Test
    void close_queueDataCloseThrows_reportedAfterTheExitFailures() throws Exception {
        h.start(2, 1);
        h.ops.failExitAt.add(1);
        h.ops.queueData.failClose = true;

        assertThatThrownBy(h.queue::close)
                .isInstanceOf(MqException.class)
                .hasCause(h.ops.exitFailures.get(1))
                .satisfies(e -> assertThat(e.getSuppressed())
                        .singleElement()
                        .satisfies(s -> assertThat(s).hasMessage("close queueData failed")));

        assertThat(h.ops.events()).endsWith("exitHctx 1", "exitHctx 0", "close queueData");
    }

    @Test
    void close_onlyQueueDataCloseThrows_isTheCause() throws Exception {
        h.start(1, 1);
        h.ops.queueData.failClose = true;

        assertThatThrownBy(h.queue::close)
                .isInstanceOf(MqException.class)
                .hasMessage("closing the queue data failed")
                .cause()
                .hasMessage("close queueData failed");
    }

    @Test
    void close_onTheExecutorWithARequestInFlight_throws() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();

        assertThatIllegalStateException()
                .isThrownBy(() -> h.executors.run(0, h.queue::close))
                .withMessageStartingWith("close: called on the executor of hardware context 0");

        rq.end(Status.OK);
        h.awaitFreed(1);
    }

    @Test
    void tryAllocate_afterClose_throws() throws Exception {
        h.start(1, 2);
        h.queue.close();

        assertThatIllegalStateException()
                .isThrownBy(() -> h.queue.tryAllocate(0, h.completion))
                .withMessage("queue test is closed");
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void tryAllocate_whileCloseDrains_throws_andTheInFlightRequestStillCompletes() throws Exception {
        h.start(1, 2);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        Thread closer = Thread.ofPlatform().name("closer").start(() -> {
            try {
                h.queue.close();
            } catch (MqException e) {
                h.ops.record("close failed: " + e);
            }
        });
        while (!h.queue.isClosed()) {
            Thread.onSpinWait();
        }

        assertThatIllegalStateException().isThrownBy(() -> h.queue.tryAllocate(0, h.completion));

        rq.end(Status.OK);
        closer.join();
        assertThat(h.ops.events()).endsWith("completion 0:0 OK", "exitHctx 0", "close queueData");
    }

    /* --------------- abandon --------------- */

    @Test
    void abandon_freesTheTagWithoutRunningTheCompletion() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.allocate(0).attach("cookie");
        int generation = rq.generation();
        assertThat(h.queue.inFlight()).isEqualTo(1);
        assertThat(h.queue.tryAllocate(0, h.completion)).isNull();

        h.queue.abandon(rq);

        assertThat(h.queue.inFlight()).isZero();
        assertThat(rq.generation()).isEqualTo(generation + 1);
        assertThat(rq.attachment()).isNull();
        Request<Pdu> again = h.queue.tryAllocate(0, h.completion);
        assertThat(again).isSameAs(rq);
        h.queue.abandon(again);
        h.executors.drain(0);
        assertThat(h.completion.count()).isZero();
        assertThat(h.ops.events()).containsExactly("initHctx 0");
    }

    @Test
    void abandon_submittedRequest_throws() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.submit(0, true);
        assertThat(h.ops.takeHeld()).isSameAs(rq);

        assertThatIllegalStateException()
                .isThrownBy(() -> h.queue.abandon(rq))
                .withMessageContaining("expected: ALLOCATED");

        rq.end(Status.OK);
        h.awaitFreed(1);
    }

    /* --------------- default exitHctx --------------- */

    @Test
    void exitHctx_default_closesAutoCloseableHwData() throws Exception {
        List<String> closed = Collections.synchronizedList(new ArrayList<>());
        Operations<AutoCloseable, Object, Void, Object> ops = new Operations<>() {
            @Override
            public AutoCloseable initHctx(Void tagSetData, int hctxIndex) {
                return () -> closed.add("hw " + hctxIndex);
            }

            @Override
            public Object newRequestData() {
                return new Object();
            }

            @Override
            public Status queueRq(AutoCloseable hw, Object queue, Request<Object> rq, boolean isLast) {
                return Status.NOT_SUPPORTED;
            }
        };
        TagSet<AutoCloseable, Object, Void, Object> set =
                TagSet.builder(ops).hwQueues(3).queueDepth(1).build();
        BlockQueue<AutoCloseable, Object, Void, Object> queue = BlockQueue.builder(set)
                .queueData(new Object())
                .limits(Harness.LIMITS)
                .executors(h.executors)
                .build();

        queue.close();

        assertThat(closed).containsExactly("hw 2", "hw 1", "hw 0");
    }

    private static int lastIndexStartingWith(List<String> log, String prefix) {
        for (int i = log.size() - 1; i >= 0; i--) {
            if (log.get(i).startsWith(prefix)) {
                return i;
            }
        }
        return -1;
    }
}
