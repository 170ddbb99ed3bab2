package dev.mqnbd.server.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.NbdServerConfig;
import dev.mqnbd.server.protocol.NbdPeer;
import dev.mqnbd.server.protocol.NbdTls;
import dev.mqnbd.server.protocol.NbdTlsMode;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.server.testing.TestPki;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The TLS, access-control and limit options of {@code mqnbd serve}, parsed as picocli parses them. */
class SecurityOptionsTest {
    private static final List<String> EXPORTS = List.of("", "disk", "admin");

    @TempDir
    Path tmp;

    private static ServeCommand parse(String... args) {
        ServeCommand command = new ServeCommand();
        new CommandLine(command).parseArgs(args);
        return command;
    }

    private static NbdPeer peer(String ip, String subject) {
        return new NbdPeer(
                new InetSocketAddress(InetAddress.ofLiteral(ip), 1234),
                subject != null,
                subject == null ? null : new X500Principal(subject));
    }

    /* --------------- defaults --------------- */

    @Test
    void defaults_tlsOffNoAclsAndTheDocumentedLimits() throws Exception {
        ServeCommand command = parse();

        assertThat(command.tls.mode).isEqualTo(NbdTlsMode.OFF);
        assertThat(command.tls.build(false)).isSameAs(NbdTls.off());
        assertThat(command.access.build(EXPORTS)).isEmpty();
        NbdServerConfig config =
                command.limits.applyTo(NbdServerConfig.builder()).build();
        assertThat(config.handshakeTimeout()).isEqualTo(Duration.ofSeconds(10));
        assertThat(config.maxConnections()).isEqualTo(1024);
        assertThat(config.maxConnectionsPerClient()).isEqualTo(64);
    }

    /* --------------- --allow, --allow-subject --------------- */

    @Test
    void allow_perExportAndEveryExport() {
        Map<String, AccessList> acls = parse(
                        "--allow", "disk=192.168.1.0/24,fd00::/8", "--allow", "10.0.0.0/8", "--allow", "=127.0.0.1")
                .access
                .build(EXPORTS);

        assertThat(acls).containsOnlyKeys("", "disk", "admin");
        assertThat(acls.get("disk").allows(peer("192.168.1.9", null))).isTrue();
        assertThat(acls.get("disk").allows(peer("fd00::9", null))).isTrue();
        assertThat(acls.get("disk").allows(peer("10.1.1.1", null)))
                .as("every export's range")
                .isTrue();
        assertThat(acls.get("disk").allows(peer("127.0.0.1", null))).isFalse();
        assertThat(acls.get("").allows(peer("127.0.0.1", null)))
                .as("default export")
                .isTrue();
        assertThat(acls.get("admin").allows(peer("10.1.1.1", null))).isTrue();
        assertThat(acls.get("admin").allows(peer("192.168.1.9", null))).isFalse();
    }

    @Test
    void allowSubject_dnOrCn_starForEveryExport() {
        Map<String, AccessList> acls = parse("--allow-subject", "admin=CN=alice,O=Example", "--allow-subject", "*=ops")
                .access
                .build(EXPORTS);

        assertThat(acls.get("admin").allows(peer("10.0.0.1", "CN=alice,O=Example")))
                .isTrue();
        assertThat(acls.get("admin").allows(peer("10.0.0.1", "CN=ops,O=Example")))
                .isTrue();
        assertThat(acls.get("admin").allows(peer("10.0.0.1", "CN=alice,O=Other")))
                .isFalse();
        assertThat(acls.get("disk").allows(peer("10.0.0.1", "CN=alice,O=Example")))
                .isFalse();
        assertThat(acls.get("disk").allows(peer("10.0.0.1", null))).isFalse();
    }

    @Test
    void allow_mistakes_areUsageErrors() {
        assertThatThrownBy(() -> parse("--allow", "nosuch=10.0.0.0/8").access.build(EXPORTS))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("no export is named \"nosuch\"");
        assertThatThrownBy(() -> parse("--allow", "disk=10.0.0.0/8,").access.build(EXPORTS))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--allow disk=10.0.0.0/8,");
        assertThatThrownBy(() -> parse("--allow", "disk=example.com").access.build(EXPORTS))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("example.com");
        assertThatThrownBy(() -> parse("--allow-subject", "alice").access.build(EXPORTS))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("expected NAME=SUBJECT");
        assertThatThrownBy(() -> parse("--allow-subject", "CN=alice").access.build(EXPORTS))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("no export is named \"CN\"");
    }

    /* --------------- --tls* --------------- */

    @Test
    void tls_contradictions_areUsageErrors() {
        assertThatThrownBy(() -> parse("--tls-certificates", "/x").tls.build(false))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("needs --tls=on or --tls=require");
        assertThatThrownBy(() -> parse().tls.build(true))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--allow-subject needs --tls");
        assertThatThrownBy(() -> parse("--tls=require").tls.build(false))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--tls-certificates DIR");
        assertThatThrownBy(() -> parse("--tls=on", "--tls-cert", "/c.pem").tls.build(false))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--tls-key");
        assertThatThrownBy(() -> new CommandLine(new ServeCommand()).parseArgs("--tls=maybe"))
                .isInstanceOf(CommandLine.ParameterException.class)
                .hasMessageContaining("off, on or require");
    }

