package dev.mqnbd.server.cli;

import dev.mqnbd.server.protocol.NbdTls;
import dev.mqnbd.server.protocol.NbdTlsMode;
import dev.mqnbd.server.security.TlsCredentials;
import io.netty.handler.ssl.ClientAuth;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;

/** The {@code --tls*} options of {@code mqnbd serve}: NBD_OPT_STARTTLS with X.509 certificates from PEM files. */
final class TlsOptions {
    @Option(
            names = "--tls",
            paramLabel = "off|on|require",
            defaultValue = "off",
            converter = ModeConverter.class,
            description = "off: no TLS. on: clients may upgrade with STARTTLS. require: clients must, and learn "
                    + "nothing, not even export names, before they do (default: ${DEFAULT-VALUE}).")
    NbdTlsMode mode = NbdTlsMode.OFF;

    @Option(
            names = "--tls-certificates",
            paramLabel = "DIR",
            description = "Directory with server-cert.pem, server-key.pem and, to verify clients, ca-cert.pem: the "
                    + "layout qemu and nbdkit use.")
    @Nullable
    Path directory;

    @Option(
            names = "--tls-cert",
            paramLabel = "FILE",
            description = "Server certificate (PEM; intermediate CA certificates may follow); overrides DIR's.")
    @Nullable
    Path certificate;

    @Option(names = "--tls-key", paramLabel = "FILE", description = "Its private key (PEM, unencrypted).")
    @Nullable
    Path key;

    @Option(
            names = "--tls-ca",
            paramLabel = "FILE",
            description = "CA certificate(s) that client certificates must chain to; overrides DIR's.")
    @Nullable
    Path ca;

    @Option(
            names = "--tls-verify-peer",
            description =
                    "Require a client certificate issued by the CA: clients without one fail the TLS " + "handshake.")
    boolean verifyPeer;

    /**
     * Loads the credentials and returns the TLS to serve with.
     *
     * @param subjectRules whether some export admits clients by certificate subject: then certificates are
     *     asked for (and verified) even without {@code --tls-verify-peer}
     * @throws MqnbdCommand.UsageException if the options contradict each other
     * @throws IOException if a file is missing or unreadable
     */
    NbdTls build(boolean subjectRules) throws IOException {
        if (mode == NbdTlsMode.OFF) {
            String given = directory != null
                    ? "--tls-certificates"
                    : certificate != null
                            ? "--tls-cert"
                            : key != null
                                    ? "--tls-key"
                                    : ca != null
                                            ? "--tls-ca"
                                            : verifyPeer
                                                    ? "--tls-verify-peer"
                                                    : subjectRules ? "--allow-subject" : null;
            if (given != null) {
                throw new MqnbdCommand.UsageException(given + " needs --tls=on or --tls=require");
            }
            return NbdTls.off();
        }
        if (directory == null && (certificate == null || key == null)) {
            throw new MqnbdCommand.UsageException(
                    "--tls=" + mode + " needs --tls-certificates DIR, or --tls-cert FILE and --tls-key FILE");
        }
        Path certFile = certificate != null
                ? certificate
                : Objects.requireNonNull(directory).resolve(TlsCredentials.SERVER_CERT);
        Path keyFile = key != null ? key : Objects.requireNonNull(directory).resolve(TlsCredentials.SERVER_KEY);
        Path caFile = ca;
        if (caFile == null && directory != null && Files.exists(directory.resolve(TlsCredentials.CA_CERT))) {
            caFile = directory.resolve(TlsCredentials.CA_CERT);
        }
        if (caFile == null && (verifyPeer || subjectRules)) {
            throw new MqnbdCommand.UsageException((verifyPeer ? "--tls-verify-peer" : "--allow-subject")
                    + " needs the CA certificate: " + TlsCredentials.CA_CERT
                    + " in --tls-certificates DIR, or --tls-ca FILE");
        }
        TlsCredentials credentials;
        try {
            credentials = TlsCredentials.load(certFile, keyFile, caFile);
        } catch (IOException e) {
            throw new IOException("TLS: " + e.getMessage(), e);
        }
        ClientAuth clientAuth = verifyPeer ? ClientAuth.REQUIRE : subjectRules ? ClientAuth.OPTIONAL : ClientAuth.NONE;
        credentials
                .validityProblem()
                .ifPresent(problem -> ServeCommand.LOG.log(
                        System.Logger.Level.WARNING,
                        "TLS: " + problem + " (" + certFile + "): clients will refuse it"));
        ServeCommand.LOG.log(
                System.Logger.Level.INFO,
                "TLS " + mode + ": " + credentials + ", client certificates "
                        + switch (clientAuth) {
                            case REQUIRE -> "required and verified";
                            case OPTIONAL -> "verified when sent";
                            case NONE -> "not asked for";
                        });
        return NbdTls.of(mode, credentials.serverContext(clientAuth));
    }

    /** Parses {@code off}, {@code on} and {@code require}. */
    static final class ModeConverter implements ITypeConverter<NbdTlsMode> {
        @Override
        public NbdTlsMode convert(String value) {
            try {
                return NbdTlsMode.parse(value);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException("expected off, on or require, not '" + value + "'");
            }
        }
    }
}
