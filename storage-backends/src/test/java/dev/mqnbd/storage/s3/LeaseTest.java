package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.logging.Level;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The write lease's logic against a fake store in memory: a renewal applied by the store whose reply was
 * lost, renewals that fail and are retried, a lapse through an outage, loss to another server, the
 * takeover of a crashed process's lease on restart, and the release: a conditional PUT that leaves a
 * released record, which the next server takes over at once.
 */
class LeaseTest {
    private static final ObjectNames NAMES = new ObjectNames("bucket", "disk");

    private final MemoryStore store = new MemoryStore();
    private final LogCapture logs = new LogCapture();
    private final List<Lease> leases = new ArrayList<>();

    @AfterEach
    void close() {
        leases.forEach(Lease::close);
        logs.close();
    }

    private Lease acquire(Duration ttl, Duration timeout) throws IOException {
        Lease lease = Lease.acquire(store, NAMES, "t", ttl, timeout);
        leases.add(lease);
        return lease;
    }

    private String leaseObject() {
        byte[] bytes = store.bytes(NAMES.lease());
        return bytes == null ? "" : new String(bytes, StandardCharsets.UTF_8);
    }

    private void putLease(LeaseHolder holder, Instant expires) {
        String json = "{\"holder\": \"" + holder.name() + "\", \"host\": \"" + holder.host() + "\", \"pid\": "
                + holder.pid() + (holder.machine() == null ? "" : ", \"machine\": \"" + holder.machine() + "\"")
                + ", \"expires\": " + expires.toEpochMilli() + "}";
        store.set(NAMES.lease(), json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void renewalAppliedButReplyLost_the412IsLookedAt_andOurOwnLeaseIsAdopted() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(3), Duration.ofMillis(100));
        store.loseConditional(1);

        await("an adoption and a renewal after it", () -> lease.adoptions() >= 1 && lease.renewals() >= 2);

        assertThat(lease.valid()).isTrue();
        assertThat(lease.lost()).isFalse();
        assertThat(leaseObject()).contains(lease.holder());
        assertThat(logs.messages(Level.INFO))
                .anySatisfy(m -> assertThat(m).contains("still names this server, so it is adopted"));
        assertThat(logs.messages(Level.SEVERE)).isEmpty();
    }

