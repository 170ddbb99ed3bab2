package dev.mqnbd.server.security;

import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Arrays;
import java.util.regex.Pattern;

/**
 * An IPv4 or IPv6 address range in CIDR notation: {@code 10.0.0.0/8}, {@code 192.168.1.7} (one address),
 * {@code fd00::/8}, {@code ::1}. Host bits after the prefix are ignored ({@code 10.1.2.3/8} is {@code
 * 10.0.0.0/8}). IPv4-mapped IPv6 client addresses ({@code ::ffff:10.1.2.3}) are matched as the IPv4 address
 * they carry.
 *
 * <p><b>Threading:</b> immutable.
 */
public final class Cidr {
    // Only literals: InetAddress would otherwise take "10.1" for 10.0.0.1, or look a name up in the DNS.
    private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");
    private static final Pattern IPV6 = Pattern.compile("[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*");

    private final byte[] network;
    private final int prefixLength;

    private Cidr(byte[] network, int prefixLength) {
        this.network = network;
        this.prefixLength = prefixLength;
        // INVARIANT: the bits after the prefix are zero, so toString shows the network.
        for (int bit = prefixLength; bit < network.length * 8; bit++) {
            network[bit / 8] &= (byte) ~(0x80 >>> (bit % 8));
        }
    }

    /**
     * Parses {@code ADDRESS[/PREFIX]}; without a prefix the range is the one address.
     *
     * @throws IllegalArgumentException if {@code text} is not an IP literal with a prefix in range
     */
    public static Cidr parse(String text) {
        String t = text.strip();
        int slash = t.indexOf('/');
        String host = slash < 0 ? t : t.substring(0, slash);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        InetAddress address;
        boolean v6Text = IPV6.matcher(host).matches();
        if (!IPV4.matcher(host).matches() && !v6Text) {
            throw new IllegalArgumentException("address: " + text + " (expected: an IPv4 or IPv6 address, "
                    + "optionally /PREFIX, e.g. 10.0.0.0/8 or fd00::/8)");
        }
        try {
            address = InetAddress.ofLiteral(host);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("address: " + text + " (expected: an IPv4 or IPv6 address)", e);
        }
        int max = address.getAddress().length * 8;
        int prefix = max;
        if (slash >= 0) {
            String digits = t.substring(slash + 1);
            try {
                prefix = Integer.parseInt(digits);
            } catch (NumberFormatException e) {
                prefix = -1;
            }
            if (v6Text && address instanceof Inet4Address) {
                // ::ffff:a.b.c.d/N written as IPv6: the IPv4 prefix is N - 96.
                prefix -= 96;
            }
            if (prefix < 0 || prefix > max) {
                throw new IllegalArgumentException("prefix: " + text + " (expected: /0 to /" + max + ")");
            }
        }
        return new Cidr(address.getAddress(), prefix);
    }

    /** Returns whether {@code address} lies in this range. */
    public boolean contains(InetAddress address) {
        byte[] b = unmapped(address).getAddress();
        if (b.length != network.length) {
            return false;
        }
        int whole = prefixLength / 8;
        for (int i = 0; i < whole; i++) {
            if (b[i] != network[i]) {
                return false;
            }
        }
        int rest = prefixLength % 8;
        if (rest == 0) {
            return true;
        }
        int mask = 0xff00 >>> rest & 0xff;
        return (b[whole] & mask) == (network[whole] & mask);
    }

    /** Returns {@code address}, or the IPv4 address an IPv4-mapped IPv6 address ({@code ::ffff:a.b.c.d}) carries. */
    public static InetAddress unmapped(InetAddress address) {
        if (address instanceof Inet6Address v6) {
            byte[] b = v6.getAddress();
            for (int i = 0; i < 10; i++) {
                if (b[i] != 0) {
                    return address;
                }
            }
            if (b[10] == (byte) 0xff && b[11] == (byte) 0xff) {
                try {
                    return InetAddress.getByAddress(Arrays.copyOfRange(b, 12, 16));
                } catch (UnknownHostException e) {
                    throw new AssertionError("four bytes are an IPv4 address", e);
                }
            }
        }
        return address;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Cidr other && prefixLength == other.prefixLength && Arrays.equals(network, other.network);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(network) * 31 + prefixLength;
    }

    /** Returns the range as {@code 10.0.0.0/8} or {@code fd00:0:0:0:0:0:0:0/8}. */
    @Override
    public String toString() {
        try {
            return InetAddress.getByAddress(network).getHostAddress() + "/" + prefixLength;
        } catch (UnknownHostException e) {
            throw new AssertionError("4 or 16 bytes are an address", e);
        }
    }
}
