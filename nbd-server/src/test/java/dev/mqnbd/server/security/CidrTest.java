package dev.mqnbd.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetAddress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class CidrTest {
    private static InetAddress ip(String literal) {
        return InetAddress.ofLiteral(literal);
    }

    @ParameterizedTest
    @CsvSource({
        "10.0.0.0/8, 10.255.1.2, true",
        "10.0.0.0/8, 11.0.0.0, false",
        "10.1.2.3/8, 10.9.9.9, true",
        "192.168.1.7, 192.168.1.7, true",
        "192.168.1.7, 192.168.1.8, false",
        "192.168.1.7/32, 192.168.1.7, true",
        "172.16.0.0/12, 172.31.255.255, true",
        "172.16.0.0/12, 172.32.0.0, false",
        "0.0.0.0/0, 203.0.113.9, true",
        "0.0.0.0/0, ::1, false",
        "127.0.0.1/32, ::ffff:127.0.0.1, true",
        "::1, ::1, true",
        "::1/128, 127.0.0.1, false",
        "fd00::/8, fd12:3456::1, true",
        "fd00::/8, fe80::1, false",
        "fe80::/10, febf::1, true",
        "fe80::/10, fec0::1, false",
        "2001:db8::/33, 2001:db8:7fff::1, true",
        "2001:db8::/33, 2001:db8:8000::1, false",
        "[::1]/128, ::1, true",
        "::ffff:10.0.0.0/104, 10.20.30.40, true",
        "::/0, 10.0.0.1, false",
    })
    void contains(String cidr, String address, boolean expected) {
        assertThat(Cidr.parse(cidr).contains(ip(address)))
                .as("%s contains %s", cidr, address)
                .isEqualTo(expected);
    }

    @Test
    void toString_showsNetwork() {
        assertThat(Cidr.parse("10.1.2.3/8")).hasToString("10.0.0.0/8");
        assertThat(Cidr.parse("192.168.1.7")).hasToString("192.168.1.7/32");
        assertThat(Cidr.parse("fd00::1/8").toString()).isEqualTo("fd00:0:0:0:0:0:0:0/8");
        assertThat(Cidr.parse(" 10.0.0.0/8 ")).isEqualTo(Cidr.parse("10.0.0.0/8"));
    }

    @ParameterizedTest
    @ValueSource(
            strings = {
                "",
                "localhost",
                "example.com",
                "10.1",
                "10.0.0.0/33",
                "10.0.0.0/-1",
                "10.0.0.0/x",
                "::1/129",
                "256.0.0.1",
                "1.2.3.4.5",
                "10.0.0.0/8/8",
                "fe80::1%eth0",
                "*"
            })
    void parse_rejectsAnythingButLiterals(String text) {
        assertThatThrownBy(() -> Cidr.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(text.strip().isEmpty() ? "address" : text.strip());
    }

    @Test
    void unmapped_turnsMappedIntoIpv4() {
        assertThat(Cidr.unmapped(ip("::ffff:192.0.2.1"))).isEqualTo(ip("192.0.2.1"));
        assertThat(Cidr.unmapped(ip("::1"))).isEqualTo(ip("::1"));
        assertThat(Cidr.unmapped(ip("10.0.0.1"))).isEqualTo(ip("10.0.0.1"));
    }
}
