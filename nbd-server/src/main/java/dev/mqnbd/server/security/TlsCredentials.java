package dev.mqnbd.server.security;

import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * The server's TLS identity, read from PEM files: its certificate (with any intermediates), its private key,
 * and the CA certificates that client certificates are verified against.
 *
 * <p>The directory layout is the one qemu, nbdkit and libnbd share ({@link #fromDirectory}): {@code
 * server-cert.pem}, {@code server-key.pem} and, optionally, {@code ca-cert.pem}.
 *
 * <p><b>Threading:</b> immutable.
 */
public final class TlsCredentials {
    /** The file names in a credentials directory, as qemu's {@code tls-creds-x509} and nbdkit use them. */
    public static final String CA_CERT = "ca-cert.pem";

    public static final String SERVER_CERT = "server-cert.pem";
    public static final String SERVER_KEY = "server-key.pem";

    private final List<X509Certificate> chain;
    private final PrivateKey key;
    private final List<X509Certificate> trusted;

    private TlsCredentials(List<X509Certificate> chain, PrivateKey key, List<X509Certificate> trusted) {
        this.chain = List.copyOf(chain);
        this.key = key;
        this.trusted = List.copyOf(trusted);
    }

    /**
     * Reads {@code server-cert.pem}, {@code server-key.pem} and, if present, {@code ca-cert.pem} from {@code
     * directory}.
     *
     * @throws IOException if a file is missing or unreadable, or the key does not match the certificate
     */
    public static TlsCredentials fromDirectory(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) {
            throw new IOException(directory + ": not a directory (expected: one holding " + SERVER_CERT + ", "
                    + SERVER_KEY + " and optionally " + CA_CERT + ")");
        }
        Path ca = directory.resolve(CA_CERT);
        return load(directory.resolve(SERVER_CERT), directory.resolve(SERVER_KEY), Files.exists(ca) ? ca : null);
    }

    /**
     * Reads the credentials from separate files.
     *
     * @param certificate the server certificate, followed by any intermediate CA certificates
     * @param key the certificate's private key, unencrypted
     * @param ca the CA certificates client certificates must chain to; {@code null} for none
     * @throws IOException if a file is missing or unreadable, or the key does not match the certificate
     */
    public static TlsCredentials load(Path certificate, Path key, @Nullable Path ca) throws IOException {
        List<X509Certificate> chain = PemFiles.certificates(requireFile(certificate));
        PrivateKey privateKey = PemFiles.privateKey(requireFile(key));
        checkPair(chain.getFirst(), privateKey, certificate, key);
        List<X509Certificate> trusted = ca == null ? List.of() : PemFiles.certificates(requireFile(ca));
        return new TlsCredentials(chain, privateKey, trusted);
    }

    private static Path requireFile(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IOException(file + ": no such file");
        }
        if (!Files.isReadable(file)) {
            throw new IOException(file + ": not readable");
        }
        return file;
    }

    /** Signs a probe with the key and verifies it with the certificate: a mismatch fails here, not in handshakes. */
    private static void checkPair(X509Certificate certificate, PrivateKey key, Path certFile, Path keyFile)
            throws IOException {
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            case "Ed25519", "Ed448", "EdDSA" -> key.getAlgorithm();
            default -> null;
        };
        if (algorithm == null) {
            return;
        }
        byte[] probe = "mqnbd key check".getBytes(StandardCharsets.US_ASCII);
        try {
            Signature signer = Signature.getInstance(algorithm);
            signer.initSign(key);
            signer.update(probe);
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance(algorithm);
            verifier.initVerify(certificate.getPublicKey());
            verifier.update(probe);
            if (verifier.verify(signature)) {
                return;
            }
        } catch (GeneralSecurityException e) {
            // A key of another type than the certificate's: a mismatch too.
        }
        throw new IOException(keyFile + ": the private key does not belong to the certificate in " + certFile);
    }

    /** Returns the server certificate. */
    public X509Certificate certificate() {
        return chain.getFirst();
    }

    /** Returns whether CA certificates were given, so that client certificates can be verified. */
    public boolean hasCa() {
        return !trusted.isEmpty();
    }

    /** Returns why the server certificate is not valid now, if it is not: expired or not yet valid. */
    public Optional<String> validityProblem() {
        try {
            certificate().checkValidity();
            return Optional.empty();
        } catch (CertificateExpiredException e) {
            return Optional.of(
                    "the server certificate expired on " + certificate().getNotAfter());
        } catch (CertificateNotYetValidException e) {
            return Optional.of(
                    "the server certificate is valid only from " + certificate().getNotBefore());
        }
    }

    /**
     * Builds the server context: the JDK's TLS 1.3 and 1.2.
     *
     * @param clientAuth {@code NONE} asks for no client certificate; {@code OPTIONAL} asks for one and
     *     verifies it if sent; {@code REQUIRE} fails the handshake without a valid one
     * @throws IllegalStateException if client certificates are to be verified but no CA was given
     * @throws IOException if the JDK refuses the credentials
     */
    public SslContext serverContext(ClientAuth clientAuth) throws IOException {
        if (clientAuth != ClientAuth.NONE && trusted.isEmpty()) {
            throw new IllegalStateException(
                    "verifying client certificates needs the CA certificate (" + CA_CERT + " or --tls-ca)");
        }
        SslContextBuilder builder = SslContextBuilder.forServer(key, chain.toArray(X509Certificate[]::new))
                .sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2")
                .clientAuth(clientAuth);
        if (!trusted.isEmpty()) {
            try {
                builder.trustManager(new ClientCaTrust(trusted));
            } catch (GeneralSecurityException e) {
                throw new IOException("CA certificates: " + e.getMessage(), e);
            }
        }
        return builder.build();
    }

    @Override
    public String toString() {
        List<String> parts = new ArrayList<>();
        parts.add("certificate " + certificate().getSubjectX500Principal().getName());
        parts.add(trusted.isEmpty() ? "no CA" : trusted.size() + " CA certificate" + (trusted.size() == 1 ? "" : "s"));
        return String.join(", ", parts);
    }
}
