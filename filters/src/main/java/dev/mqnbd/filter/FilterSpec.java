package dev.mqnbd.filter;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One {@code --filter} argument: {@code EXPORT=KIND[,key=value...]}, where {@code EXPORT} is an export's
 * name ({@code ""} for the default export) or {@code *} for every export.
 *
 * @param export the export it applies to, or {@code *}
 * @param kind the filter kind, e.g. {@code rate}
 * @param settings the filter's settings
 */
public record FilterSpec(String export, String kind, FilterSettings settings) {
    /** Applies to every export. */
    public static final String EVERY_EXPORT = "*";

    /** Checks the parts. */
    public FilterSpec {
        Objects.requireNonNull(export, "export");
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(settings, "settings");
    }

    /**
     * Parses {@code EXPORT=KIND[,key=value...]}; the kind and its keys are checked against the known kinds.
     *
     * @throws IllegalArgumentException if the text is malformed, the kind unknown, or a key not the kind's
     */
    public static FilterSpec parse(String text) {
        int eq = text.indexOf('=');
        if (eq < 0) {
            throw new IllegalArgumentException(
                    "--filter: \"" + text
                            + "\" (expected: EXPORT=KIND[,key=value...], e.g. vm=rate,iops=5000 or *=log,file=/var/log/io.log)");
        }
        String export = text.substring(0, eq);
        String[] parts = text.substring(eq + 1).split(",", -1);
        String kindName = parts[0].strip();
        FilterKind kind = Filters.kind(kindName);
        Map<String, String> values = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            int kv = part.indexOf('=');
            if (kv <= 0) {
                throw new IllegalArgumentException("--filter " + text + ": \"" + part + "\" (expected: key=value; "
                        + kindName + " takes " + Filters.keyNames(kind) + ")");
            }
            String key = part.substring(0, kv).strip();
            if (!Filters.keyNames(kind).contains(key)) {
                throw new IllegalArgumentException("--filter " + text + ": unknown key \"" + key + "\" (expected: "
                        + kindName + " takes " + String.join(", ", Filters.keyNames(kind)) + ")");
            }
            if (values.put(key, part.substring(kv + 1).strip()) != null) {
                throw new IllegalArgumentException(
                        "--filter " + text + ": \"" + key + "\" given twice (expected: once)");
            }
        }
        return new FilterSpec(export, kindName, new FilterSettings(kindName, values));
    }

    /** Returns whether this filter applies to export {@code name}. */
    public boolean appliesTo(String name) {
        return export.equals(EVERY_EXPORT) || export.equals(name);
    }

    /** Returns the filter as the stack's description shows it before it is built, e.g. {@code rate(iops=5000)}. */
    public String describe() {
        return settings.values().isEmpty() ? kind : kind + "(" + settings + ")";
    }

    @Override
    public String toString() {
        return export + "=" + kind + (settings.values().isEmpty() ? "" : "," + settings);
    }
}
