package dev.mqnbd.filter;

import dev.mqnbd.storage.Sizes;
import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * The {@code key=value} settings of one filter on the command line, with typed getters whose errors
 * name the filter, the key and what was expected.
 *
 * @param kind the filter kind, for messages
 * @param values the settings in the order given
 */
public record FilterSettings(String kind, Map<String, String> values) {
    /** Copies the settings, keeping their order. */
    public FilterSettings {
        Objects.requireNonNull(kind, "kind");
        values = Collections.unmodifiableMap(new LinkedHashMap<>(values));
    }

    /** Returns the raw value of {@code key}, if given. */
    public Optional<String> get(String key) {
        return Optional.ofNullable(values.get(key));
    }

    /** Returns {@code key} as a size ({@code 64K}, {@code 1G}), or {@code fallback}. */
    public long size(String key, long fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            return Sizes.parse(v);
        } catch (IllegalArgumentException e) {
            throw bad(key, v, "a size such as 64K, 10M or 1G");
        }
    }

    /** Returns {@code key} as a positive number, or {@code fallback}. */
    public long positive(String key, long fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            long n = Long.parseLong(v.replace("_", ""));
            if (n > 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(key, v, "a positive whole number");
    }

    /** Returns {@code key} as a probability between 0 and 1 ({@code 0.01}, or {@code 1%}), or {@code fallback}. */
    public double probability(String key, double fallback) {
        String v = values.get(key);
        if (v == null) {
            return fallback;
        }
        try {
            double p =
                    v.endsWith("%") ? Double.parseDouble(v.substring(0, v.length() - 1)) / 100 : Double.parseDouble(v);
            if (p >= 0 && p <= 1) {
                return p;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(key, v, "a probability from 0 to 1, such as 0.01 or 1%");
    }

    /** Returns {@code key} as a duration ({@code 10ms}, {@code 2s}, {@code 500us}), or {@code fallback}. */
    public Duration duration(String key, Duration fallback) {
        String v = values.get(key);
        return v == null ? fallback : parseDuration(key, v);
    }

    /** Parses {@code 10ms}, {@code 2s}, {@code 1.5s}, {@code 500us}, {@code 1m}; a bare number is milliseconds. */
    Duration parseDuration(String key, String v) {
        String s = v.strip();
        int i = 0;
        while (i < s.length() && (Character.isDigit(s.charAt(i)) || s.charAt(i) == '.')) {
            i++;
        }
        try {
            double n = Double.parseDouble(s.substring(0, i));
            double nanos = switch (s.substring(i)) {
                case "", "ms" -> n * 1e6;
                case "us" -> n * 1e3;
                case "ns" -> n;
                case "s" -> n * 1e9;
                case "m", "min" -> n * 60e9;
                default -> -1;
            };
            if (nanos >= 0 && nanos < 3600e9) {
                return Duration.ofNanos((long) nanos);
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw bad(key, v, "a duration such as 500us, 10ms or 2s, below an hour");
    }

    /** Returns an error for {@code key=value} that says what was expected. */
    public IllegalArgumentException bad(String key, String value, String expected) {
        return new IllegalArgumentException(
                "filter " + kind + ": " + key + "=" + value + " (expected: " + expected + ")");
    }

    /** Returns the settings as the stack's description shows them: {@code k=v,k=v}. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        values.forEach((k, v) ->
                sb.append(sb.isEmpty() ? "" : ",").append(k).append('=').append(v));
        return sb.toString();
    }
}
