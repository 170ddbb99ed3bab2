package dev.mqnbd.storage.s3;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.HexFormat;
import java.util.Map;
import java.util.SortedMap;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * AWS Signature Version 4 of one S3 request, header-based ({@code Authorization: AWS4-HMAC-SHA256 ...}),
 * as <a href="https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html">the S3
 * documentation</a> specifies it: the canonical request (method, URI, query, the signed headers, the
 * payload's SHA-256 or {@code UNSIGNED-PAYLOAD}), the string to sign over its hash, and an HMAC-SHA256
 * with the day's signing key. The signing key (four HMACs from the secret) is computed once per day,
 * region and secret and kept, so a request costs one SHA-256 of its canonical request and one HMAC.
 *
 * <p>S3's canonical URI is the path as sent: each segment URI-encoded once ({@link #encodePath}), not
 * twice as other services expect.
 *
 * <p><b>Threading:</b> safe for concurrent use; the cached key is replaced atomically.
 */
final class SigV4 {
    /** The payload hash of a request signed without its body. */
    static final String UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

    /** The SHA-256 of no bytes: the payload hash of a GET. */
    static final String EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    static final DateTimeFormatter AMZ_DATE =
            DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);

    private static final HexFormat HEX = HexFormat.of();

    private final String region;
    private final String service;

    /** The signing key of one day: (secret, day) and its key. */
    private record DayKey(String secret, String day, byte[] key) {}

    private volatile DayKey cached = new DayKey("", "", new byte[0]);

    SigV4(String region, String service) {
        this.region = region;
        this.service = service;
    }

    /**
     * Signs a request and returns its {@code Authorization} header value.
     *
     * @param method the HTTP method, e.g. {@code PUT}
     * @param canonicalUri the path as sent, already encoded ({@link #encodePath})
     * @param headers every header to sign, names in lower case, sorted: at least {@code host}, {@code
     *     x-amz-date} and {@code x-amz-content-sha256}, and every other {@code x-amz-*} sent
     * @param payloadHash the body's SHA-256 in lower-case hex, or {@link #UNSIGNED_PAYLOAD}
     * @param amzDate the {@code x-amz-date} value ({@link #AMZ_DATE})
     */
    String authorization(
            String accessKey,
            String secretKey,
            String method,
            String canonicalUri,
            SortedMap<String, String> headers,
            String payloadHash,
            String amzDate) {
        StringBuilder canonical = new StringBuilder(256)
                .append(method)
                .append('\n')
                .append(canonicalUri)
                .append('\n')
                .append('\n'); // no query
        StringBuilder signed = new StringBuilder(96);
        for (Map.Entry<String, String> h : headers.entrySet()) {
            canonical.append(h.getKey()).append(':').append(trim(h.getValue())).append('\n');
            if (!signed.isEmpty()) {
                signed.append(';');
            }
            signed.append(h.getKey());
        }
        canonical.append('\n').append(signed).append('\n').append(payloadHash);
        String day = amzDate.substring(0, 8);
        String scope = day + "/" + region + "/" + service + "/aws4_request";
        String toSign = "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + sha256Hex(canonical);
        String signature = HEX.formatHex(hmac(signingKey(secretKey, day), toSign));
        return "AWS4-HMAC-SHA256 Credential=" + accessKey + "/" + scope + ", SignedHeaders=" + signed + ", Signature="
                + signature;
    }

    /** Returns the signing key of {@code day}, computing it once per day and secret. */
    private byte[] signingKey(String secret, String day) {
        DayKey k = cached;
        if (k.day.equals(day) && k.secret.equals(secret)) {
            return k.key;
        }
        byte[] key = hmac(("AWS4" + secret).getBytes(StandardCharsets.UTF_8), day);
        key = hmac(key, region);
        key = hmac(key, service);
        key = hmac(key, "aws4_request");
        cached = new DayKey(secret, day, key);
        return key;
    }

    /** Returns the {@code x-amz-date} of {@code now}. */
    static String amzDate(Instant now) {
        return AMZ_DATE.format(now);
    }

    /** Returns the SHA-256 of {@code data} in lower-case hex. */
    static String sha256Hex(byte[] data) {
        return HEX.formatHex(sha256().digest(data));
    }

    private static String sha256Hex(CharSequence text) {
        return sha256Hex(text.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256 is missing from this Java runtime", e);
        }
    }

    private static byte[] hmac(byte[] key, String data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data.getBytes(StandardCharsets.UTF_8));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is missing from this Java runtime", e);
        }
    }

    /** Trims a header value and collapses runs of spaces inside it, as canonical headers want. */
    static String trim(String value) {
        String v = value.strip();
        if (!v.contains("  ")) {
            return v;
        }
        return v.replaceAll(" +", " ");
    }

    /**
     * URI-encodes an object path as S3 wants it in the request line and the canonical request: every byte
     * of its UTF-8 form but the unreserved characters ({@code A-Z a-z 0-9 - _ . ~}) and {@code /} as
     * {@code %XY}, upper-case hex.
     */
    static String encodePath(String path) {
        byte[] bytes = path.getBytes(StandardCharsets.UTF_8);
        StringBuilder out = new StringBuilder(bytes.length + 16);
        for (byte b : bytes) {
            int c = b & 0xff;
            if ((c >= 'A' && c <= 'Z')
                    || (c >= 'a' && c <= 'z')
                    || (c >= '0' && c <= '9')
                    || c == '-'
                    || c == '_'
                    || c == '.'
                    || c == '~'
                    || c == '/') {
                out.append((char) c);
            } else {
                out.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)));
                out.append(Character.toUpperCase(Character.forDigit(c & 15, 16)));
            }
        }
        return out.toString();
    }
}
