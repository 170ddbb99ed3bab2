package dev.mqnbd.server.log;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.System.Logger.Level;
import java.util.List;
import java.util.ResourceBundle;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** {@link RateLimitedLog} on a clock the test moves: no sleeping, no dependence on how fast the machine is. */
class RateLimitedLogTest {
    private static final long MS = TimeUnit.MILLISECONDS.toNanos(1);

    private final AtomicLong now = new AtomicLong(1_000 * MS);
    private final Lines lines = new Lines();
    private final RateLimitedLog log = new RateLimitedLog(lines, 200, TimeUnit.MILLISECONDS, now::get);

    @Test
    void log_atMostOncePerInterval() {
        int logged = 0;
        for (int i = 0; i < 1000; i++) {
            logged += log.log(Level.INFO, () -> "refused") ? 1 : 0;
            now.addAndGet(MS / 10);
        }
        assertThat(logged).isEqualTo(1);
        assertThat(lines.lines).containsExactly("refused");
    }

    @Test
    void log_afterTheInterval_logsAgainAndCountsWhatItHeldBack() {
        assertThat(log.log(Level.INFO, () -> "refused")).isTrue();
        now.addAndGet(199 * MS);
        assertThat(log.log(Level.INFO, () -> "held back")).isFalse();
        assertThat(log.log(Level.INFO, () -> "held back")).isFalse();

        now.addAndGet(MS);
        assertThat(log.log(Level.INFO, () -> "refused again")).isTrue();
        now.addAndGet(200 * MS);
        assertThat(log.log(Level.INFO, () -> "and again")).isTrue();

        assertThat(lines.lines)
                .containsExactly("refused", "refused again (2 similar messages suppressed)", "and again");
    }

    @Test
    void log_clockNearTheEndOfItsRange_comparesByDifference() {
        now.set(Long.MAX_VALUE - 50 * MS);
        RateLimitedLog wrapping = new RateLimitedLog(lines, 200, TimeUnit.MILLISECONDS, now::get);
        assertThat(wrapping.log(Level.INFO, () -> "first")).isTrue();
        now.addAndGet(100 * MS); // past Long.MAX_VALUE: negative, as System.nanoTime() may be
        assertThat(wrapping.log(Level.INFO, () -> "too soon")).isFalse();
        now.addAndGet(100 * MS);
        assertThat(wrapping.log(Level.INFO, () -> "second")).isTrue();
    }

    /** A logger that keeps what it is asked to log. */
    private static final class Lines implements System.Logger {
        final List<String> lines = new CopyOnWriteArrayList<>();

        @Override
        public String getName() {
            return "lines";
        }

        @Override
        public boolean isLoggable(Level level) {
            return true;
        }

        @Override
        public void log(Level level, ResourceBundle bundle, String msg, Throwable thrown) {
            lines.add(msg);
        }

        @Override
        public void log(Level level, ResourceBundle bundle, String format, Object... params) {
            lines.add(format);
        }
    }
}
