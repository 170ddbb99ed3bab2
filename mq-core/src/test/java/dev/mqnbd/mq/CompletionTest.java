package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Where and in which order a request's completion runs, and what it may still see. */
@Timeout(20)
class CompletionTest {
    private final Harness h = new Harness();
    private final ExecutorService driverThreads = Executors.newFixedThreadPool(2, r -> {
        Thread t = new Thread(r, "driver-io");
        t.setDaemon(true);
        return t;
    });

    @AfterEach
    void tearDown() throws Exception {
        driverThreads.shutdownNow();
        h.close();
    }

    @Test
    void end_fromAForeignThread_completeAndCompletionRunOnTheContextsExecutor() throws Exception {
        h.start(2, 2);
        h.ops.onQueueRq = RecordingOperations.endOn(driverThreads, Status.OK);
        List<String> threads = Collections.synchronizedList(new ArrayList<>());
        h.ops.onComplete =
                rq -> threads.add("complete on " + Thread.currentThread().getName()
                        + (h.executors.get(rq.hwIndex()).inExecutor() ? " (in executor)" : ""));

        h.submit(1, true);
        h.awaitFreed(1);

        assertThat(threads).containsExactly("complete on hctx-1 (in executor)");
        assertThat(h.completion.ended()).singleElement().satisfies(e -> {
            assertThat(e.onExecutor()).isTrue();
            assertThat(e.hwIndex()).isEqualTo(1);
        });
        assertThat(h.ops.events()).endsWith("queueRq 1:0 isLast=true", "complete 1:0 OK", "completion 1:0 OK");
    }

    @Test
    void end_inlineOnTheExecutor_completesBeforeQueueRqReturns() throws Exception {
        h.start(1, 2);
        h.ops.onQueueRq = (ops, hw, rq, isLast) -> {
            rq.end(Status.OK);
            ops.record("queueRq returns");
            return Status.OK;
        };

        h.submit(0, true);
        h.awaitFreed(1);

        assertThat(h.ops.events())
                .containsExactly(
                        "initHctx 0",
                        "queueRq 0:0 isLast=true",
                        "complete 0:0 OK",
                        "completion 0:0 OK",
                        "queueRq returns");
    }

    @Test
    void completion_seesStatusAndAttachment_thenTheTagIsFree() throws Exception {
        h.start(1, 1);
        CompletableFuture<String> afterCompletion = new CompletableFuture<>();
        Object cookie = new Object();
        List<String> seen = Collections.synchronizedList(new ArrayList<>());
        RequestCompletion completion = rq -> {
            seen.add(rq.status() + " " + (rq.attachment() == cookie) + " inFlight=" + h.queue.inFlight() + " tagToRq="
                    + (h.tagSet.tagToRq(0, rq.tag()) != null));
            // Runs after this completion has returned: the executor runs one task at a time.
            h.executors
                    .get(0)
                    .execute(() -> afterCompletion.complete("inFlight=" + h.queue.inFlight() + " attachment="
                            + rq.attachment() + " tagToRq=" + h.tagSet.tagToRq(0, 0)));
        };
        Request<Pdu> rq = h.queue.tryAllocate(0, completion);
        rq.prepare(ReqOp.READ, 0, 0, 512, null).attach(cookie);
        h.queue.submit(rq, true);

        h.ops.takeHeld().end(Status.NO_SPACE);

        assertThat(afterCompletion.get(5, TimeUnit.SECONDS)).isEqualTo("inFlight=0 attachment=null tagToRq=null");
        assertThat(seen).containsExactly("NO_SPACE true inFlight=1 tagToRq=false");
        Request<Pdu> again = h.queue.tryAllocate(0, h.completion);
        assertThat(again).isSameAs(rq);
        h.queue.abandon(again);
    }

    @Test
    void complete_runsBeforeTheSubmittersCompletion_andSeesTheSameRequest() throws Exception {
        h.start(1, 2);
        List<Object> order = Collections.synchronizedList(new ArrayList<>());
        h.ops.onComplete = rq -> order.add(rq);
        Request<Pdu> rq = h.queue.tryAllocate(0, r -> order.add("completion of " + (r == order.get(0))));
        rq.prepare(ReqOp.FLUSH, 0, 0, 0, null);
        h.queue.submit(rq, true);

        // end() from this thread hands the completion to the executor before it returns; drain runs after it.
        h.ops.takeHeld().end(Status.OK);
        h.executors.drain(0);

        assertThat(order).hasSize(2);
        assertThat(order.get(0)).isSameAs(rq);
        assertThat(order.get(1)).isEqualTo("completion of true");
    }

    @Test
    void completion_throws_theTagIsStillFreed() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.queue.tryAllocate(0, r -> {
            throw new IllegalStateException("submitter bug (expected by the test)");
        });
        h.queue.submit(rq.prepare(ReqOp.READ, 0, 0, 512, null), true);

        h.ops.takeHeld().end(Status.OK);
        h.executors.drain(0);

        assertThat(h.queue.tryAllocate(0, h.completion)).isSameAs(rq);
        h.queue.abandon(rq);
    }

    @Test
    void complete_throws_theSubmittersCompletionStillRuns() throws Exception {
        h.start(1, 1);
        h.ops.onComplete = rq -> {
            throw new IllegalStateException("driver bug (expected by the test)");
        };

        h.submit(0, true);
        h.ops.takeHeld().end(Status.IO_ERROR);
        h.awaitFreed(1);

        assertThat(h.completion.ended())
                .singleElement()
                .extracting(Ended::status)
                .isEqualTo(Status.IO_ERROR);
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void counters_countDispatchesAndCompletionsPerContext() throws Exception {
        h.start(2, 4);
        h.ops.onQueueRq = RecordingOperations.endOn(driverThreads, Status.OK);
        for (int i = 0; i < 3; i++) {
            h.submit(0, true);
        }
        h.submit(1, true);
        h.awaitFreed(4);

        assertThat(h.queue.hctx(0).dispatched()).isEqualTo(3);
        assertThat(h.queue.hctx(0).completed()).isEqualTo(3);
        assertThat(h.queue.hctx(1).dispatched()).isEqualTo(1);
        assertThat(h.queue.hctx(1).completed()).isEqualTo(1);
        assertThat(h.queue.hctx(0).busy()).isZero();
        assertThat(h.queue.inFlight()).isZero();
    }
}
