package dev.mqnbd.server.protocol;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** The server-wide bound on partial WRITE payloads: who is closed over it, who is not, and the decoder's part. */
class PayloadBudgetTest {
    private static final long MS = 1_000_000L;

    private final AtomicLong clock = new AtomicLong(1_000 * MS);
    private final List<String> evicted = new ArrayList<>();

    private final AtomicBoolean othersWait = new AtomicBoolean();

    private PayloadBudget budget(long limit) {
        return new PayloadBudget(
                limit,
                (channel, held, pendingNanos, total, max, slow) ->
                        evicted.add(channel.id().asShortText() + " held " + held + " for " + pendingNanos / MS
                                + " ms, total " + total + " of " + max + (slow ? ", slow" : "")),
                clock::get,
                othersWait::get);
    }

    /** A new connection whose payload has begun to arrive: {@code bytes} of it held against {@code budget}. */
    private static EmbeddedChannel holding(PayloadBudget budget, long bytes) {
        EmbeddedChannel ch = new EmbeddedChannel();
        budget.share(ch).hold(bytes);
        return ch;
    }

    @Test
    void underTheLimit_nothingCloses_heldIsTheSum() {
        PayloadBudget budget = budget(1000);
        EmbeddedChannel a = new EmbeddedChannel();
        EmbeddedChannel b = new EmbeddedChannel();
        PayloadBudget.Share sa = budget.share(a);
        PayloadBudget.Share sb = budget.share(b);
        sa.hold(400);
        clock.addAndGet(5_000 * MS);
        sb.hold(300);
        sa.hold(700); // more of a's payload arrived: 700 + 300 = 1000, at the limit
        assertThat(budget.held()).isEqualTo(1000);
        assertThat(evicted).isEmpty();
        assertThat(a.isOpen()).isTrue();
        sa.release();
        assertThat(budget.held()).isEqualTo(300);
        sb.release();
        sb.release(); // twice is harmless
        assertThat(budget.held()).isZero();
    }

    @Test
    void whileOthersWaitForRoom_aPayloadArrivingSlowerThanTheMinimumCloses_notOneTheServerStoppedReading() {
        PayloadBudget budget = budget(1L << 30);
        long mib = 1 << 20;
        EmbeddedChannel nothing = holding(budget, 0); // its header announced a payload, then no byte came
        EmbeddedChannel trickle = new EmbeddedChannel();
        PayloadBudget.Share st = budget.share(trickle);
        st.hold(1024);
        EmbeddedChannel steady = new EmbeddedChannel();
        PayloadBudget.Share ss = budget.share(steady);
        ss.hold(mib);
        EmbeddedChannel paused = holding(budget, mib);
        clock.addAndGet(1_500 * MS);
        budget.sweep();
        othersWait.set(true);
        budget.sweep(); // the counts start here
        assertThat(evicted)
                .as("nobody waited, then the first sweep under waiting")
                .isEmpty();

        clock.addAndGet(1_000 * MS);
        st.hold(2048); // 1 KiB in a second
        ss.hold(2 * mib); // 1 MiB in a second
        paused.config().setAutoRead(false); // the server stopped reading it (no tag, no room, replies unread)
        budget.sweep();
        assertThat(nothing.isOpen()).isFalse();
        assertThat(trickle.isOpen()).isFalse();
        assertThat(steady.isOpen()).isTrue();
        assertThat(paused.isOpen()).isTrue();
        long total = 3 * mib + 2048;
        assertThat(evicted)
                .containsExactly(
                        nothing.id().asShortText() + " held 0 for 2500 ms, total " + total + " of " + (1L << 30)
                                + ", slow",
                        trickle.id().asShortText() + " held 2048 for 2500 ms, total " + total + " of " + (1L << 30)
                                + ", slow");
        assertThat(budget.held()).isEqualTo(3 * mib);

        // Read again, its count starts again; a payload that came fast and then stopped closes at the next sweep.
        paused.config().setAutoRead(true);
        clock.addAndGet(1_000 * MS);
        ss.hold(3 * mib);
        budget.sweep();
        assertThat(paused.isOpen()).isTrue();
        assertThat(steady.isOpen()).isTrue();
        clock.addAndGet(1_000 * MS);
        ss.hold(3 * mib + 1000);
        budget.sweep();
        assertThat(steady.isOpen()).isFalse();
        assertThat(paused.isOpen()).isFalse();
        assertThat(evicted).hasSize(4).allMatch(line -> line.endsWith(", slow"));
    }

    @Test
    void overTheLimit_theOldestPastTheGraceCloses_newerOnesStay() {
        PayloadBudget budget = budget(1000);
        EmbeddedChannel oldest = holding(budget, 400);
        clock.addAndGet(10 * MS);
        EmbeddedChannel older = holding(budget, 400);
        clock.addAndGet(2_000 * MS);
        EmbeddedChannel recent = new EmbeddedChannel();
        PayloadBudget.Share sr = budget.share(recent);
        sr.hold(100);
        assertThat(evicted).isEmpty();
        sr.hold(300); // 1100 > 1000: the oldest goes, which is enough
        assertThat(oldest.isOpen()).isFalse();
        assertThat(older.isOpen()).isTrue();
        assertThat(recent.isOpen()).isTrue();
        assertThat(budget.held()).isEqualTo(700);
        assertThat(evicted).containsExactly(oldest.id().asShortText() + " held 400 for 2010 ms, total 1100 of 1000");
    }

