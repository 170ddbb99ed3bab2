package dev.mqnbd.storage.file;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The group commit alone, with a fake sync and a logical clock: writes, sync starts and completions get
 * stamps, and every waiter must end only after a sync that started after the writes it covers finished.
 */
class GroupCommitTest {
    /** A waiter: a FUA write (covers its own write) or a FLUSH (covers every write completed before it). */
    record Waiter(String kind, long mustCoverStamp) {}

    private final AtomicLong clock = new AtomicLong();
    private final AtomicLong maxWriteStamp = new AtomicLong();
    private final AtomicLong lastCompletedSyncStart = new AtomicLong(-1);
    private final AtomicInteger syncCalls = new AtomicInteger();
    private final Queue<String> violations = new ConcurrentLinkedQueue<>();
    private final Queue<Waiter> ended = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean failNextSync = new AtomicBoolean();
    private volatile CountDownLatch endedLatch = new CountDownLatch(0);
    private GroupCommit<Waiter> gc;

    private GroupCommit<Waiter> newGroupCommit(long syncMillis) {
        GroupCommit.SyncAction sync = () -> {
            long start = clock.incrementAndGet();
            syncCalls.incrementAndGet();
            try {
                Thread.sleep(syncMillis, ThreadLocalRandom.current().nextInt(500_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (failNextSync.getAndSet(false)) {
                throw new IOException("test: fdatasync failed");
            }
            lastCompletedSyncStart.accumulateAndGet(start, Math::max);
        };
        gc = new GroupCommit<>("test", sync, (w, generation, durable) -> {
            if (generation != System.identityHashCode(w)) {
                violations.add(w + " ended with generation " + generation + ", not the one it was kept at");
            }
            if (durable && lastCompletedSyncStart.get() <= w.mustCoverStamp()) {
                violations.add(w + " ended after syncs started up to " + lastCompletedSyncStart.get());
            }
            ended.add(w);
            endedLatch.countDown();
        });
        return gc;
    }

    @AfterEach
    void close() {
        if (gc != null) {
            gc.close();
        }
    }

    /** A write completes: stamp it, then mark the writer dirty, as the device does after pwrite. */
    private long write(GroupCommit<Waiter>.Writer writer) {
        long stamp = clock.incrementAndGet();
        maxWriteStamp.accumulateAndGet(stamp, Math::max);
        writer.markDirty();
        return stamp;
    }

    private Waiter flush() {
        return new Waiter("flush", maxWriteStamp.get());
    }

    /** Keeps each waiter at a generation of its own, which the completer checks it gets back. */
    private static Held<Waiter> batch(Waiter... waiters) {
        Held<Waiter> held = new Held<>(waiters.length);
        for (Waiter w : waiters) {
            held.add(w, System.identityHashCode(w));
        }
        return held;
    }

    @Test
    void firstFlush_afterOpen_syncsEvenWithoutWrites() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(0);
        GroupCommit<Waiter>.Writer writer = gc.newWriter();
        endedLatch = new CountDownLatch(1);

        writer.commit(batch(flush()));

        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();
        assertThat(syncCalls).hasValue(1);
        assertThat(gc.batchSizes().counts()).startsWith(1L, 0L);
        assertThat(gc.batchSizes().sum()).isEqualTo(1.0);
    }

    @Test
    void flush_withNothingWrittenSinceLastSync_endsWithoutSyncing() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(0);
        GroupCommit<Waiter>.Writer writer = gc.newWriter();
        endedLatch = new CountDownLatch(1);
        write(writer);
        writer.commit(batch(flush()));
        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();

        endedLatch = new CountDownLatch(3);
        writer.commit(batch(flush(), flush(), flush()));

        assertThat(endedLatch.getCount()).as("ended before commit returned").isZero();
        assertThat(syncCalls).hasValue(1);
        assertThat(violations).isEmpty();
    }

    @Test
    void flush_afterWriteOnAnotherWriter_syncs() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(0);
        GroupCommit<Waiter>.Writer a = gc.newWriter();
        GroupCommit<Waiter>.Writer b = gc.newWriter();
        endedLatch = new CountDownLatch(1);
        a.commit(batch(flush()));
        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();

        write(b);
        endedLatch = new CountDownLatch(1);
        a.commit(batch(flush()));

        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();
        assertThat(syncCalls).hasValue(2);
        assertThat(violations).isEmpty();
    }

