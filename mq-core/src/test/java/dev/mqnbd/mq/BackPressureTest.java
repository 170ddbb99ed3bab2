package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** No free tag means: stop, and be told when one frees. Nothing waits inside mq-core. */
@Timeout(20)
class BackPressureTest {
    private final Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    @Test
    void tryAllocate_depthTwo_thirdReturnsNull() throws Exception {
        h.start(1, 2);

        Request<Pdu> first = h.queue.tryAllocate(0, h.completion);
        Request<Pdu> second = h.queue.tryAllocate(0, h.completion);
        Request<Pdu> third = h.queue.tryAllocate(0, h.completion);

        assertThat(first).isNotNull();
        assertThat(second).isNotNull().isNotSameAs(first);
        assertThat(third).isNull();
        assertThat(h.queue.inFlight()).isEqualTo(2);
        h.queue.abandon(first);
        h.queue.abandon(second);
    }

    @Test
    void tryAllocate_full_neverBlocks_andNothingQueues() throws Exception {
        h.start(1, 2);
        h.submit(0, false);
        h.submit(0, true);

        for (int i = 0; i < 10_000; i++) {
            assertThat(h.queue.tryAllocate(0, h.completion)).isNull();
        }

        assertThat(h.queue.inFlight()).isEqualTo(2);
        h.ops.takeHeld().end(Status.OK);
        h.ops.takeHeld().end(Status.OK);
        h.awaitFreed(2);
        h.executors.drain(0);
        assertThat(h.ops.entries("queueRq")).hasSize(2);
        assertThat(h.completion.count()).isEqualTo(2);
    }

    @Test
    void tryAllocate_contextsHaveTheirOwnTags() throws Exception {
        h.start(2, 1);
        Request<Pdu> onZero = h.queue.tryAllocate(0, h.completion);

        assertThat(h.queue.tryAllocate(0, h.completion)).isNull();
        Request<Pdu> onOne = h.queue.tryAllocate(1, h.completion);
        assertThat(onOne).isNotNull();
        assertThat(onOne.hwIndex()).isEqualTo(1);

        h.queue.abandon(onZero);
        h.queue.abandon(onOne);
    }

    @Test
    void waitForTag_wokenWhenARequestEnds_thenTryAllocateSucceeds() throws Exception {
        h.start(1, 2);
        h.submit(0, false);
        h.submit(0, true);
        Request<Pdu> first = h.ops.takeHeld();
        Request<Pdu> second = h.ops.takeHeld();
        assertThat(h.queue.tryAllocate(0, h.completion)).isNull();
        CountDownLatch woken = new CountDownLatch(1);
        AtomicReference<String> wokenOn = new AtomicReference<>();

        h.queue.waitForTag(0, () -> {
            wokenOn.set(Thread.currentThread().getName());
            h.ops.record("tagAvailable");
            woken.countDown();
        });
        assertThat(woken.getCount()).as("woken while every tag is in use").isEqualTo(1);

        first.end(Status.OK);
        assertThat(woken.await(5, TimeUnit.SECONDS)).isTrue();

        assertThat(wokenOn.get()).as("woken where the tag freed").isEqualTo("hctx-0");
        assertThat(h.ops.events()).containsSubsequence("completion 0:0 OK", "tagAvailable");
        Request<Pdu> third = h.queue.tryAllocate(0, h.completion);
        assertThat(third).isSameAs(first);
        h.queue.abandon(third);
        second.end(Status.OK);
        h.awaitFreed(2);
    }

    @Test
    void waitForTag_aTagIsAlreadyFree_calledAtOnce() throws Exception {
        h.start(1, 2);
        Request<Pdu> held = h.queue.tryAllocate(0, h.completion);
        AtomicReference<Thread> calledOn = new AtomicReference<>();

        // The submitter saw "full" a moment ago, but a tag has freed since: it must not sleep forever.
        h.queue.waitForTag(0, () -> calledOn.set(Thread.currentThread()));

        assertThat(calledOn.get())
                .as("called at once, on the registering thread")
                .isSameAs(Thread.currentThread());
        h.queue.abandon(held);
    }

