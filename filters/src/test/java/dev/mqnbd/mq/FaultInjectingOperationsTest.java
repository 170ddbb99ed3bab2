package dev.mqnbd.mq;

import static dev.mqnbd.mq.RecordingOperations.endInline;
import static dev.mqnbd.mq.RecordingOperations.hold;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;

import dev.mqnbd.filter.FaultInjectingOperations;
import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.filter.FilterContext;
import dev.mqnbd.mq.RecordingCompletion.Ended;
import dev.mqnbd.mq.RecordingOperations.Hw;
import dev.mqnbd.mq.RecordingOperations.Pdu;
import dev.mqnbd.mq.RecordingOperations.QueueData;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link FaultInjectingOperations} over a {@link RecordingOperations} driver: which requests each rule picks,
 * what each action does, and that the wrapped driver still sees only what the {@link Operations} contract
 * allows (the recording driver files every breach, and teardown fails the test on any).
 */
@Timeout(30)
class FaultInjectingOperationsTest {
    private final ManualTimers executors = new ManualTimers();
    private final RecordingOperations driver = new RecordingOperations(executors);
    private final RecordingCompletion completion = new RecordingCompletion(driver, executors.plain);
    private final FaultInjectingOperations<Hw, QueueData, String, Pdu> faulty =
            FaultInjectingOperations.wrap(driver, Harness.LIMITS);
    private BlockQueue<FilterContext<Hw>, QueueData, String, Pdu> queue;

    @AfterEach
    void tearDown() throws Exception {
        try {
            if (queue != null && !queue.isClosed()) {
                faulty.clear();
                driver.onQueueRq = endInline(Status.SHUTDOWN);
                faulty.endDropped(Status.SHUTDOWN);
                Request<Pdu> rq;
                while ((rq = driver.held.poll()) != null) {
                    rq.end(Status.SHUTDOWN);
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
                while (queue.inFlight() > 0 && System.nanoTime() - deadline < 0) {
                    Thread.sleep(1);
                }
                assertThat(queue.inFlight())
                        .as("requests still allocated at teardown")
                        .isZero();
                queue.close();
            }
        } finally {
            executors.close();
        }
        assertThat(driver.violations()).as("breaches of the driver contract").isEmpty();
    }

    private void start(int hwQueues, int depth, Duration timeout) throws MqException {
        TagSet<FilterContext<Hw>, QueueData, String, Pdu> tags = TagSet.builder(faulty)
                .hwQueues(hwQueues)
                .queueDepth(depth)
                .tagSetData("tags")
                .timeout(timeout)
                .build();
        queue = BlockQueue.builder(tags)
                .queueData(driver.queueData)
                .limits(Harness.LIMITS)
                .executors(executors)
                .name("faulty")
                .build();
    }

    private void start() throws MqException {
        start(1, 16, Duration.ZERO);
    }

    /** Submits one request on context {@code hctx} and returns it (it may have ended by the time this returns). */
    private Request<Pdu> submit(int hctx, ReqOp op, long offset, long length, boolean isLast) {
        Request<Pdu> rq = queue.tryAllocate(hctx, completion);
        assertThat(rq).as("a free tag").isNotNull();
        rq.prepare(op, 0, offset, length, null).attach(op + "@" + offset);
        queue.submit(rq, isLast);
        return rq;
    }

    /** Submits requests one at a time, each a batch of its own, waiting for each to complete. */
    private List<Status> run(ReqOp op, int count, long stride) throws Exception {
        int before = completion.count();
        for (int i = 0; i < count; i++) {
            submit(0, op, i * stride, 512, true);
            completion.await(1);
            executors.plain.drain(0);
        }
        return completion.ended().subList(before, before + count).stream()
                .map(Ended::status)
                .toList();
    }

    /* --------------- selection --------------- */

    @Test
    void noRules_everyRequestReachesTheDriver() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        start();

        assertThat(run(ReqOp.WRITE, 10, 512)).containsOnly(Status.OK).hasSize(10);
        assertThat(driver.queueRqCalls).hasValue(10);
        assertThat(driver.completeCalls).hasValue(10);
    }

    @Test
    void fail_everyThirdWrite_endsThoseWithTheStatus_andTheDriverNeverSeesThem() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        FaultRule rule = faulty.add(FaultRule.on(ReqOp.WRITE).everyNth(3).fail(Status.IO_ERROR));
        start();