    @Test
    void tls_verifyPeerOrSubjects_needACa() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), TestPki.KeyFormat.PKCS8);
        java.nio.file.Files.delete(dir.resolve("ca-cert.pem"));

        assertThat(parse("--tls=on", "--tls-certificates", dir.toString())
                        .tls
                        .build(false)
                        .mode())
                .isEqualTo(NbdTlsMode.ON);
        assertThatThrownBy(() -> parse("--tls=on", "--tls-certificates", dir.toString(), "--tls-verify-peer")
                        .tls
                        .build(false))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("ca-cert.pem");
        assertThatThrownBy(() -> parse("--tls=on", "--tls-certificates", dir.toString())
                        .tls
                        .build(true))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--allow-subject needs the CA");
    }

    @Test
    void tls_separateFilesOverrideTheDirectory() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), TestPki.KeyFormat.PKCS8);
        Path otherDir = ca.writeServerDirectory(tmp.resolve("other"), ca.server("CN=other"), TestPki.KeyFormat.PKCS8);

        NbdTls tls = parse(
                        "--tls=require",
                        "--tls-cert",
                        dir.resolve("server-cert.pem").toString(),
                        "--tls-key",
                        dir.resolve("server-key.pem").toString(),
                        "--tls-ca",
                        otherDir.resolve("ca-cert.pem").toString(),
                        "--tls-verify-peer")
                .tls
                .build(false);

        assertThat(tls.mode()).isEqualTo(NbdTlsMode.REQUIRE);
        assertThatThrownBy(() -> parse(
                                "--tls=require",
                                "--tls-certificates",
                                dir.toString(),
                                "--tls-key",
                                otherDir.resolve("server-key.pem").toString())
                        .tls
                        .build(false))
                .isInstanceOf(java.io.IOException.class)
                .hasMessageContaining("does not belong");
    }

    /* --------------- limits --------------- */

    @Test
    void limits_parseAndCheck() {
        NbdServerConfig config = parse(
                        "--handshake-timeout", "1500ms", "--max-connections", "8", "--max-connections-per-client", "0")
                .limits
                .applyTo(NbdServerConfig.builder())
                .build();

        assertThat(config.handshakeTimeout()).isEqualTo(Duration.ofMillis(1500));
        assertThat(config.maxConnections()).isEqualTo(8);
        assertThat(config.maxConnectionsPerClient()).isZero();
        assertThat(LimitOptions.parseDuration("x", "0")).isZero();
        assertThat(LimitOptions.parseDuration("x", "2m")).isEqualTo(Duration.ofMinutes(2));
        assertThat(LimitOptions.parseDuration("x", "30")).isEqualTo(Duration.ofSeconds(30));
        assertThatThrownBy(() -> LimitOptions.parseDuration("--handshake-timeout", "soon"))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--handshake-timeout soon");
        assertThatThrownBy(() -> parse("--max-connections", "0").limits.applyTo(NbdServerConfig.builder()))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--max-connections 0");
    }

    @Test
    void payloadMemory_defaultsToZeroForTheServersOwnChoice_takesSizes_refusesTinyOrJunk() {
        assertThat(parse().limits.applyTo(NbdServerConfig.builder()).build().payloadMemory())
                .isZero();
        assertThat(parse("--payload-memory", "512M")
                        .limits
                        .applyTo(NbdServerConfig.builder())
                        .build()
                        .payloadMemory())
                .isEqualTo(512L << 20);
        assertThatThrownBy(() -> parse("--payload-memory", "64K").limits.applyTo(NbdServerConfig.builder()))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--payload-memory 64K (expected: 0, or 1M or more)");
        assertThatThrownBy(() -> parse("--payload-memory", "lots").limits.applyTo(NbdServerConfig.builder()))
                .isInstanceOf(MqnbdCommand.UsageException.class)
                .hasMessageContaining("--payload-memory lots");
    }

    @Test
    void help_documentsEveryNewOptionWithExamples() {
        StringWriter out = new StringWriter();
        CommandLine cli = MqnbdCommand.commandLine();
        cli.setOut(new PrintWriter(out));
        cli.execute("serve", "--help");

        assertThat(out.toString())
                .contains(
                        "--tls=off|on|require",
                        "--tls-certificates=DIR",
                        "--tls-verify-peer",
                        "--allow=[NAME=]CIDR[,CIDR...]",
                        "--allow-subject=NAME=SUBJECT",
                        "--handshake-timeout=DURATION",
                        "--max-connections=N",
                        "--max-connections-per-client=N",
                        "--payload-memory=SIZE",
                        "Security examples:",
                        "--allow-subject admin=alice",
                        "(default: 10s)");
    }
}
