package dev.mqnbd.server.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.testing.TestPki;
import dev.mqnbd.server.testing.TestPki.KeyFormat;
import dev.mqnbd.server.testing.TestPki.KeyType;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class TlsCredentialsTest {
    @TempDir
    Path tmp;

    @ParameterizedTest
    @CsvSource({"EC_P256, PKCS8", "EC_P256, TRADITIONAL", "RSA_2048, PKCS8", "RSA_2048, TRADITIONAL"})
    void fromDirectory_readsEveryKeyFormat(KeyType type, KeyFormat format) throws IOException {
        TestPki.Ca ca = TestPki.newCa("CN=test CA", type);
        TestPki.Issued server = ca.server("CN=localhost");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), server, format);
        String label = Files.readString(dir.resolve("server-key.pem"))
                .lines()
                .findFirst()
                .orElseThrow();
        assertThat(label)
                .isEqualTo(
                        format == KeyFormat.PKCS8
                                ? "-----BEGIN PRIVATE KEY-----"
                                : type == KeyType.RSA_2048
                                        ? "-----BEGIN RSA PRIVATE KEY-----"
                                        : "-----BEGIN EC PRIVATE KEY-----");

        TlsCredentials credentials = TlsCredentials.fromDirectory(dir);

        assertThat(credentials.certificate()).isEqualTo(server.certificate());
        assertThat(credentials.hasCa()).isTrue();
        assertThat(credentials.validityProblem()).isEmpty();
        SslContext context = credentials.serverContext(ClientAuth.REQUIRE);
        assertThat(context.isServer()).isTrue();
    }

    @Test
    void fromDirectory_withoutCa_cannotVerifyClients() throws IOException {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), KeyFormat.PKCS8);
        Files.delete(dir.resolve("ca-cert.pem"));

        TlsCredentials credentials = TlsCredentials.fromDirectory(dir);

        assertThat(credentials.hasCa()).isFalse();
        assertThat(credentials.serverContext(ClientAuth.NONE).isServer()).isTrue();
        assertThatThrownBy(() -> credentials.serverContext(ClientAuth.OPTIONAL))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("ca-cert.pem");
    }

    @Test
    void load_certificateChainWithCrlfLineEnds() throws IOException {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        TestPki.Issued server = ca.server("CN=localhost");
        Path cert = tmp.resolve("chain.pem");
        Files.writeString(cert, (server.certificatePem() + ca.certificatePem()).replace("\n", "\r\n"));
        Path key = tmp.resolve("key.pem");
        Files.writeString(key, server.keyPem(KeyFormat.TRADITIONAL).replace("\n", "\r\n"));

        TlsCredentials credentials = TlsCredentials.load(cert, key, null);

        assertThat(credentials.certificate()).isEqualTo(server.certificate());
        assertThat(credentials).hasToString("certificate CN=localhost, no CA");
    }

    @Test
    void load_keyOfAnotherCertificate_fails() {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), KeyFormat.PKCS8);
        Path otherKey = tmp.resolve("other-key.pem");
        writeUnchecked(otherKey, ca.server("CN=other").keyPem(KeyFormat.PKCS8));

        assertThatThrownBy(() -> TlsCredentials.load(dir.resolve("server-cert.pem"), otherKey, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("does not belong");
    }

    @Test
    void load_missingOrWrongFiles_sayWhich() {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), KeyFormat.PKCS8);
        Path cert = dir.resolve("server-cert.pem");
        Path key = dir.resolve("server-key.pem");

        assertThatThrownBy(() -> TlsCredentials.fromDirectory(tmp.resolve("nosuch")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("not a directory");
        assertThatThrownBy(() -> TlsCredentials.load(tmp.resolve("none.pem"), key, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("none.pem: no such file");
        assertThatThrownBy(() -> TlsCredentials.load(key, key, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("no PEM certificate");
        assertThatThrownBy(() -> TlsCredentials.load(cert, cert, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("no PEM private key");
        Path encrypted = tmp.resolve("encrypted.pem");
        writeUnchecked(encrypted, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n");
        assertThatThrownBy(() -> TlsCredentials.load(cert, encrypted, null))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("encrypted");
    }

    @Test
    void validityProblem_expiredCertificate() throws IOException {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), TestPki.expiredServer(ca, "CN=old"), KeyFormat.PKCS8);

        assertThat(TlsCredentials.fromDirectory(dir).validityProblem())
                .hasValueSatisfying(p -> assertThat(p).contains("expired"));
    }

    private static void writeUnchecked(Path file, String text) {
        try {
            Files.writeString(file, text);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
