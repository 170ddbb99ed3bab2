package dev.mqnbd.mq;

import static dev.mqnbd.mq.RecordingOperations.hold;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.assertThatIllegalStateException;
import static org.assertj.core.groups.Tuple.tuple;

import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.nio.ByteBuffer;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@link Request#end} succeeds exactly once per dispatch; the request's own state checks. */
@Timeout(20)
class RequestEndTest {
    private final Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    @Test
    void end_twiceByTheDriverInline_secondThrows_completionRunsOnce() throws Exception {
        h.start(1, 2);
        AtomicReference<Throwable> second = new AtomicReference<>();
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            rq.end(Status.OK);
            try {
                rq.end(Status.OK);
            } catch (RuntimeException e) {
                second.set(e);
            }
            return Status.OK;
        };

        h.submit(0, true);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(second.get())
                .isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("request 0:0 ended twice or while not in flight");
        assertThat(h.completion.count()).isEqualTo(1);
        assertThat(h.ops.completeCalls).hasValue(1);
        assertThat(h.queue.hctx(0).completed()).isEqualTo(1);
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void end_twiceFromAForeignThread_secondThrows_completionRunsOnce() throws Exception {
        h.start(1, 2);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();

        rq.end(Status.OK);
        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(Status.IO_ERROR))
                .withMessageStartingWith("request 0:0 ended twice or while not in flight");
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
        assertThat(h.ops.entries("complete")).containsExactly("complete 0:0 OK");
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void end_racingFromTwoThreads_exactlyOneWins() throws Exception {
        h.start(1, 1);
        for (int round = 0; round < 200; round++) {
            h.submit(0, true);
            Request<Pdu> rq = h.ops.takeHeld();
            AtomicReference<Throwable> loserA = new AtomicReference<>();
            AtomicReference<Throwable> loserB = new AtomicReference<>();
            CyclicBarrier start = new CyclicBarrier(2);
            Thread a = Thread.ofPlatform().start(() -> endAfter(start, rq, loserA));
            Thread b = Thread.ofPlatform().start(() -> endAfter(start, rq, loserB));
            a.join();
            b.join();
            h.awaitFreed(1);

            assertThat(loserA.get() == null ^ loserB.get() == null)
                    .as("exactly one end() wins")
                    .isTrue();
            Throwable loser = loserA.get() != null ? loserA.get() : loserB.get();
            assertThat(loser).isInstanceOf(IllegalStateException.class);
        }
        h.executors.drain(0);
        assertThat(h.completion.count()).isEqualTo(200);
        assertThat(h.ops.completeCalls).hasValue(200);
    }

    private static void endAfter(CyclicBarrier start, Request<Pdu> rq, AtomicReference<Throwable> lost) {
        try {
            start.await();
            rq.end(Status.OK);
        } catch (IllegalStateException e) {
            lost.set(e);
        } catch (Exception e) {
            lost.set(new AssertionError("unexpected", e));
        }
    }

    @Test
    void end_busy_throwsIllegalArgument_andTheRequestStaysInFlight() throws Exception {
        h.start(1, 2);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();

        assertThatIllegalArgumentException()
                .isThrownBy(() -> rq.end(Status.BUSY))
                .withMessage("status: BUSY (expected: a final status; return BUSY from queueRq)");

        assertThat(h.tagSet.tagToRq(0, rq.tag())).isSameAs(rq);
        rq.end(Status.OK);
        h.awaitFreed(1);
        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
    }

