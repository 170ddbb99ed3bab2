package dev.mqnbd.server.security;

import dev.mqnbd.server.protocol.NbdPeer;
import io.netty.channel.unix.DomainSocketAddress;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.util.ArrayList;
import java.util.List;
import javax.security.auth.x500.X500Principal;

/**
 * Who may use one export: clients whose address lies in one of the {@link Cidr} ranges (any address when
 * there are none) and, when subjects are given, whose verified TLS client certificate matches one of the
 * {@link SubjectPattern}s. A client without TLS, or without a certificate, never matches a subject.
 *
 * <p>Unix-socket clients are local: they match an address list that admits the loopback address ({@code
 * 127.0.0.1} or {@code ::1}).
 *
 * <p><b>Threading:</b> immutable.
 */
public final class AccessList {
    /** Admits everyone. */
    public static final AccessList ANYONE = new AccessList(List.of(), List.of());

    private static final InetAddress LOOPBACK_V4 = InetAddress.ofLiteral("127.0.0.1");
    private static final InetAddress LOOPBACK_V6 = InetAddress.ofLiteral("::1");

    private final List<Cidr> addresses;
    private final List<SubjectPattern> subjects;

    private AccessList(List<Cidr> addresses, List<SubjectPattern> subjects) {
        this.addresses = List.copyOf(addresses);
        this.subjects = List.copyOf(subjects);
    }

    /** Returns the list admitting clients in {@code addresses} (any if empty) matching {@code subjects} (any if empty). */
    public static AccessList of(List<Cidr> addresses, List<SubjectPattern> subjects) {
        return addresses.isEmpty() && subjects.isEmpty() ? ANYONE : new AccessList(addresses, subjects);
    }

    /** Returns a list with the ranges and subjects of both: it admits what either list's rules admit, per kind. */
    public AccessList plus(AccessList other) {
        List<Cidr> a = new ArrayList<>(addresses);
        a.addAll(other.addresses);
        List<SubjectPattern> s = new ArrayList<>(subjects);
        s.addAll(other.subjects);
        return of(a, s);
    }

    /** Returns whether this list admits {@code peer}. */
    public boolean allows(NbdPeer peer) {
        if (!addresses.isEmpty() && !addressAllowed(peer.address())) {
            return false;
        }
        if (subjects.isEmpty()) {
            return true;
        }
        X500Principal subject = peer.subject();
        return subject != null && subjects.stream().anyMatch(s -> s.matches(subject));
    }

    private boolean addressAllowed(SocketAddress address) {
        if (address instanceof InetSocketAddress inet && inet.getAddress() != null) {
            return addresses.stream().anyMatch(c -> c.contains(inet.getAddress()));
        }
        if (address instanceof DomainSocketAddress || address instanceof UnixDomainSocketAddress) {
            return addresses.stream().anyMatch(c -> c.contains(LOOPBACK_V4) || c.contains(LOOPBACK_V6));
        }
        // An address of no known kind matches no range.
        return false;
    }

    /** Returns whether this list requires a client certificate. */
    public boolean needsSubject() {
        return !subjects.isEmpty();
    }

    /** Describes the rules for logs: {@code addresses [10.0.0.0/8], subjects [CN alice]}, or {@code anyone}. */
    @Override
    public String toString() {
        if (addresses.isEmpty() && subjects.isEmpty()) {
            return "anyone";
        }
        List<String> parts = new ArrayList<>();
        if (!addresses.isEmpty()) {
            parts.add("addresses " + addresses);
        }
        if (!subjects.isEmpty()) {
            parts.add("subjects " + subjects);
        }
        return String.join(", ", parts);
    }
}
