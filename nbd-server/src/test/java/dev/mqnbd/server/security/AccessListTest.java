package dev.mqnbd.server.security;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.protocol.NbdPeer;
import io.netty.channel.unix.DomainSocketAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.util.List;
import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.Test;

class AccessListTest {
    private static final X500Principal ALICE = new X500Principal("CN=alice,O=test");
    private static final X500Principal BOB = new X500Principal("CN=bob,O=test");

    private static NbdPeer tcp(String ip, X500Principal subject) {
        return new NbdPeer(new InetSocketAddress(java.net.InetAddress.ofLiteral(ip), 40000), subject != null, subject);
    }

    private static AccessList addresses(String... cidrs) {
        return AccessList.of(List.of(cidrs).stream().map(Cidr::parse).toList(), List.of());
    }

    @Test
    void anyone_allowsEveryone() {
        assertThat(AccessList.ANYONE.allows(tcp("203.0.113.1", null))).isTrue();
        assertThat(AccessList.of(List.of(), List.of())).isSameAs(AccessList.ANYONE);
        assertThat(AccessList.ANYONE).hasToString("anyone");
    }

    @Test
    void addresses_ipv4AndIpv6() {
        AccessList list = addresses("10.0.0.0/8", "fd00::/8");

        assertThat(list.allows(tcp("10.1.2.3", null))).isTrue();
        assertThat(list.allows(tcp("fd00::5", null))).isTrue();
        assertThat(list.allows(tcp("127.0.0.1", null))).isFalse();
        assertThat(list.allows(tcp("::1", null))).isFalse();
        assertThat(list.allows(tcp("::ffff:10.9.9.9", null))).isTrue();
    }

    @Test
    void unixSocketClients_areLoopback() {
        SocketAddress netty = new DomainSocketAddress("/run/mqnbd.sock");
        SocketAddress jdk = UnixDomainSocketAddress.of("/run/mqnbd.sock");

        for (SocketAddress unix : List.of(netty, jdk)) {
            assertThat(addresses("127.0.0.0/8").allows(new NbdPeer(unix, false, null)))
                    .isTrue();
            assertThat(addresses("::1").allows(new NbdPeer(unix, false, null))).isTrue();
            assertThat(addresses("10.0.0.0/8").allows(new NbdPeer(unix, false, null)))
                    .isFalse();
            assertThat(AccessList.ANYONE.allows(new NbdPeer(unix, false, null))).isTrue();
        }
    }

    @Test
    void unknownAddressKinds_matchNoRange() {
        SocketAddress odd = new SocketAddress() {
            private static final long serialVersionUID = 1L;
        };

        assertThat(addresses("0.0.0.0/0", "::/0").allows(new NbdPeer(odd, false, null)))
                .isFalse();
        assertThat(addresses("0.0.0.0/0").allows(new NbdPeer(null, false, null)))
                .isFalse();
    }

    @Test
    void subjects_needAVerifiedCertificate() {
        AccessList list = AccessList.of(List.of(), List.of(SubjectPattern.parse("alice")));

        assertThat(list.allows(tcp("127.0.0.1", ALICE))).isTrue();
        assertThat(list.allows(tcp("127.0.0.1", BOB))).isFalse();
        assertThat(list.allows(tcp("127.0.0.1", null))).isFalse();
        assertThat(list.needsSubject()).isTrue();
    }

    @Test
    void addressesAndSubjects_bothMustMatch() {
        AccessList list = AccessList.of(List.of(Cidr.parse("127.0.0.1")), List.of(SubjectPattern.parse("alice")));

        assertThat(list.allows(tcp("127.0.0.1", ALICE))).isTrue();
        assertThat(list.allows(tcp("127.0.0.2", ALICE))).isFalse();
        assertThat(list.allows(tcp("127.0.0.1", BOB))).isFalse();
        assertThat(list).hasToString("addresses [127.0.0.1/32], subjects [CN alice]");
    }

    @Test
    void plus_unitesRulesOfEachKind() {
        AccessList every = addresses("10.0.0.0/8");
        AccessList own = AccessList.of(List.of(Cidr.parse("192.168.0.0/16")), List.of(SubjectPattern.parse("bob")));

        AccessList both = every.plus(own);

        assertThat(both.allows(tcp("10.0.0.1", BOB))).isTrue();
        assertThat(both.allows(tcp("192.168.3.4", BOB))).isTrue();
        assertThat(both.allows(tcp("172.16.0.1", BOB))).isFalse();
        assertThat(both.allows(tcp("10.0.0.1", ALICE))).isFalse();
        assertThat(AccessList.ANYONE.plus(AccessList.ANYONE)).isSameAs(AccessList.ANYONE);
    }
}
