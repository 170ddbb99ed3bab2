package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.assertThatNullPointerException;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.RecordingOperations.Pdu;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

@Timeout(20)
class TagSetTest {
    private final Harness h = new Harness();

    @AfterEach
    void tearDown() throws Exception {
        h.close();
    }

    /* --------------- builder --------------- */

    @Test
    void builder_defaults() {
        TagSet<?, ?, ?, ?> set = TagSet.builder(h.ops).build();

        assertThat(set.hwQueues()).isEqualTo(1);
        assertThat(set.queueDepth()).isEqualTo(128);
        assertThat(set.timeout()).isEqualTo(Duration.ZERO);
        assertThat(set.tagSetData()).isNull();
        assertThat(h.ops.newRequestDataCalls()).isEqualTo(128);
    }

    @Test
    void builder_nullOps_throws() {
        assertThatNullPointerException().isThrownBy(() -> TagSet.builder(null)).withMessage("ops");
    }

    @Test
    void hwQueues_zero_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> TagSet.builder(h.ops).hwQueues(0))
                .withMessage("hwQueues: 0 (expected: 1..1024)");
    }

    @Test
    void hwQueues_tooMany_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> TagSet.builder(h.ops).hwQueues(1025))
                .withMessage("hwQueues: 1025 (expected: 1..1024)");
    }

    @Test
    void queueDepth_5000_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> TagSet.builder(h.ops).queueDepth(5000))
                .withMessage("queueDepth: 5000 (expected: 1..4096)");
    }

    @Test
    void queueDepth_zero_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> TagSet.builder(h.ops).queueDepth(0))
                .withMessage("queueDepth: 0 (expected: 1..4096)");
    }

    @Test
    void timeout_negative_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> TagSet.builder(h.ops).timeout(Duration.ofMillis(-1)))
                .withMessage("timeout: PT-0.001S (expected: >= 0)");
    }

    @Test
    void builder_rejectedArgument_leavesNothingBuiltAndNoCallbacks() {
        TagSet.Builder<?, ?, ?, ?> builder = TagSet.builder(h.ops);
        assertThatIllegalArgumentException().isThrownBy(() -> builder.queueDepth(-3));

        assertThat(h.ops.log()).isEmpty();
    }

    /* --------------- preallocation --------------- */

    @Test
    void build_callsNewRequestDataOncePerTag_andNothingElse() {
        TagSet<?, ?, ?, ?> set = h.buildTagSet(3, 5, Duration.ZERO);

        assertThat(h.ops.newRequestDataCalls()).isEqualTo(15);
        assertThat(h.ops.log()).containsOnly("newRequestData").hasSize(15);
        assertThat(set.hwQueues()).isEqualTo(3);
        assertThat(set.queueDepth()).isEqualTo(5);
        assertThat(set.tagSetData()).isEqualTo("tag-set-data");
    }

    @Test
    void build_requestsCarryTheirIndexTagAndOwnPdu() {
        h.buildTagSet(2, 3, Duration.ZERO);

        Set<Pdu> pdus = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int hw = 0; hw < 2; hw++) {
            for (int tag = 0; tag < 3; tag++) {
                Request<Pdu> rq = h.tagSet.tags[hw].requests[tag];
                assertThat(rq.hwIndex()).isEqualTo(hw);
                assertThat(rq.tag()).isEqualTo(tag);
                assertThat(rq.generation()).isZero();
                pdus.add(rq.pdu());
            }
        }
        assertThat(pdus).hasSize(6).containsExactlyInAnyOrderElementsOf(h.ops.pdus());
    }

    @Test
    void requests_thousandsOfRequests_reuseTheSameRequestsAndPdus_newRequestDataNeverAgain() throws Exception {
        int hwQueues = 2;
        int depth = 4;
        h.start(hwQueues, depth);
        assertThat(h.ops.newRequestDataCalls()).isEqualTo(hwQueues * depth);
        List<Pdu> createdPdus = h.ops.pdus();

        // Every preallocated request, by identity: allocate every tag once, then give them back.
        Set<Request<Pdu>> preallocated = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Request<Pdu>> first = new ArrayList<>();
        for (int hw = 0; hw < hwQueues; hw++) {
            for (int i = 0; i < depth; i++) {
                first.add(h.queue.tryAllocate(hw, h.completion));
            }
        }
        preallocated.addAll(first);
        first.forEach(h.queue::abandon);
        assertThat(preallocated).hasSize(hwQueues * depth);

        Map<Request<Pdu>, Pdu> pduOf = new IdentityHashMap<>();
        Map<Request<Pdu>, Integer> generationOf = new IdentityHashMap<>();
        List<String> problems = new ArrayList<>();
        int rounds = 625; // 5000 requests
        for (int round = 0; round < rounds; round++) {
            // Fill every tag, so every request is used in every round.
            for (int hw = 0; hw < hwQueues; hw++) {
                for (int i = 0; i < depth; i++) {
                    h.submit(hw, i == depth - 1);
                }
            }
            for (int i = 0; i < hwQueues * depth; i++) {
                Request<Pdu> rq = h.ops.takeHeld();
                if (!preallocated.contains(rq)) {
                    problems.add("round " + round + ": a request that was not preallocated: " + rq);
                }
                Pdu pdu = pduOf.putIfAbsent(rq, rq.pdu());
                if (pdu != null && pdu != rq.pdu()) {
                    problems.add("round " + round + ": " + rq + " changed its pdu");
                }
                Integer generation = generationOf.put(rq, rq.generation());
                if (generation != null && rq.generation() != generation + 1) {
                    problems.add("round " + round + ": " + rq + " generation " + generation + " -> " + rq.generation()
                            + " (expected: +1 per reuse)");
                }
                rq.end(Status.OK);
            }
            h.awaitFreed(hwQueues * depth);
        }

        assertThat(problems).isEmpty();
        assertThat(h.completion.count()).isEqualTo(rounds * hwQueues * depth);
        assertThat(h.ops.newRequestDataCalls()).isEqualTo(hwQueues * depth);
        assertThat(h.ops.pdus()).isEqualTo(createdPdus);
        assertThat(pduOf.keySet()).hasSize(hwQueues * depth);
        assertThat(Set.copyOf(pduOf.values().stream().map(p -> p.serial).toList()))
                .hasSize(hwQueues * depth);
        // One abandon plus one use per round.
        assertThat(generationOf.values()).containsOnly(rounds);
        List<String> log = h.ops.log();
        assertThat(log.lastIndexOf("newRequestData")).isLessThan(log.indexOf("initHctx 0"));
    }

    /* --------------- tagToRq --------------- */

    @Test
    void tagToRq_returnsTheRequestOnlyWhileInFlight() throws Exception {
        h.start(1, 2);
        List<String> seenInComplete = Collections.synchronizedList(new ArrayList<>());
        h.ops.onComplete = rq -> seenInComplete.add(String.valueOf(h.tagSet.tagToRq(0, rq.tag())));

        assertThat(h.tagSet.tagToRq(0, 0)).as("idle").isNull();

        Request<Pdu> rq = h.allocate(0);
        assertThat(rq.tag()).isZero();
        assertThat(h.tagSet.tagToRq(0, 0)).as("allocated, not submitted").isNull();

        h.queue.submit(rq, true);
        assertThat(h.ops.takeHeld()).isSameAs(rq);
        assertThat(h.tagSet.tagToRq(0, 0)).as("in flight").isSameAs(rq);
        assertThat(h.tagSet.tagToRq(0, 1)).as("another tag, idle").isNull();

        rq.end(Status.OK);
        h.awaitFreed(1);
        h.executors.drain(0);

        assertThat(seenInComplete).as("during completion (ended)").containsExactly("null");
        assertThat(h.tagSet.tagToRq(0, 0)).as("after completion").isNull();
    }

    @Test
    void tagToRq_outOfRange_throws() throws Exception {
        h.start(2, 4);

        assertThatThrownBy(() -> h.tagSet.tagToRq(2, 0)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> h.tagSet.tagToRq(0, 4)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> h.tagSet.tagToRq(-1, 0)).isInstanceOf(IndexOutOfBoundsException.class);
    }
}
