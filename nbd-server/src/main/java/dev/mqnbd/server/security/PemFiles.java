package dev.mqnbd.server.security;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads certificates and unencrypted private keys from PEM files, as certtool (GnuTLS) and openssl write
 * them: {@code CERTIFICATE}; keys as {@code PRIVATE KEY} (PKCS #8), {@code RSA PRIVATE KEY} (PKCS #1) or
 * {@code EC PRIVATE KEY} (SEC 1). The JDK reads only PKCS #8, so the other two are wrapped into it here.
 */
final class PemFiles {
    private static final Pattern BLOCK =
            Pattern.compile("-----BEGIN ([A-Z0-9 ]+)-----\\R(.*?)-----END \\1-----", Pattern.DOTALL);
    // DER: OID 1.2.840.113549.1.1.1 (rsaEncryption) and 1.2.840.10045.2.1 (id-ecPublicKey), tag and length included.
    private static final byte[] RSA_ENCRYPTION = {6, 9, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 1, 1, 1
    };
    private static final byte[] EC_PUBLIC_KEY = {6, 7, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 2, 1};
    private static final byte[] DER_NULL = {5, 0};
    private static final byte[] VERSION_0 = {2, 1, 0};

    private PemFiles() {}

    /** One PEM block: its label ({@code CERTIFICATE}) and its decoded body. */
    record Block(String label, String headers, byte[] der) {}

    static List<Block> read(Path file) throws IOException {
        String text = Files.readString(file, StandardCharsets.ISO_8859_1).replace("\r\n", "\n");
        List<Block> blocks = new ArrayList<>();
        Matcher m = BLOCK.matcher(text);
        while (m.find()) {
            String body = m.group(2);
            // RFC 1421 headers (Proc-Type, DEK-Info) end at the first empty line.
            String headers = "";
            int colon = body.indexOf(':');
            int blank = body.indexOf("\n\n");
            if (colon >= 0 && blank > colon) {
                headers = body.substring(0, blank);
                body = body.substring(blank + 2);
            }
            try {
                blocks.add(
                        new Block(m.group(1), headers, Base64.getMimeDecoder().decode(body)));
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": " + m.group(1) + ": bad base64: " + e.getMessage(), e);
            }
        }
        return blocks;
    }

    /** Reads every certificate in {@code file}, in order. */
    static List<X509Certificate> certificates(Path file) throws IOException {
        List<X509Certificate> result = new ArrayList<>();
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            for (Block block : read(file)) {
                if (block.label().equals("CERTIFICATE") || block.label().equals("X509 CERTIFICATE")) {
                    result.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(block.der())));
                }
            }
        } catch (CertificateException e) {
            throw new IOException(file + ": not a valid certificate: " + e.getMessage(), e);
        }
        if (result.isEmpty()) {
            throw new IOException(file + ": no PEM certificate (expected: -----BEGIN CERTIFICATE-----)");
        }
        return result;
    }

    /** Reads the one private key in {@code file}. */
    static PrivateKey privateKey(Path file) throws IOException {
        for (Block block : read(file)) {
            switch (block.label()) {
                case "PRIVATE KEY" -> {
                    return pkcs8(file, block.der(), "RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS");
                }
                case "RSA PRIVATE KEY" -> {
                    requireUnencrypted(file, block);
                    // PKCS #8: SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption, NULL }, OCTET STRING { PKCS #1 } }
                    byte[] algorithm = der(0x30, RSA_ENCRYPTION, DER_NULL);
                    return pkcs8(file, der(0x30, VERSION_0, algorithm, der(0x04, block.der())), "RSA");
                }
                case "EC PRIVATE KEY" -> {
                    requireUnencrypted(file, block);
                    // PKCS #8: SEQUENCE { INTEGER 0, SEQUENCE { id-ecPublicKey, curve OID }, OCTET STRING { SEC 1 } }
                    byte[] algorithm = der(0x30, EC_PUBLIC_KEY, sec1Curve(file, block.der()));
                    return pkcs8(file, der(0x30, VERSION_0, algorithm, der(0x04, block.der())), "EC");
                }
                case "ENCRYPTED PRIVATE KEY" -> throw encrypted(file);
                default -> {}
            }
        }
        throw new IOException(file + ": no PEM private key (expected: -----BEGIN PRIVATE KEY-----, "
                + "RSA PRIVATE KEY or EC PRIVATE KEY)");
    }

    private static void requireUnencrypted(Path file, Block block) throws IOException {
        if (block.headers().contains("ENCRYPTED")) {
            throw encrypted(file);
        }
    }

    private static IOException encrypted(Path file) {
        return new IOException(file + ": the private key is encrypted (expected: an unencrypted key; "
                + "decrypt it with: openssl pkey -in KEY -out KEY.pem)");
    }

    private static PrivateKey pkcs8(Path file, byte[] der, String... algorithms) throws IOException {
        for (String algorithm : algorithms) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException e) {
                // Try the next algorithm: PKCS #8 names its own, but KeyFactory must be asked by name.
            }
        }
        throw new IOException(file + ": unreadable private key (expected: RSA, EC, Ed25519 or Ed448)");
    }

    /**
     * Returns the curve OID (tag and length included) of a SEC 1 {@code ECPrivateKey}: SEQUENCE { INTEGER 1,
     * OCTET STRING key, [0] { OID curve } OPTIONAL, [1] BIT STRING OPTIONAL }.
     */
    private static byte[] sec1Curve(Path file, byte[] der) throws IOException {
        Der outer = new Der(der, 0);
        if (outer.tag != 0x30) {
            throw new IOException(file + ": EC PRIVATE KEY is not a DER SEQUENCE");
        }
        int p = outer.contentStart;
        while (p < outer.end) {
            Der field = new Der(der, p);
            if (field.tag == 0xa0) {
                Der oid = new Der(der, field.contentStart);
                if (oid.tag == 6) {
                    return Arrays.copyOfRange(der, field.contentStart, oid.end);
                }
            }
            p = field.end;
        }
        throw new IOException(file + ": EC PRIVATE KEY names no curve (expected: parameters with a named curve)");
    }

    /** One DER tag-length-value header, read at {@code offset}. */
    private static final class Der {
        final int tag;
        final int contentStart;
        final int end;

        Der(byte[] der, int offset) throws IOException {
            if (offset + 2 > der.length) {
                throw new IOException("DER: truncated at " + offset);
            }
            tag = der[offset] & 0xff;
            int length = der[offset + 1] & 0xff;
            int p = offset + 2;
            if (length >= 0x80) {
                int bytes = length & 0x7f;
                if (bytes == 0 || bytes > 3 || p + bytes > der.length) {
                    throw new IOException("DER: bad length at " + offset);
                }
                length = 0;
                for (int i = 0; i < bytes; i++) {
                    length = length << 8 | der[p++] & 0xff;
                }
            }
            contentStart = p;
            end = p + length;
            if (end > der.length) {
                throw new IOException("DER: length " + length + " at " + offset + " runs past the end");
            }
        }
    }

    /** Encodes tag, length and the concatenated {@code parts}. */
    private static byte[] der(int tag, byte[]... parts) {
        ByteArrayOutputStream content = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            content.writeBytes(part);
        }
        int n = content.size();
        ByteArrayOutputStream out = new ByteArrayOutputStream(n + 6);
        out.write(tag);
        if (n < 0x80) {
            out.write(n);
        } else if (n < 0x100) {
            out.write(0x81);
            out.write(n);
        } else if (n < 0x10000) {
            out.write(0x82);
            out.write(n >> 8);
            out.write(n);
        } else {
            out.write(0x83);
            out.write(n >> 16);
            out.write(n >> 8);
            out.write(n);
        }
        out.writeBytes(content.toByteArray());
        return out.toByteArray();
    }
}
