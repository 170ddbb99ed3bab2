package dev.mqnbd.filter;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The rate filter's buckets on a clock the test moves. */
class RateBudgetTest {
    private static final long MS = 1_000_000;

    /** Offers a request every {@code stepNanos} for {@code nanos}; returns how many were let through. */
    private static int admitted(RateBudget budget, long bytes, long stepNanos, long nanos) {
        int n = 0;
        for (long t = 0; t < nanos; t += stepNanos) {
            if (budget.tryAcquire(bytes, t)) {
                n++;
            }
        }
        return n;
    }

    @Test
    void iops_holdsOverTenSeconds_afterOneBurst() {
        RateBudget budget = new RateBudget(5000, 0, 100 * MS);
        budget.reset(0);
        // Offered 100,000 per second; 5,000 per second pass, plus the 100 ms burst (500) at the start.
        int n = admitted(budget, 4096, 10_000, 10_000 * MS);
        assertThat(n).isBetween(50_000 + 500 - 2, 50_000 + 500 + 2);
    }

    @Test
    void bandwidth_holds_andBigRequestsPayTheirWholeCost() {
        RateBudget budget = new RateBudget(0, 10 << 20, 10 * MS);
        budget.reset(0);
        // 1 MiB requests at 10 MiB/s: 10 a second (one more for the burst that starts full).
        int n = admitted(budget, 1 << 20, MS, 10_000 * MS);
        assertThat(n).isBetween(100, 102);
    }

    @Test
    void bothLimits_theTighterOneWins_andDatalessRequestsPayOnlyTheRequestRate() {
        RateBudget budget = new RateBudget(1000, 1 << 20, 0);
        budget.reset(0);
        assertThat(admitted(budget, 64 << 10, 100_000, 1_000 * MS)).isBetween(16, 17); // 1 MiB/s of 64 KiB
        RateBudget flushes = new RateBudget(1000, 1 << 20, 0);
        flushes.reset(0);
        assertThat(admitted(flushes, 0, 100_000, 1_000 * MS)).isBetween(999, 1001);
    }

    @Test
    void refused_takesNothing() {
        RateBudget budget = new RateBudget(1, 0, 0);
        budget.reset(0);
        assertThat(budget.tryAcquire(0, 0)).isTrue();
        for (int i = 0; i < 100; i++) {
            assertThat(budget.tryAcquire(0, 1)).isFalse();
        }
        assertThat(budget.tryAcquire(0, 1_000_000_000L)).isTrue();
    }
}