    @Test
    void failedSync_failsItsWaiters_andEveryLaterOne() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(0);
        GroupCommit<Waiter>.Writer writer = gc.newWriter();
        List<Boolean> results = new ArrayList<>();
        gc.close();
        this.gc = new GroupCommit<>(
                "test",
                () -> {
                    throw new IOException("test: EIO");
                },
                (w, generation, durable) -> {
                    synchronized (results) {
                        results.add(durable);
                    }
                    endedLatch.countDown();
                });
        writer = this.gc.newWriter();
        endedLatch = new CountDownLatch(2);
        write(writer);
        writer.commit(batch(flush(), new Waiter("fua", 0)));
        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();

        endedLatch = new CountDownLatch(1);
        writer.commit(batch(flush()));

        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();
        assertThat(results).containsExactly(false, false, false);
        assertThat(this.gc.failed()).isTrue();
        assertThat(this.gc.syncs()).isEqualTo(1);
    }

    @Test
    void concurrentWritersOnFourContexts_shareSyncs_andNoWaiterEndsEarly() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(2);
        int contexts = 4;
        int batches = 300;
        int perBatch = 4;
        endedLatch = new CountDownLatch(contexts * batches * perBatch);
        List<Thread> threads = new ArrayList<>();
        for (int c = 0; c < contexts; c++) {
            GroupCommit<Waiter>.Writer writer = gc.newWriter();
            Thread t = new Thread(() -> {
                ThreadLocalRandom random = ThreadLocalRandom.current();
                for (int b = 0; b < batches; b++) {
                    Held<Waiter> waiters = new Held<>(perBatch);
                    for (int i = 0; i < perBatch; i++) {
                        if (random.nextInt(4) == 0) {
                            Waiter w = flush();
                            waiters.add(w, System.identityHashCode(w));
                        } else {
                            Waiter w = new Waiter("fua", write(writer));
                            waiters.add(w, System.identityHashCode(w));
                        }
                    }
                    writer.commit(waiters);
                    if (random.nextInt(8) == 0) {
                        Thread.onSpinWait();
                        write(writer); // a plain write between batches, covered by later flushes only
                    }
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }

        assertThat(endedLatch.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(violations).isEmpty();
        assertThat(ended).hasSize(contexts * batches * perBatch);
        // 4800 waiters; each 2 ms sync covers all that arrive meanwhile.
        assertThat(syncCalls.get()).isLessThan(contexts * batches * perBatch / 8);
        // One batch per sync, each of the waiters it ended (those that needed no sync are in none).
        assertThat(gc.batchSizes().count()).isEqualTo(syncCalls.get());
        assertThat((long) gc.batchSizes().sum()).isEqualTo(gc.waitersServed());
        assertThat(gc.waitersServed()).isPositive();
    }

    @Test
    void close_endsNothingTwice_andStopsTheSyncer() throws Exception {
        GroupCommit<Waiter> gc = newGroupCommit(1);
        GroupCommit<Waiter>.Writer writer = gc.newWriter();
        endedLatch = new CountDownLatch(10);
        for (int i = 0; i < 10; i++) {
            writer.commit(batch(new Waiter("fua", write(writer))));
        }

        gc.close();

        assertThat(endedLatch.await(5, TimeUnit.SECONDS)).isTrue();
        assertThat(ended).hasSize(10);
        assertThat(violations).isEmpty();
    }
}
