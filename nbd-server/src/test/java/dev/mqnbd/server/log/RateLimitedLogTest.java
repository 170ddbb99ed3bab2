package dev.mqnbd.server.log;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class RateLimitedLogTest {
    @Test
    void log_atMostOncePerInterval() throws InterruptedException {
        RateLimitedLog log = new RateLimitedLog(System.getLogger(RateLimitedLogTest.class.getName()), 200,
                TimeUnit.MILLISECONDS);

        int logged = 0;
        for (int i = 0; i < 1000; i++) {
            logged += log.log(System.Logger.Level.DEBUG, () -> "refused") ? 1 : 0;
        }
        assertThat(logged).isEqualTo(1);
        Thread.sleep(250);
        assertThat(log.log(System.Logger.Level.DEBUG, () -> "refused again")).isTrue();
    }
}
