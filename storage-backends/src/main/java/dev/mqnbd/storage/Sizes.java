package dev.mqnbd.storage;

import java.util.Locale;

/** Parses and prints byte sizes such as {@code 512M}, {@code 1G}, {@code 1T} (binary units). */
public final class Sizes {
    private static final String UNITS = "KMGTPE";

    private Sizes() {}

    /**
     * Parses a size: a decimal number of bytes, optionally followed by one of {@code K M G T P E}
     * (powers of 1024; a trailing {@code iB} or {@code B} is allowed, case does not matter).
     *
     * @throws IllegalArgumentException if the text is not a size or overflows 63 bits
     */
    public static long parse(String text) {
        String s = text.strip();
        String upper = s.toUpperCase(Locale.ROOT);
        if (upper.endsWith("IB")) {
            upper = upper.substring(0, upper.length() - 2);
        } else if (upper.endsWith("B")) {
            upper = upper.substring(0, upper.length() - 1);
        }
        int shift = 0;
        if (!upper.isEmpty()) {
            int unit = UNITS.indexOf(upper.charAt(upper.length() - 1));
            if (unit >= 0) {
                shift = 10 * (unit + 1);
                upper = upper.substring(0, upper.length() - 1);
            }
        }
        long value;
        try {
            value = Long.parseLong(upper);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "size: \"" + text + "\" (expected: a number of bytes, optionally with K, M, G, T, P or E)");
        }
        if (value < 0 || (shift > 0 && value > (Long.MAX_VALUE >> shift))) {
            throw new IllegalArgumentException("size: \"" + text + "\" (expected: 0 to 8 EiB - 1)");
        }
        return value << shift;
    }

    /** Prints {@code bytes} in the largest binary unit that divides it, e.g. {@code 1G}, {@code 1536K}. */
    public static String format(long bytes) {
        int unit = 0;
        long value = bytes;
        while (value != 0 && (value & 1023) == 0 && unit < UNITS.length()) {
            value >>= 10;
            unit++;
        }
        return unit == 0 ? Long.toString(value) : value + String.valueOf(UNITS.charAt(unit - 1));
    }
}