    @Test
    void overTheLimit_severalClosedUntilWithin_inTheOrderTheyBegan() {
        PayloadBudget budget = budget(1000);
        List<Channel> channels = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            channels.add(holding(budget, 250));
            clock.addAndGet(1_500 * MS);
        }
        EmbeddedChannel big = holding(budget, 700); // 1700: the first three must go to get within 1000
        assertThat(channels.stream().map(Channel::isOpen)).containsExactly(false, false, false, true);
        assertThat(big.isOpen()).isTrue();
        assertThat(budget.held()).isEqualTo(950);
        assertThat(evicted).hasSize(3);
    }

    @Test
    void overTheLimit_allWithinTheGrace_nothingCloses() {
        PayloadBudget budget = budget(1000);
        EmbeddedChannel a = holding(budget, 600);
        clock.addAndGet(999 * MS);
        EmbeddedChannel b = holding(budget, 600);
        assertThat(a.isOpen()).isTrue();
        assertThat(b.isOpen()).isTrue();
        assertThat(budget.held()).isEqualTo(1200);
        assertThat(evicted).isEmpty();
    }

    @Test
    void pastTwiceTheLimit_theOldestClose_evenWithinTheGrace() {
        PayloadBudget budget = budget(1000);
        EmbeddedChannel a = holding(budget, 800);
        clock.addAndGet(10 * MS);
        EmbeddedChannel b = holding(budget, 800);
        clock.addAndGet(10 * MS);
        // 2400 > 2000: a goes; 1600 is over the bound but within twice it and the grace
        EmbeddedChannel c = holding(budget, 800);
        assertThat(a.isOpen()).isFalse();
        assertThat(b.isOpen()).isTrue();
        assertThat(c.isOpen()).isTrue();
        assertThat(budget.held()).isEqualTo(1600);
        assertThat(evicted).containsExactly(a.id().asShortText() + " held 800 for 20 ms, total 2400 of 1000");
    }

    @Test
    void sweep_closesStalledPayloadsOnceTheGraceIsOver_withoutMoreArriving() {
        PayloadBudget budget = budget(1000);
        EmbeddedChannel a = holding(budget, 600);
        EmbeddedChannel b = holding(budget, 600); // both stall within the grace: over the bound, nothing closed yet
        budget.sweep();
        assertThat(a.isOpen()).isTrue();
        clock.addAndGet(1_000 * MS);
        budget.sweep();
        assertThat(a.isOpen()).isFalse();
        assertThat(b.isOpen()).isTrue();
        assertThat(budget.held()).isEqualTo(600);
        budget.sweep(); // within the bound: nothing more
        assertThat(b.isOpen()).isTrue();
    }

    @Test
    void aClosedShare_holdsNothingMore() {
        PayloadBudget budget = budget(100);
        EmbeddedChannel a = new EmbeddedChannel();
        PayloadBudget.Share sa = budget.share(a);
        sa.hold(60);
        clock.addAndGet(2_000 * MS);
        holding(budget, 60);
        assertThat(a.isOpen()).isFalse();
        sa.hold(90); // the closed connection's decoder may run once more: it counts for nothing
        assertThat(budget.held()).isEqualTo(60);
    }

    @Test
    void limit_mustBePositive() {
        assertThatThrownBy(() -> budget(0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void decoder_countsAPartialPayload_releasesItWhenWholeOrClosed() {
        PayloadBudget budget = budget(1 << 20);
        EmbeddedChannel ch = new EmbeddedChannel(new NbdRequestDecoder(1024, false, budget));
        byte[] payload = new byte[1000];
        Arrays.fill(payload, (byte) 7);
        byte[] frame = Frames.request(0, NbdCommand.WRITE.code(), 1, 0, payload.length, payload);
        ch.writeInbound(Unpooled.wrappedBuffer(frame, 0, 28 + 600));
        assertThat(budget.held()).isEqualTo(600);
        assertThat((Object) ch.readInbound()).isNull();
        ch.writeInbound(Unpooled.wrappedBuffer(frame, 28 + 600, 400));
        assertThat(budget.held()).isZero();
        NbdRequest rq = ch.readInbound();
        assertThat(rq.length()).isEqualTo(1000);
        rq.release();

        ch.writeInbound(Unpooled.wrappedBuffer(frame, 0, 28 + 10));
        assertThat(budget.held()).isEqualTo(10);
        ch.close();
        assertThat(budget.held()).isZero();
    }

    @Test
    void decoder_overTheBudget_closesTheStalledConnection() {
        PayloadBudget budget = budget(1500);
        EmbeddedChannel stalled = new EmbeddedChannel(new NbdRequestDecoder(1024, false, budget));
        EmbeddedChannel writer = new EmbeddedChannel(new NbdRequestDecoder(1024, false, budget));
        byte[] payload = new byte[1000];
        byte[] frame = Frames.request(0, NbdCommand.WRITE.code(), 1, 0, payload.length, payload);
        stalled.writeInbound(Unpooled.wrappedBuffer(frame, 0, 28 + 900));
        clock.addAndGet(3_000 * MS);
        writer.writeInbound(Unpooled.wrappedBuffer(frame, 0, 28 + 700));
        assertThat(stalled.isOpen()).isFalse();
        assertThat(writer.isOpen()).isTrue();
        writer.writeInbound(Unpooled.wrappedBuffer(frame, 28 + 700, 300));
        NbdRequest rq = writer.readInbound();
        assertThat(rq.length()).isEqualTo(1000);
        rq.release();
        assertThat(budget.held()).isZero();
        writer.finishAndReleaseAll();
    }
}
