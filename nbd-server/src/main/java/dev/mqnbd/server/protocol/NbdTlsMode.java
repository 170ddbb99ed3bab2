package dev.mqnbd.server.protocol;

import java.util.Locale;

/**
 * Whether the handshake offers TLS (proto.md "TLS support"), named as nbdkit's {@code --tls} option.
 *
 * <ul>
 *   <li>{@link #OFF}: NOTLS mode. {@code NBD_OPT_STARTTLS} is answered {@code NBD_REP_ERR_UNSUP}.
 *   <li>{@link #ON}: TLS is offered but not required; a client may negotiate in the clear.
 *   <li>{@link #REQUIRE}: FORCEDTLS mode. Before {@code NBD_OPT_STARTTLS} succeeds every option but
 *       {@code STARTTLS} and {@code ABORT} is answered {@code NBD_REP_ERR_TLS_REQD}, and {@code
 *       EXPORT_NAME} (which has no error reply) closes the connection.
 * </ul>
 */
public enum NbdTlsMode {
    OFF,
    ON,
    REQUIRE;

    /**
     * Parses {@code off}, {@code on} or {@code require}, in any case.
     *
     * @throws IllegalArgumentException for anything else
     */
    public static NbdTlsMode parse(String text) {
        return switch (text.toLowerCase(Locale.ROOT)) {
            case "off" -> OFF;
            case "on" -> ON;
            case "require" -> REQUIRE;
            default -> throw new IllegalArgumentException("TLS mode: " + text + " (expected: off, on or require)");
        };
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