        List<Status> statuses = run(ReqOp.WRITE, 9, 512);
        List<Status> reads = run(ReqOp.READ, 3, 512);

        assertThat(statuses)
                .containsExactly(
                        Status.OK,
                        Status.OK,
                        Status.IO_ERROR,
                        Status.OK,
                        Status.OK,
                        Status.IO_ERROR,
                        Status.OK,
                        Status.OK,
                        Status.IO_ERROR);
        assertThat(reads).containsOnly(Status.OK);
        assertThat(rule.matched()).isEqualTo(9);
        assertThat(rule.injected()).isEqualTo(3);
        assertThat(driver.queueRqCalls).hasValue(6 + 3);
        assertThat(driver.completeCalls)
                .as("complete() only for the driver's own requests")
                .hasValue(9);
    }

    @Test
    void fail_range_onlyRequestsOverlappingTheRangeFail() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.on(ReqOp.WRITE, ReqOp.READ).range(4096, 8192).fail(Status.NO_SPACE));
        start();

        // 512-byte requests at 0, 3584 (ends at 4096: outside), 3585 (overlaps), 4096, 8191, 8192.
        for (long offset : new long[] {0, 3584, 3585, 4096, 8191, 8192}) {
            submit(0, ReqOp.WRITE, offset, 512, true);
        }
        completion.await(6);

        assertThat(completion.ended().stream().map(e -> e.attachment() + " " + e.status()))
                .containsExactly(
                        "WRITE@0 OK",
                        "WRITE@3584 OK",
                        "WRITE@3585 NO_SPACE",
                        "WRITE@4096 NO_SPACE",
                        "WRITE@8191 NO_SPACE",
                        "WRITE@8192 OK");
    }

    @Test
    void firstN_afterFirst_limit_countCandidatesAndInjections() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        FaultRule firstTwo = faulty.add(FaultRule.on(ReqOp.WRITE).firstN(2).fail(Status.IO_ERROR));
        FaultRule afterFive =
                faulty.add(FaultRule.on(ReqOp.WRITE).afterFirst(5).limit(2).fail(Status.NO_SPACE));
        start();

        List<Status> statuses = run(ReqOp.WRITE, 10, 512);

        // The first rule picks writes 1-2; the second sees writes 3-10 (8 candidates) and picks its 6th and 7th.
        assertThat(statuses)
                .containsExactly(
                        Status.IO_ERROR,
                        Status.IO_ERROR,
                        Status.OK,
                        Status.OK,
                        Status.OK,
                        Status.OK,
                        Status.OK,
                        Status.NO_SPACE,
                        Status.NO_SPACE,
                        Status.OK);
        assertThat(firstTwo.matched()).isEqualTo(10);
        assertThat(firstTwo.injected()).isEqualTo(2);
        assertThat(afterFive.matched()).isEqualTo(8);
        assertThat(afterFive.injected()).isEqualTo(2);
    }

    @Test
    void probability_withASeed_picksWhatThatSeedDecides() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        FaultRule rule =
                faulty.add(FaultRule.on(ReqOp.READ).probability(0.25, 42).fail(Status.IO_ERROR));
        start();

        List<Status> statuses = run(ReqOp.READ, 200, 512);

        Random coin = new Random(42);
        List<Status> expected = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            expected.add(coin.nextDouble() < 0.25 ? Status.IO_ERROR : Status.OK);
        }
        assertThat(statuses).isEqualTo(expected);
        assertThat(rule.injected())
                .isEqualTo(expected.stream().filter(s -> s == Status.IO_ERROR).count());
    }

    @Test
    void when_predicate_selectsBySomethingElse() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.onAny().when(rq -> rq.hasFlag(ReqFlags.FUA)).fail(Status.IO_ERROR));
        start();

        Request<Pdu> fua = queue.tryAllocate(0, completion);
        fua.prepare(ReqOp.WRITE, ReqFlags.FUA, 0, 512, null);
        queue.submit(fua, true);
        submit(0, ReqOp.WRITE, 512, 512, true);
        completion.await(2);

        assertThat(completion.ended()).extracting(Ended::status).containsExactly(Status.IO_ERROR, Status.OK);
    }

    @Test
    void rules_addedRemovedAndDisabledWhileRunning() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        start();
        FaultRule rule = faulty.add(FaultRule.on(ReqOp.WRITE).fail(Status.IO_ERROR));
        assertThat(run(ReqOp.WRITE, 2, 512)).containsOnly(Status.IO_ERROR);

        rule.enabled(false);
        assertThat(run(ReqOp.WRITE, 2, 512)).containsOnly(Status.OK);
        rule.enabled(true);
        assertThat(run(ReqOp.WRITE, 1, 512)).containsOnly(Status.IO_ERROR);

        assertThat(faulty.remove(rule)).isTrue();
        assertThat(faulty.remove(rule)).isFalse();
        assertThat(faulty.rules()).isEmpty();
        assertThat(run(ReqOp.WRITE, 2, 512)).containsOnly(Status.OK);
        assertThat(rule.matched())
                .as("a disabled or removed rule counts nothing")
                .isEqualTo(3);
    }

    /* --------------- actions --------------- */

    @Test
    void drop_theTimeoutEndsItWithTheRulesStatus_andTheDriverNeverSeesIt() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.on(ReqOp.FLUSH).firstN(1).drop());
        start(1, 16, Duration.ofMillis(50));

        submit(0, ReqOp.FLUSH, 0, 0, true);
        submit(0, ReqOp.WRITE, 0, 512, true);
        completion.await(2);

        // The write ends at once; the dropped flush ends only when the timeout finds it.
        assertThat(completion.ended())
                .extracting(e -> e.attachment() + " " + e.status())
                .containsExactly("WRITE@0 OK", "FLUSH@0 TIMEOUT");
        assertThat(driver.entries("queueRq")).hasSize(1);
        assertThat(driver.timeoutCalls)
                .as("the driver's timeout() is not asked about a request it never had")
                .hasValue(0);
        assertThat(driver.completeCalls).hasValue(1);
        assertThat(faulty.droppedInFlight()).isZero();
        assertThat(run(ReqOp.FLUSH, 1, 0)).containsOnly(Status.OK);
    }

    @Test
    void drop_withoutATimeout_staysInFlightUntilEndDropped() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.on(ReqOp.WRITE).drop(Status.IO_ERROR));
        start();

        submit(0, ReqOp.WRITE, 0, 512, true);
        submit(0, ReqOp.WRITE, 512, 512, true);
        executors.plain.drain(0);
        assertThat(queue.inFlight()).isEqualTo(2);
        assertThat(faulty.droppedInFlight()).isEqualTo(2);

        assertThat(faulty.endDropped(Status.SHUTDOWN)).isEqualTo(2);
        completion.await(2);
        assertThat(completion.ended()).extracting(Ended::status).containsOnly(Status.SHUTDOWN);
        assertThat(faulty.endDropped(Status.SHUTDOWN)).isZero();
        assertThat(driver.queueRqCalls).hasValue(0);
    }

    @Test
    void drop_realTimeoutOfADriversRequest_stillReachesTheDriver() throws Exception {
        driver.onQueueRq = hold();
        driver.onTimeout = rq -> {
            rq.end(Status.TIMEOUT);
            return TimeoutAction.DONE;
        };
        faulty.add(FaultRule.on(ReqOp.READ).drop());
        start(1, 16, Duration.ofMillis(50));

        submit(0, ReqOp.WRITE, 0, 512, true);
        completion.await(1);

        assertThat(driver.timeoutCalls).hasValue(1);
        assertThat(completion.ended()).extracting(Ended::status).containsExactly(Status.TIMEOUT);
        driver.held.clear();
    }

    @Test
    void delay_handsTheRequestOnAfterTheDelay_aloneAndOnItsContext() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        FaultRule rule = faulty.add(FaultRule.on(ReqOp.WRITE).firstN(1).delay(Duration.ofSeconds(7)));
        start();

        submit(0, ReqOp.WRITE, 0, 512, true);
        submit(0, ReqOp.WRITE, 512, 512, true);
        completion.await(1);
        executors.plain.drain(0);
        assertThat(completion.ended())
                .extracting(e -> e.attachment() + " " + e.status())
                .containsExactly("WRITE@512 OK");
        assertThat(executors.delays).containsExactly(TimeUnit.SECONDS.toNanos(7));
        assertThat(queue.inFlight()).isEqualTo(1);

        executors.fireTimers(0);
        completion.await(1);

        assertThat(completion.ended())
                .extracting(e -> e.attachment() + " " + e.status())
                .containsExactly("WRITE@512 OK", "WRITE@0 OK");
        assertThat(driver.entries("queueRq")).containsExactly("queueRq 0:1 isLast=true", "queueRq 0:0 isLast=true");
        assertThat(driver.completeCalls).hasValue(2);
        assertThat(rule.injected()).isEqualTo(1);
        assertThat(executors.fireTimers(0)).as("the timer fires once").isZero();
    }

    @Test
    void busy_mqCoreRequeuesIt_andTheRetryPasses() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        FaultRule rule = faulty.add(FaultRule.on(ReqOp.WRITE).limit(1).busy());
        start(1, 16, Duration.ZERO);
        executors.manual = false;

        assertThat(run(ReqOp.WRITE, 1, 512)).containsOnly(Status.OK);
        assertThat(rule.injected()).isEqualTo(1);
        assertThat(driver.queueRqCalls).as("the driver sees the retry only").hasValue(1);
    }

    /* --------------- what the wrapped driver sees of batches --------------- */

    @Test
    void failedLastRequest_closesTheDriversOpenRun_withCommitRqs() throws Exception {
        faulty.add(FaultRule.on(ReqOp.FLUSH).fail(Status.IO_ERROR));
        start();

        submit(0, ReqOp.WRITE, 0, 512, false);
        submit(0, ReqOp.WRITE, 512, 512, false);
        submit(0, ReqOp.FLUSH, 0, 0, true);
        completion.await(1);
        executors.plain.drain(0);

        assertThat(driver.events())
                .containsSubsequence("queueRq 0:0 isLast=false", "queueRq 0:1 isLast=false", "commitRqs 0");
        assertThat(driver.commitRqsCalls).hasValue(1);
        driver.held.forEach(rq -> rq.end(Status.OK));
        driver.held.clear();
        completion.await(2);
    }

    @Test
    void swallowedDeferredRequests_theBatchsCommitDoesNotReachTheDriver() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.on(ReqOp.WRITE).fail(Status.IO_ERROR));
        start();

        submit(0, ReqOp.WRITE, 0, 512, false);
        submit(0, ReqOp.WRITE, 512, 512, false);
        queue.commit(0);
        completion.await(2);
        executors.plain.drain(0);

        assertThat(driver.commitRqsCalls).as("the driver had no open run").hasValue(0);

        // A run the driver does have open is still committed.
        submit(0, ReqOp.READ, 0, 512, false);
        queue.commit(0);
        completion.await(1);
        executors.plain.drain(0);
        assertThat(driver.commitRqsCalls).hasValue(1);
    }

    @Test
    void delayedRequest_amongDeferredOnes_leavesNoRunOpen() throws Exception {
        driver.onQueueRq = endInline(Status.OK);
        faulty.add(FaultRule.on(ReqOp.READ).delay(Duration.ofSeconds(1)));
        start();

        submit(0, ReqOp.WRITE, 0, 512, false);
        submit(0, ReqOp.READ, 0, 512, true);
        completion.await(1);
        executors.plain.drain(0);
        assertThat(driver.events()).containsSubsequence("queueRq 0:0 isLast=false", "commitRqs 0");

        executors.fireTimers(0);
        completion.await(1);
        executors.plain.drain(0);
        // Tags are reused as requests end, so only the order and the isLast flags are compared.
        assertThat(driver.entries("queueRq"))
                .extracting(e -> e.substring(e.indexOf(" isLast")))
                .containsExactly(" isLast=false", " isLast=true");
    }

    /* --------------- polling, concurrency, arguments --------------- */

    @Test
    void manySubmitters_twoContexts_everyRequestEndsOnce_andTheCountsAddUp() throws Exception {
        driver.recordIo = false;
        driver.onQueueRq = endInline(Status.OK);
        FaultRule fail =
                faulty.add(FaultRule.on(ReqOp.WRITE).probability(0.3, 7).fail(Status.IO_ERROR));
        FaultRule slow = faulty.add(FaultRule.on(ReqOp.READ).everyNth(5).delay(Duration.ofMillis(1)));
        executors.manual = false;
        start(2, 32, Duration.ZERO);
        int perThread = 2_000;
        Map<Status, Integer> statuses = new ConcurrentHashMap<>();
        List<Throwable> failures = new CopyOnWriteArrayList<>();
        CountDownLatch allEnded = new CountDownLatch(4 * perThread);
        RequestCompletion counting = rq -> {
            statuses.merge(rq.status(), 1, Integer::sum);
            allEnded.countDown();
        };
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int hctx = t % 2;
            ReqOp op = t < 2 ? ReqOp.WRITE : ReqOp.READ;
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    for (int i = 0; i < perThread; i++) {
                        Request<Pdu> rq;
                        while ((rq = queue.tryAllocate(hctx, counting)) == null) {
                            Thread.onSpinWait();
                        }
                        rq.prepare(op, 0, (long) i * 512, 512, null);
                        queue.submit(rq, true);
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            }));
        }
        for (Thread t : threads) {
            t.join();
        }
        assertThat(allEnded.await(20, TimeUnit.SECONDS))
                .as("every request ended")
                .isTrue();

        assertThat(failures).isEmpty();
        assertThat(statuses.getOrDefault(Status.IO_ERROR, 0))
                .isEqualTo((int) fail.injected())
                .isPositive();
        assertThat(statuses.get(Status.OK) + statuses.getOrDefault(Status.IO_ERROR, 0))
                .isEqualTo(4 * perThread);
        assertThat(slow.injected()).isEqualTo(2 * perThread / 5);
        assertThat(driver.queueRqCalls).hasValue(4 * perThread - (int) fail.injected());
    }

    @Test
    void builder_rejectsBadArguments() {
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().fail(Status.OK));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().fail(Status.BUSY));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().drop(Status.OK));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().delay(Duration.ZERO));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().everyNth(0));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().firstN(-1));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().afterFirst(-1));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().limit(-1));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().probability(1.5, 1));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().range(10, 10));
        assertThatIllegalArgumentException().isThrownBy(() -> FaultRule.onAny().name(""));
        assertThatIllegalArgumentException().isThrownBy(() -> faulty.endDropped(Status.OK));

        FaultRule rule = FaultRule.on(ReqOp.WRITE, ReqOp.FLUSH)
                .name("eio")
                .range(0, 4096)
                .everyNth(3)
                .fail(Status.IO_ERROR);
        assertThat(rule).hasToString("FaultRule[eio: WRITE|FLUSH [0, 4096) every 3 -> FAIL IO_ERROR]");
        assertThat(rule.action()).isEqualTo(FaultRule.Action.FAIL);
        assertThat(FaultRule.onAny().delay(Duration.ofMillis(5)).delay()).isEqualTo(Duration.ofMillis(5));
    }

    /**
     * One executor per context whose {@code schedule} is held for the test to fire ({@link #fireTimers}) while
     * {@link #manual} is set, so a delay is observed without waiting for it; otherwise timers run for real.
     */
    private static final class ManualTimers implements IntFunction<HctxExecutor>, AutoCloseable {
        final TestExecutors plain = new TestExecutors();
        final List<Long> delays = new CopyOnWriteArrayList<>();
        private final Map<Integer, List<Runnable>> timers = new ConcurrentHashMap<>();
        private final Map<Integer, HctxExecutor> wrapped = new ConcurrentHashMap<>();
        volatile boolean manual = true;

        @Override
        public HctxExecutor apply(int index) {
            return wrapped.computeIfAbsent(index, i -> new HctxExecutor() {
                @Override
                public boolean inExecutor() {
                    return plain.get(i).inExecutor();
                }

                @Override
                public void execute(Runnable task) {
                    plain.get(i).execute(task);
                }

                @Override
                public void schedule(Runnable task, long delay, TimeUnit unit) {
                    if (manual && delay >= TimeUnit.MILLISECONDS.toNanos(100)) {
                        // Only the filter's delays are held; the tag set's timeout scan (a quarter of the
                        // timeout, at least 5 ms) and mq-core's BUSY retry (3 ms) run for real.
                        delays.add(unit.toNanos(delay));
                        timers.computeIfAbsent(i, k -> new CopyOnWriteArrayList<>())
                                .add(task);
                    } else {
                        plain.get(i).schedule(task, delay, unit);
                    }
                }
            });
        }

        /** Runs the held timers of context {@code index} now; returns how many there were. */
        int fireTimers(int index) throws Exception {
            List<Runnable> due = timers.getOrDefault(index, List.of());
            List<Runnable> now = new ArrayList<>(due);
            due.clear();
            for (Runnable task : now) {
                plain.run(index, task::run);
            }
            return now.size();
        }

        @Override
        public void close() {
            plain.close();
        }
    }
}