    @Test
    void end_staleReferenceAfterTheTagWasReused_throws() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> stale = h.ops.takeHeld();
        int staleGeneration = stale.generation();
        stale.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);

        // The tag is reused: same request object, next generation, allocated to a new submitter.
        Request<Pdu> reused = h.allocate(0).attach("new owner");
        assertThat(reused).isSameAs(stale);
        assertThat(reused.generation()).isEqualTo(staleGeneration + 1);

        assertThatIllegalStateException()
                .isThrownBy(() -> stale.end(Status.IO_ERROR))
                .withMessage("request 0:0 ended twice or while not in flight (state: ALLOCATED)");

        // The new owner is unharmed: it submits and completes normally.
        h.queue.submit(reused, true);
        h.ops.takeHeld().end(Status.OK);
        h.awaitFreed(1);
        assertThat(h.completion.ended())
                .extracting(Ended::status, Ended::attachment, Ended::generation)
                .containsExactly(
                        tuple(Status.OK, null, staleGeneration), tuple(Status.OK, "new owner", staleGeneration + 1));
    }

    /* --------------- end(generation, status) --------------- */

    @Test
    void endWithGeneration_staleAfterTheTagWasReusedAndIsInFlight_throwsAndTheNewRequestStaysInFlight()
            throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> stale = h.ops.takeHeld();
        int staleGeneration = stale.generation();
        stale.end(staleGeneration, Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);

        // The tag is reused and its new request is in flight: what end(Status) cannot tell from a live one.
        h.queue.submit(h.allocate(0).attach("new owner"), true);
        Request<Pdu> reused = h.ops.takeHeld();
        assertThat(reused).isSameAs(stale);
        int generation = reused.generation();
        assertThat(generation).isEqualTo(staleGeneration + 1);

        assertThatIllegalStateException()
                .isThrownBy(() -> stale.end(staleGeneration, Status.IO_ERROR))
                .withMessage("end: request 0:0 generation " + staleGeneration + " is stale (current: generation "
                        + generation + ", IN_FLIGHT); nothing was ended");
        h.executors.drain(0);
        assertThat(h.tagSet.tagToRq(0, 0)).isSameAs(reused);
        assertThat(h.completion.count()).isEqualTo(1);
        assertThat(h.queue.inFlight()).isEqualTo(1);

        // The new owner ends its own request with its own generation.
        reused.end(generation, Status.OK);
        h.awaitFreed(1);
        assertThat(h.completion.ended())
                .extracting(Ended::status, Ended::attachment, Ended::generation)
                .containsExactly(tuple(Status.OK, null, staleGeneration), tuple(Status.OK, "new owner", generation));
    }

    @Test
    void endWithGeneration_staleWhileTheReusedTagIsAllocated_throws() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> stale = h.ops.takeHeld();
        int staleGeneration = stale.generation();
        stale.end(staleGeneration, Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);
        Request<Pdu> reused = h.allocate(0);

        assertThatIllegalStateException()
                .isThrownBy(() -> stale.end(staleGeneration, Status.OK))
                .withMessageEndingWith(
                        "is stale (current: generation " + (staleGeneration + 1) + ", ALLOCATED); nothing was ended");
        h.queue.abandon(reused);
        assertThat(h.completion.count()).isEqualTo(1);
    }

    @Test
    void endWithGeneration_twice_secondThrows_completionRunsOnce() throws Exception {
        h.start(1, 2);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        int generation = rq.generation();

        rq.end(generation, Status.OK);
        // Ended twice while the completion is pending; stale once it has run and the tag has moved on.
        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(generation, Status.OK))
                .withMessageMatching("request 0:0 ended twice or while not in flight .*"
                        + "|end: request 0:0 generation 0 is stale .*");
        h.awaitFreed(1);
        assertThat(h.completion.count()).isEqualTo(1);
    }

    @Test
    void endWithGeneration_aGenerationNeverReached_throwsStale() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();

        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(rq.generation() + 1, Status.OK))
                .withMessageContaining("is stale");
        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(-1, Status.OK))
                .withMessageContaining("is stale");
        assertThatIllegalArgumentException().isThrownBy(() -> rq.end(rq.generation(), Status.BUSY));

        rq.end(rq.generation(), Status.OK);
        h.awaitFreed(1);
        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.OK);
    }

    @Test
    void generation_movesOnWithEveryReuse_manyRounds() throws Exception {
        h.start(1, 1);
        for (int round = 0; round < 100; round++) {
            h.submit(0, true);
            Request<Pdu> rq = h.ops.takeHeld();
            assertThat(rq.generation()).isEqualTo(round);
            rq.end(round, Status.OK);
            h.awaitFreed(1);
        }
    }

    @Test
    void end_afterCompletionWithTheTagIdle_throws() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        rq.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(Status.OK))
                .withMessage("request 0:0 ended twice or while not in flight (state: IDLE)");
        assertThat(h.completion.count()).isEqualTo(1);
    }

    @Test
    void end_beforeSubmit_throws() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.allocate(0);

        assertThatIllegalStateException()
                .isThrownBy(() -> rq.end(Status.OK))
                .withMessageContaining("(state: ALLOCATED)");

        h.queue.abandon(rq);
    }

    @Test
    void end_whileRequeuedAfterBusy_throws() throws Exception {
        h.close();
        try (Harness noTimers = Harness.withoutTimers()) {
            noTimers.start(1, 2);
            noTimers.ops.onQueueRq = RecordingOperations.answer(Status.BUSY);
            Request<Pdu> rq = noTimers.submit(0, true);
            noTimers.executors.drain(0);

            assertThatIllegalStateException()
                    .isThrownBy(() -> rq.end(Status.OK))
                    .withMessageContaining("(state: ALLOCATED)");

            noTimers.ops.onQueueRq = hold();
            noTimers.queue.commit(0); // reruns the requeue
            noTimers.ops.takeHeld().end(Status.OK);
            noTimers.awaitFreed(1);
        }
    }

    /* --------------- prepare and attach --------------- */

    /** An extent sink that keeps nothing; only its identity matters here. */
    private static final class NoExtents implements Extents {
        @Override
        public boolean add(long length, int flags) {
            return true;
        }

        @Override
        public void clear() {}

        @Override
        public int count() {
            return 0;
        }

        @Override
        public long total() {
            return 0;
        }

        @Override
        public long runLength(int i) {
            throw new IndexOutOfBoundsException(i);
        }

        @Override
        public int runFlags(int i) {
            throw new IndexOutOfBoundsException(i);
        }
    }

    @Test
    void prepare_describesTheIo_seenByTheDriver() throws Exception {
        h.start(1, 1);
        ByteBuffer data = ByteBuffer.allocate(4096);
        Extents sink = new NoExtents();
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);

        rq.prepare(ReqOp.WRITE_ZEROES, ReqFlags.FUA | ReqFlags.NO_UNMAP, 8192, 4096, data)
                .attach("cookie")
                .extents(sink);
        h.queue.submit(rq, true);
        Request<Pdu> seen = h.ops.takeHeld();

        assertThat(seen.op()).isEqualTo(ReqOp.WRITE_ZEROES);
        assertThat(seen.flags()).isEqualTo(ReqFlags.FUA | ReqFlags.NO_UNMAP);
        assertThat(seen.hasFlag(ReqFlags.FUA)).isTrue();
        assertThat(seen.offset()).isEqualTo(8192);
        assertThat(seen.length()).isEqualTo(4096);
        assertThat(seen.data()).isSameAs(data);
        assertThat(seen.attachment()).isEqualTo("cookie");
        assertThat(seen.extents()).isSameAs(sink);
        seen.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);

        // Recycled: nothing of the old dispatch leaks into the next one.
        Request<Pdu> next = h.queue.tryAllocate(0, h.completion);
        assertThat(next).isSameAs(rq);
        assertThat(next.op()).isEqualTo(ReqOp.READ);
        assertThat(next.flags()).isZero();
        assertThat(next.data()).isNull();
        assertThat(next.attachment()).isNull();
        assertThat(next.extents()).isNull();
        assertThat(next.segmentCount()).isZero();
        assertThat(next.readSegments()).isNull();
        assertThat(next.status()).isEqualTo(Status.OK);
        h.queue.abandon(next);
    }

    @Test
    void segments_replaceTheDataBuffer_mustHoldTheLength_andAreClearedOnRecycle() throws Exception {
        h.start(1, 1);
        ByteBuffer[] parts = {ByteBuffer.allocate(100), ByteBuffer.allocate(28).position(8)};
        Segments sink = segment -> {};
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);

        assertThatIllegalArgumentException()
                .isThrownBy(() -> rq.prepare(ReqOp.WRITE, 0, 0, 121, null).segments(parts, 2))
                .withMessage("segments: 120 bytes in 2 segments (expected: the request's length 121)");
        rq.prepare(ReqOp.WRITE, 0, 0, 120, ByteBuffer.allocate(120)).segments(parts, 2);
        assertThat(rq.data()).isNull();
        assertThat(rq.segmentCount()).isEqualTo(2);
        assertThat(rq.segment(1)).isSameAs(parts[1]);
        rq.prepare(ReqOp.READ, 0, 0, 4096, null).readSegments(sink);
        assertThat(rq.segmentCount()).as("prepare starts over").isZero();
        assertThat(rq.readSegments()).isSameAs(sink);
        h.queue.abandon(rq);

        Request<Pdu> next = h.queue.tryAllocate(0, h.completion);
        next.prepare(ReqOp.READ, 0, 0, 10, ByteBuffer.allocate(10));
        assertThat(next.segmentCount()).isEqualTo(1);
        assertThat(next.segment(0)).isSameAs(next.data());
        assertThat(next.readSegments()).isNull();
        h.queue.abandon(next);
    }

    @Test
    void prepare_unknownFlag_throws() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);

        assertThatIllegalArgumentException()
                .isThrownBy(() -> rq.prepare(ReqOp.WRITE, 1 << 7, 0, 512, null))
                .withMessage("flags: 0x80 (expected: ReqFlags bits)");

        h.queue.abandon(rq);
    }

    @Test
    void prepare_everyKnownFlag_accepted() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);

        rq.prepare(ReqOp.WRITE_ZEROES, ReqFlags.ALL, 0, 512, null);

        assertThat(rq.hasFlag(ReqFlags.FAST_ZERO)).isTrue();
        h.queue.abandon(rq);
    }

    @Test
    void prepare_afterSubmit_throws() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.submit(0, true);
        h.ops.takeHeld();

        assertThatIllegalStateException()
                .isThrownBy(() -> rq.prepare(ReqOp.READ, 0, 0, 512, null))
                .withMessage("prepare: request 0:0 is IN_FLIGHT (expected: ALLOCATED)");
        assertThatIllegalStateException()
                .isThrownBy(() -> rq.attach("late"))
                .withMessage("attach: request 0:0 is IN_FLIGHT (expected: ALLOCATED)");
        assertThatIllegalStateException()
                .isThrownBy(() -> rq.extents(new NoExtents()))
                .withMessage("extents: request 0:0 is IN_FLIGHT (expected: ALLOCATED)");

        rq.end(Status.OK);
        h.awaitFreed(1);
    }
}