    @Test
    void waitForTag_calledOncePerRegistration() throws Exception {
        h.start(1, 2);
        h.submit(0, false);
        h.submit(0, true);
        Request<Pdu> first = h.ops.takeHeld();
        Request<Pdu> second = h.ops.takeHeld();
        AtomicInteger calls = new AtomicInteger();
        h.queue.waitForTag(0, calls::incrementAndGet);

        first.end(Status.OK);
        second.end(Status.OK);
        h.awaitFreed(2);
        h.executors.drain(0);

        assertThat(calls).hasValue(1);
    }

    @Test
    void waitForTag_oneWaiterWokenPerFreedTag_inTheOrderTheyWaited() throws Exception {
        h.start(1, 2);
        h.submit(0, true);
        h.submit(0, true);
        Request<Pdu> first = h.ops.takeHeld();
        Request<Pdu> second = h.ops.takeHeld();
        List<Integer> woken = new CopyOnWriteArrayList<>();
        for (int i = 0; i < 3; i++) {
            int waiter = i;
            h.queue.waitForTag(0, () -> woken.add(waiter));
        }
        assertThat(woken).isEmpty();

        first.end(Status.OK);
        h.awaitFreed(1);
        assertThat(woken).containsExactly(0);

        second.end(Status.OK);
        h.awaitFreed(1);
        assertThat(woken).containsExactly(0, 1);
    }

    @Test
    void waitForTag_wokenWaiterTakesNoTag_wakeNextWaiterPassesTheWakeupOn() throws Exception {
        h.start(1, 1);
        h.submit(0, true);
        Request<Pdu> rq = h.ops.takeHeld();
        AtomicInteger gone = new AtomicInteger();
        AtomicInteger next = new AtomicInteger();
        // The first waiter has lost interest (its connection closed): it passes the wakeup on.
        h.queue.waitForTag(0, () -> {
            gone.incrementAndGet();
            h.queue.wakeNextWaiter(0);
        });
        h.queue.waitForTag(0, next::incrementAndGet);

        rq.end(Status.OK);
        h.awaitFreed(1);

        assertThat(gone).hasValue(1);
        assertThat(next).hasValue(1);
    }

    @Test
    void wakeNextWaiter_noTagFree_wakesNobody() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);
        AtomicInteger calls = new AtomicInteger();
        h.queue.waitForTag(0, calls::incrementAndGet);

        h.queue.wakeNextWaiter(0);
        assertThat(calls).hasValue(0);

        h.queue.abandon(rq);
        assertThat(calls).hasValue(1);
    }

    @Test
    void waitForTag_manyThreadsRacingForTwoTags_noWakeupIsLost() throws Exception {
        h.start(1, 2);
        int threads = 6;
        int rounds = 3_000;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            List<Future<?>> done = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                done.add(pool.submit(() -> {
                    Semaphore woken = new Semaphore(0);
                    for (int round = 0; round < rounds; ) {
                        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);
                        if (rq == null) {
                            // Registered after a failed tryAllocate: a tag freed in between must still wake us.
                            h.queue.waitForTag(0, woken::release);
                            if (!woken.tryAcquire(5, TimeUnit.SECONDS)) {
                                throw new AssertionError(
                                        "lost wakeup: no tag for 5 s, " + h.queue.inFlight() + " allocated");
                            }
                            continue;
                        }
                        Thread.onSpinWait();
                        h.queue.abandon(rq);
                        round++;
                    }
                    return null;
                }));
            }
            for (Future<?> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
        assertThat(h.queue.inFlight()).isZero();
    }

    @Test
    void waitForTag_notWokenByAnotherContextsTags() throws Exception {
        h.start(2, 1);
        h.submit(0, true);
        h.submit(1, true);
        Request<Pdu> a = h.ops.takeHeld();
        Request<Pdu> b = h.ops.takeHeld();
        Request<Pdu> onZero = a.hwIndex() == 0 ? a : b;
        Request<Pdu> onOne = a.hwIndex() == 0 ? b : a;
        AtomicInteger calls = new AtomicInteger();
        h.queue.waitForTag(0, calls::incrementAndGet);

        onOne.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(1);
        assertThat(calls).hasValue(0);

        onZero.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);
        assertThat(calls).hasValue(1);
    }

    @Test
    void waitForTag_abandonFreesATagToo() throws Exception {
        h.start(1, 1);
        Request<Pdu> rq = h.queue.tryAllocate(0, h.completion);
        AtomicInteger calls = new AtomicInteger();
        h.queue.waitForTag(0, calls::incrementAndGet);

        h.queue.abandon(rq);

        assertThat(calls).hasValue(1);
    }
}
