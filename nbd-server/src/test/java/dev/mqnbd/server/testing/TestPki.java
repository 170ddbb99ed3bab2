package dev.mqnbd.server.testing;

import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.concurrent.atomic.AtomicLong;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.DERBitString;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.util.io.pem.PemObject;

/**
 * Certificates for the TLS tests, made on the fly: a CA, server certificates for {@code localhost}, {@code
 * 127.0.0.1} and {@code ::1}, and client certificates, written as PEM in the directory layouts that qemu,
 * nbdkit and libnbd use ({@code ca-cert.pem}, {@code server-cert.pem}, {@code server-key.pem}; {@code
 * client-cert.pem}, {@code client-key.pem}). The extensions are those GnuTLS and qemu's sanity checks expect.
 */
public final class TestPki {
    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());
    private static final SecureRandom RANDOM = new SecureRandom();

    private TestPki() {}

    /** The kind of key pair. */
    public enum KeyType {
        EC_P256,
        RSA_2048
    }

    /** How a private key is written: PKCS #8 ({@code PRIVATE KEY}) or OpenSSL's traditional PKCS #1 / SEC 1. */
    public enum KeyFormat {
        PKCS8,
        TRADITIONAL
    }

    /** A certificate and its key pair. */
    public record Issued(X509Certificate certificate, KeyPair keys) {
        /** Returns the certificate as PEM. */
        public String certificatePem() {
            return pem(certificate);
        }

        /** Returns the private key as PEM in {@code format}. */
        public String keyPem(KeyFormat format) {
            try {
                if (keys.getPrivate() instanceof ECPrivateKey ec) {
                    // SEC 1 as openssl writes it, with the curve and the public key: GnuTLS 3.7 needs the public
                    // key, which the JDK's encoding leaves out.
                    PrivateKeyInfo info = PrivateKeyInfo.getInstance(ec.getEncoded());
                    ASN1Encodable curve = info.getPrivateKeyAlgorithm().getParameters();
                    DERBitString point = new DERBitString(
                            SubjectPublicKeyInfo.getInstance(keys.getPublic().getEncoded())
                                    .getPublicKeyData()
                                    .getBytes());
                    int bits = ec.getParams().getOrder().bitLength();
                    var sec1 = new org.bouncycastle.asn1.sec.ECPrivateKey(bits, ec.getS(), point, curve);
                    if (format == KeyFormat.PKCS8) {
                        return pem(new PemObject(
                                "PRIVATE KEY", new PrivateKeyInfo(info.getPrivateKeyAlgorithm(), sec1).getEncoded()));
                    }
                    return pem(new PemObject("EC PRIVATE KEY", sec1.getEncoded()));
                }
                return format == KeyFormat.PKCS8 ? pem(new JcaPKCS8Generator(keys.getPrivate(), null)) : pem(keys);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** A certificate authority that issues server and client certificates. */
    public static final class Ca {
        private final Issued self;
        private final KeyType keyType;

        private Ca(Issued self, KeyType keyType) {
            this.self = self;
            this.keyType = keyType;
        }

        public X509Certificate certificate() {
            return self.certificate();
        }

        public String certificatePem() {
            return self.certificatePem();
        }

        /** Issues a server certificate for localhost, 127.0.0.1 and ::1. */
        public Issued server(String subject) {
            return issue(subject, keyType, false, KeyPurposeId.id_kp_serverAuth, true);
        }

        /** Issues a client certificate. */
        public Issued client(String subject) {
            return issue(subject, keyType, false, KeyPurposeId.id_kp_clientAuth, false);
        }

        /** Issues a client certificate with a key of {@code type}. */
        public Issued client(String subject, KeyType type) {
            return issue(subject, type, false, KeyPurposeId.id_kp_clientAuth, false);
        }

        private Issued issue(String subject, KeyType type, boolean ca, KeyPurposeId purpose, boolean serverNames) {
            return TestPki.issue(subject, newKeyPair(type), self, ca, purpose, serverNames, Duration.ofDays(2));
        }

        /**
         * Writes {@code ca-cert.pem}, {@code server-cert.pem} and {@code server-key.pem} (in {@code format})
         * into {@code dir}, creating it.
         */
        public Path writeServerDirectory(Path dir, Issued server, KeyFormat format) {
            write(dir.resolve("ca-cert.pem"), certificatePem());
            write(dir.resolve("server-cert.pem"), server.certificatePem());
            write(dir.resolve("server-key.pem"), server.keyPem(format));
            return dir;
        }

        /**
         * Writes {@code ca-cert.pem} (this CA, which the client trusts) and, unless {@code client} is null,
         * {@code client-cert.pem} and {@code client-key.pem} into {@code dir}, creating it.
         */
        public Path writeClientDirectory(Path dir, Issued client) {
            write(dir.resolve("ca-cert.pem"), certificatePem());
            if (client != null) {
                write(dir.resolve("client-cert.pem"), client.certificatePem());
                write(dir.resolve("client-key.pem"), client.keyPem(KeyFormat.PKCS8));
            }
            return dir;
        }

        /**
         * Returns a client context that trusts this CA and, unless {@code client} is null, presents it. Its
         * handlers must be made with {@code newHandler(alloc, "localhost", port)}: the client checks the name.
         */
        public SslContext clientContext(Issued client) {
            try {
                SslContextBuilder builder = SslContextBuilder.forClient()
                        .sslProvider(SslProvider.JDK)
                        .trustManager(certificate());
                if (client != null) {
                    builder.keyManager(client.keys().getPrivate(), client.certificate());
                }
                return builder.build();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** Creates a CA whose certificates carry keys of {@code type}. */
    public static Ca newCa(String subject, KeyType type) {
        KeyPair keys = newKeyPair(type);
        Issued self = issue(subject, keys, null, true, null, false, Duration.ofDays(3));
        return new Ca(self, type);
    }

    /** Creates a CA with EC P-256 keys. */
    public static Ca newCa(String subject) {
        return newCa(subject, KeyType.EC_P256);
    }

    /** Issues a certificate that expired a day ago, signed by {@code ca}. */
    public static Issued expiredServer(Ca ca, String subject) {
        return issue(
                subject,
                newKeyPair(ca.keyType),
                ca.self,
                false,
                KeyPurposeId.id_kp_serverAuth,
                true,
                Duration.ofDays(-1));
    }

    public static KeyPair newKeyPair(KeyType type) {
        try {
            if (type == KeyType.RSA_2048) {
                KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
                generator.initialize(2048, RANDOM);
                return generator.generateKeyPair();
            }
            KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
            generator.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
            return generator.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Issues a certificate for {@code keys}; self-signed when {@code issuer} is null. */
    private static Issued issue(
            String subject,
            KeyPair keys,
            Issued issuer,
            boolean ca,
            KeyPurposeId purpose,
            boolean serverNames,
            Duration validFor) {
        try {
            Instant now = Instant.now();
            // An expired certificate (negative validFor) ended |validFor| ago and began two days before that.
            Instant notBefore = validFor.isNegative()
                    ? now.plus(validFor).minus(Duration.ofDays(2))
                    : now.minus(Duration.ofDays(1));
            Instant notAfter = now.plus(validFor);
            // Through the JDK's parser: BouncyCastle's would store the RDNs in the reverse order.
            X500Name subjectName = X500Name.getInstance(new X500Principal(subject).getEncoded());
            X500Name issuerName = issuer == null
                    ? subjectName
                    : X500Name.getInstance(
                            issuer.certificate().getSubjectX500Principal().getEncoded());
            X509v3CertificateBuilder builder = new JcaX509v3CertificateBuilder(
                    issuerName,
                    BigInteger.valueOf(SERIAL.incrementAndGet()),
                    Date.from(notBefore),
                    Date.from(notAfter),
                    subjectName,
                    keys.getPublic());
            JcaX509ExtensionUtils utils = new JcaX509ExtensionUtils();
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(ca));
            builder.addExtension(
                    Extension.keyUsage,
                    true,
                    ca
                            ? new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign)
                            : new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
            builder.addExtension(
                    Extension.subjectKeyIdentifier, false, utils.createSubjectKeyIdentifier(keys.getPublic()));
            if (issuer != null) {
                builder.addExtension(
                        Extension.authorityKeyIdentifier,
                        false,
                        utils.createAuthorityKeyIdentifier(issuer.certificate()));
            }
            if (purpose != null) {
                builder.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(purpose));
            }
            if (serverNames) {
                builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[] {
                    new GeneralName(GeneralName.dNSName, "localhost"),
                    new GeneralName(GeneralName.iPAddress, "127.0.0.1"),
                    new GeneralName(GeneralName.iPAddress, "::1"),
                }));
            }
            KeyPair signer = issuer == null ? keys : issuer.keys();
            String algorithm = signer.getPrivate().getAlgorithm().equals("RSA") ? "SHA256withRSA" : "SHA256withECDSA";
            X509Certificate certificate = new JcaX509CertificateConverter()
                    .getCertificate(builder.build(new JcaContentSignerBuilder(algorithm).build(signer.getPrivate())));
            return new Issued(certificate, keys);
        } catch (GeneralSecurityException | IOException | OperatorCreationException e) {
            throw new IllegalStateException("cannot issue " + subject, e);
        }
    }

    private static String pem(Object object) {
        StringWriter out = new StringWriter();
        try (JcaPEMWriter writer = new JcaPEMWriter(out)) {
            writer.writeObject(object);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }

    private static void write(Path file, String text) {
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(file, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