    @Test
    void failedRenewals_areRetriedAtOnceAndWithBackoff_soTheLeaseNeverLapses() throws Exception {
        // Renewed every 2 s and trusted 5.4 s: retrying only at the next interval, five failures in a row
        // would take 10 s and the lease would lapse; at once and with backoff they take under 2 s.
        Lease lease = acquire(Duration.ofSeconds(6), Duration.ofMillis(100));
        assertThat(Lease.interval(Duration.ofSeconds(6), Duration.ofMillis(100)))
                .isEqualTo(Duration.ofSeconds(2));
        store.failConditional(5);
        int before = store.conditionalWrites();

        await("five failures and a renewal", () -> lease.renewals() >= 1);

        assertThat(store.conditionalWrites() - before).isEqualTo(6);
        assertThat(lease.valid()).isTrue();
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m).contains("could not renew the write lease"));
        assertThat(logs.messages(Level.SEVERE)).isEmpty();
    }

    @Test
    void defaultSettings_renewOftenEnough_toRideOutAnOutageAsLongAsTheTimeout() {
        Duration ttl = Duration.ofSeconds(30);
        Duration timeout = Duration.ofSeconds(20);
        Duration interval = Lease.interval(ttl, timeout);

        // Trusted for 27 s after a renewal is sent: an outage starting just before the next renewal is due
        // must end more than s3.timeout before the trust runs out.
        assertThat(Duration.ofSeconds(27).minus(interval)).isGreaterThan(timeout);
        assertThat(interval).isGreaterThanOrEqualTo(Duration.ofSeconds(3));
    }

    @Test
    void lapsedThroughAnOutage_isRenewedAgain_whenTheObjectStillNamesUs() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(2), Duration.ofMillis(100));
        AtomicInteger renewedCalls = new AtomicInteger();
        AtomicInteger lostCalls = new AtomicInteger();
        lease.listen(renewedCalls::incrementAndGet, lostCalls::incrementAndGet);
        store.down(true);

        await(
                "the lapse to be logged",
                () -> logs.messages(Level.SEVERE).stream().anyMatch(m -> m.contains("its write lease lapsed")));
        assertThat(lease.valid()).isFalse();
        assertThat(lease.lost()).isFalse();
        assertThat(lease.invalidReason()).contains("lapsed").contains("the store is down");
        int renewedBefore = renewedCalls.get();
        store.down(false);

        await("the lease to be valid again", lease::valid);
        // The renewal thread makes the lease valid first, then runs the listener.
        await("the renewal listener to run", () -> renewedCalls.get() > renewedBefore);
        assertThat(lostCalls.get()).isZero();
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m).contains("renewed the write lease again after it lapsed"));
    }

    @Test
    void lapsedThroughAnOutage_andTakenByAnotherServer_isLostForGood() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(2), Duration.ofMillis(100));
        AtomicInteger lostCalls = new AtomicInteger();
        lease.listen(() -> {}, lostCalls::incrementAndGet);
        store.down(true);
        await("the lease to lapse", () -> !lease.valid());

        putLease(
                new LeaseHolder("other-server", "elsewhere", 7, null),
                Instant.now().plusSeconds(60));
        store.down(false);

        await("the lease to be lost", lease::lost);
        // The renewal thread marks the lease lost first, then runs the listener.
        await("the lost listener to run", () -> lostCalls.get() > 0);
        assertThat(lostCalls.get()).isEqualTo(1);
        assertThat(lease.valid()).isFalse();
        assertThat(lease.invalidReason()).contains("its write lease was taken by other-server");
        lease.close();
        assertThat(leaseObject()).contains("other-server");
    }

    @Test
    void restart_takesOverTheLeaseOfACrashedProcessOnThisMachine_atOnce() throws Exception {
        LeaseHolder local = LeaseHolder.local();
        assertThat(local.machine()).as("this test needs Linux's /proc").isNotNull();
        Process gone = new ProcessBuilder("true").start();
        assertThat(gone.waitFor(30, TimeUnit.SECONDS)).isTrue();
        putLease(
                new LeaseHolder("crashed-server", local.host(), gone.pid(), local.machine()),
                Instant.now().plusSeconds(60));

        Lease lease = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));

        assertThat(lease.valid()).isTrue();
        assertThat(leaseObject()).contains(lease.holder()).doesNotContain("crashed-server");
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m)
                        .contains("took over the write lease of crashed-server at once")
                        .contains("pid " + gone.pid() + " on this machine) no longer runs"));
    }

    @Test
    void liveProcessOrOtherMachine_isNotTakenOverEarly() {
        LeaseHolder local = LeaseHolder.local();
        long parent = ProcessHandle.current().parent().orElseThrow().pid();
        putLease(
                new LeaseHolder("live-server", local.host(), parent, local.machine()),
                Instant.now().plusSeconds(60));
        assertThatThrownBy(() -> acquire(Duration.ofSeconds(30), Duration.ofSeconds(1)))
                .hasMessageContaining("is being served for writing by live-server");

        putLease(
                new LeaseHolder("remote-server", local.host(), 999_999_999, "another-boot/pid:[1]"),
                Instant.now().plusSeconds(60));
        assertThatThrownBy(() -> acquire(Duration.ofSeconds(30), Duration.ofSeconds(1)))
                .hasMessageContaining("is being served for writing by remote-server");
    }

    @Test
    void leaseObject_recordsHostPidAndMachine() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));

        LeaseHolder.Held held = LeaseHolder.Held.parse(leaseObject().getBytes(StandardCharsets.UTF_8));

        assertThat(held.holder().name()).isEqualTo(lease.holder());
        assertThat(held.holder().pid()).isEqualTo(ProcessHandle.current().pid());
        assertThat(held.holder().machine()).isEqualTo(LeaseHolder.local().machine());
        assertThat(held.holder().deadHere()).isFalse();
        assertThat(held.expired()).isFalse();
    }

    /* --------------- release --------------- */

    @Test
    void close_releasesByOneConditionalPut_andTheObjectStaysMarkedReleased() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));
        int before = store.conditionalWrites();

        lease.close();

        assertThat(store.conditionalWrites() - before).isEqualTo(1);
        LeaseHolder.Held held = LeaseHolder.Held.parse(leaseObject().getBytes(StandardCharsets.UTF_8));
        assertThat(held.holder().name()).isEqualTo(lease.holder());
        assertThat(held.released()).isTrue();
        assertThat(held.expired()).isTrue();
        assertThat(leaseObject()).contains("\"releasedAt\": ").doesNotContain("ttlMillis");
        assertThat(logs.messages(Level.WARNING)).isEmpty();
    }

    @Test
    void releasedLease_isTakenOverAtOnce_withoutAWarning() throws Exception {
        Lease first = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));
        first.close();

        Lease second = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));

        assertThat(second.valid()).isTrue();
        LeaseHolder.Held held = LeaseHolder.Held.parse(leaseObject().getBytes(StandardCharsets.UTF_8));
        assertThat(held.holder().name()).isEqualTo(second.holder()).isNotEqualTo(first.holder());
        assertThat(held.released()).isFalse();
        assertThat(held.expired()).isFalse();
        assertThat(logs.messages(Level.WARNING)).isEmpty();
    }

    @Test
    void close_afterOurObjectChangedUnderUs_releasesItStill() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));
        // A renewal applied whose reply was lost: the object names us under an etag the lease does not know.
        store.set(NAMES.lease(), store.bytes(NAMES.lease()));

        lease.close();

        LeaseHolder.Held held = LeaseHolder.Held.parse(leaseObject().getBytes(StandardCharsets.UTF_8));
        assertThat(held.holder().name()).isEqualTo(lease.holder());
        assertThat(held.released()).isTrue();
    }

    @Test
    void close_afterAnotherServerTookTheLease_leavesItsObjectAlone() throws Exception {
        Lease lease = acquire(Duration.ofSeconds(30), Duration.ofSeconds(1));
        putLease(
                new LeaseHolder("other-server", "elsewhere", 7, null),
                Instant.now().plusSeconds(60));

        lease.close();

        LeaseHolder.Held held = LeaseHolder.Held.parse(leaseObject().getBytes(StandardCharsets.UTF_8));
        assertThat(held.holder().name()).isEqualTo("other-server");
        assertThat(held.released()).isFalse();
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m).contains("could not release the write lease"));
    }

    /** Waits until {@code condition} holds, failing after 20 s; for background work, not timings. */
    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out after 20 s waiting for " + what);
            }
            Thread.sleep(10);
        }
    }
}
