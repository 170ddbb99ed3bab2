package dev.mqnbd.server.cli;

import java.nio.charset.StandardCharsets;

/**
 * One {@code --export NAME=SPEC} argument: the export name ({@code ""} for the default export) and the
 * backend spec ({@code memory:1G}).
 */
record ExportSpec(String name, String spec) {
    /** The export served when none is given: a 1 GiB memory export under the default name. */
    static final ExportSpec DEFAULT = new ExportSpec("", "memory:1G");

    /** Parses {@code NAME=SPEC}; the name ends at the first {@code =}. */
    static ExportSpec parse(String text) {
        int eq = text.indexOf('=');
        if (eq < 0) {
            throw new MqnbdCommand.UsageException(
                    "--export " + text
                            + ": expected NAME=SPEC, e.g. disk=memory:1G (an empty NAME, as in =memory:1G, is the default export)");
        }
        String name = text.substring(0, eq);
        String spec = text.substring(eq + 1);
        if (spec.isEmpty()) {
            throw new MqnbdCommand.UsageException("--export " + text + ": the SPEC after '=' is empty");
        }
        if (name.getBytes(StandardCharsets.UTF_8).length > 4096 || name.indexOf('\0') >= 0) {
            throw new MqnbdCommand.UsageException(
                    "--export " + text + ": export names are at most 4096 bytes of UTF-8 without NUL (proto.md)");
        }
        return new ExportSpec(name, spec);
    }

    /** Returns the name as logs show it: quoted, the default export as {@code "" (default)}. */
    String displayName() {
        return name.isEmpty() ? "\"\" (default)" : "\"" + name + "\"";
    }
}
