package dev.mqnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.unix.DomainSocketAddress;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class ConnectionLimiterTest {
    private final List<EmbeddedChannel> channels = new ArrayList<>();

    @AfterEach
    void tearDown() {
        channels.forEach(EmbeddedChannel::finishAndReleaseAll);
    }

    /** An embedded channel that claims to come from {@code remote}. */
    private EmbeddedChannel from(SocketAddress remote) {
        EmbeddedChannel ch = new EmbeddedChannel() {
            @Override
            protected SocketAddress remoteAddress0() {
                return remote;
            }
        };
        channels.add(ch);
        return ch;
    }

    private static SocketAddress tcp(String ip, int port) {
        return new InetSocketAddress(InetAddress.ofLiteral(ip), port);
    }

    /** Acquires for {@code ch} and marks it in transmission, as the server does once an export is chosen. */
    private static boolean inTransmission(ConnectionLimiter limiter, EmbeddedChannel ch) {
        boolean acquired = limiter.tryAcquire(ch);
        if (acquired) {
            limiter.transmissionStarted(ch);
        }
        return acquired;
    }

    @Test
    void total_refusesTheOneTooMany_untilOneCloses() {
        ConnectionLimiter limiter = new ConnectionLimiter(3, 0);
        List<EmbeddedChannel> open = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            EmbeddedChannel ch = from(tcp("10.0.0." + (i + 1), 1000));
            assertThat(inTransmission(limiter, ch)).isTrue();
            open.add(ch);
        }

        assertThat(limiter.tryAcquire(from(tcp("10.0.0.9", 1000)))).isFalse();
        assertThat(limiter.connections()).isEqualTo(3);
        open.getFirst().close();
        assertThat(limiter.connections()).isEqualTo(2);
        assertThat(limiter.tryAcquire(from(tcp("10.0.0.9", 1000)))).isTrue();
    }

    @Test
    void perClient_countsEachAddress_ipv4MappedAsIpv4() {
        ConnectionLimiter limiter = new ConnectionLimiter(100, 2);

        EmbeddedChannel a1 = from(tcp("10.0.0.1", 1));
        assertThat(inTransmission(limiter, a1)).isTrue();
        assertThat(inTransmission(limiter, from(tcp("::ffff:10.0.0.1", 2)))).isTrue();
        assertThat(limiter.tryAcquire(from(tcp("10.0.0.1", 3))))
                .as("third from 10.0.0.1")
                .isFalse();
        assertThat(inTransmission(limiter, from(tcp("10.0.0.2", 4))))
                .as("another client")
                .isTrue();
        assertThat(inTransmission(limiter, from(tcp("::1", 5)))).isTrue();
        assertThat(limiter.connections()).isEqualTo(4);

        a1.close();
        assertThat(limiter.tryAcquire(from(tcp("10.0.0.1", 6)))).isTrue();
    }

    @Test
    void unixClients_countOnlyTowardsTheTotal() {
        ConnectionLimiter limiter = new ConnectionLimiter(5, 1);

        for (int i = 0; i < 5; i++) {
            assertThat(inTransmission(limiter, from(new DomainSocketAddress("/run/mqnbd.sock"))))
                    .isTrue();
        }
        assertThat(limiter.tryAcquire(from(new DomainSocketAddress("/run/mqnbd.sock"))))
                .isFalse();
    }

    @Test
    void total_overTheCap_evictsTheOldestHandshake_notTransmission() {
        ConnectionLimiter limiter = new ConnectionLimiter(3, 0);
        EmbeddedChannel working = from(tcp("10.0.0.1", 1));
        assertThat(inTransmission(limiter, working)).isTrue();
        EmbeddedChannel oldest = from(tcp("10.0.0.2", 2));
        EmbeddedChannel younger = from(tcp("10.0.0.3", 3));
        assertThat(limiter.tryAcquire(oldest)).isTrue();
        assertThat(limiter.tryAcquire(younger)).isTrue();

        EmbeddedChannel newcomer = from(tcp("10.0.0.4", 4));
        assertThat(limiter.tryAcquire(newcomer)).isTrue();

        assertThat(oldest.isOpen()).isFalse();
        assertThat(younger.isOpen()).isTrue();
        assertThat(working.isOpen()).isTrue();
        assertThat(limiter.connections()).isEqualTo(3);
        assertThat(limiter.handshakes()).isEqualTo(2);
    }

    @Test
    void perClient_stalledHandshakesFromOneAddress_neverLockThatAddressOut() {
        ConnectionLimiter limiter = new ConnectionLimiter(1000, 64);
        List<EmbeddedChannel> stalled = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            EmbeddedChannel ch = from(tcp("10.0.0.1", 1000 + i));
            assertThat(limiter.tryAcquire(ch)).isTrue();
            stalled.add(ch);
        }
        assertThat(limiter.connections()).isEqualTo(64);
        assertThat(stalled.stream().filter(EmbeddedChannel::isOpen).count()).isEqualTo(64);

        EmbeddedChannel good = from(tcp("10.0.0.1", 9999));
        assertThat(inTransmission(limiter, good)).isTrue();
        assertThat(good.isOpen()).isTrue();
        // Other addresses are not touched by one address's cap.
        EmbeddedChannel other = from(tcp("10.0.0.2", 1));
        assertThat(limiter.tryAcquire(other)).isTrue();
        assertThat(limiter.connections()).isEqualTo(65);
    }
}
