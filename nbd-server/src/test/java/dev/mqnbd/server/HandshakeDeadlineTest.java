package dev.mqnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class HandshakeDeadlineTest {
    private static final RateLimitedLog LOG =
            new RateLimitedLog(System.getLogger(HandshakeDeadlineTest.class.getName()), 1, TimeUnit.SECONDS);

    /** A channel whose clock moves only when the test advances it: a slow test run must not reach a deadline. */
    private static EmbeddedChannel frozen(HandshakeDeadline deadline) {
        EmbeddedChannel ch = new EmbeddedChannel();
        ch.freezeTime();
        ch.pipeline().addLast(deadline);
        return ch;
    }

    @Test
    void silentClient_closedAtTheDeadline() {
        EmbeddedChannel ch = frozen(new HandshakeDeadline(TimeUnit.SECONDS.toNanos(10), LOG));

        ch.advanceTimeBy(9_999, TimeUnit.MILLISECONDS);
        ch.runScheduledPendingTasks();
        assertThat(ch.isOpen()).isTrue();
        ch.advanceTimeBy(1, TimeUnit.MILLISECONDS);
        ch.runScheduledPendingTasks();

        assertThat(ch.isOpen()).isFalse();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void removedBeforeTheDeadline_neverCloses() {
        EmbeddedChannel ch = frozen(new HandshakeDeadline(TimeUnit.SECONDS.toNanos(1), LOG));

        ch.pipeline().remove(HandshakeDeadline.class);
        ch.advanceTimeBy(1, TimeUnit.HOURS);
        ch.runScheduledPendingTasks();

        assertThat(ch.isOpen()).isTrue();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void trafficDoesNotExtendTheDeadline() {
        EmbeddedChannel ch = frozen(new HandshakeDeadline(TimeUnit.SECONDS.toNanos(2), LOG));

        for (int i = 0; i < 3; i++) {
            ch.writeInbound(io.netty.buffer.Unpooled.wrappedBuffer(new byte[] {1}));
            ((io.netty.buffer.ByteBuf) ch.readInbound()).release();
            ch.advanceTimeBy(700, TimeUnit.MILLISECONDS);
            ch.runScheduledPendingTasks();
        }

        assertThat(ch.isOpen()).isFalse();
        ch.finishAndReleaseAll();
    }

    @Test
    void format_secondsOrMillis() {
        assertThat(HandshakeDeadline.format(TimeUnit.SECONDS.toNanos(10))).isEqualTo("10 s");
        assertThat(HandshakeDeadline.format(TimeUnit.MILLISECONDS.toNanos(1500)))
                .isEqualTo("1500 ms");
    }
}
