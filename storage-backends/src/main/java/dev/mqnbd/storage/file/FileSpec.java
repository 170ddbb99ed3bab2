package dev.mqnbd.storage.file;

import dev.mqnbd.storage.Sizes;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * A parsed file spec: what follows {@code file:} in an export spec.
 *
 * <pre>
 * SPEC   := PATH [ "," OPTION ]...
 * OPTION := "create=" SIZE       create PATH as a sparse file of SIZE bytes if it does not exist
 *         | "direct"             open with O_DIRECT (bypass the page cache)
 * </pre>
 *
 * A comma inside PATH is written twice ({@code ,,}), as in qemu's option syntax. SIZE is a {@link
 * Sizes} size ({@code 10G}).
 *
 * @param path the image file or block device
 * @param createSize the size to create a missing file with, if {@code create=} was given
 * @param direct whether to open with {@code O_DIRECT}
 */
record FileSpec(Path path, OptionalLong createSize, boolean direct) {
    /** The grammar, for error messages. */
    static final String GRAMMAR = "PATH[,create=SIZE][,direct]";

    /**
     * Parses {@code spec}.
     *
     * @throws IllegalArgumentException if the path is empty or invalid, an option is unknown or given
     *     twice, or a size is malformed or not positive
     */
    static FileSpec parse(String spec) {
        StringBuilder path = new StringBuilder();
        int i = 0;
        while (i < spec.length()) {
            char c = spec.charAt(i);
            if (c == ',') {
                if (i + 1 < spec.length() && spec.charAt(i + 1) == ',') {
                    path.append(',');
                    i += 2;
                    continue;
                }
                break;
            }
            path.append(c);
            i++;
        }
        if (path.isEmpty()) {
            throw new IllegalArgumentException("file spec: \"" + spec + "\": empty path (expected: " + GRAMMAR + ")");
        }
        OptionalLong create = OptionalLong.empty();
        boolean direct = false;
        String rest = i < spec.length() ? spec.substring(i + 1) : null;
        if (rest != null) {
            for (String option : rest.split(",", -1)) {
                if (option.equals("direct")) {
                    if (direct) {
                        throw twice(spec, "direct");
                    }
                    direct = true;
                } else if (option.startsWith("create=")) {
                    if (create.isPresent()) {
                        throw twice(spec, "create");
                    }
                    long size = Sizes.parse(option.substring("create=".length()));
                    if (size <= 0) {
                        throw new IllegalArgumentException(
                                "file spec: \"" + spec + "\": create=" + size + " (expected: a positive size)");
                    }
                    create = OptionalLong.of(size);
                } else {
                    throw new IllegalArgumentException("file spec: \"" + spec + "\": unknown option \"" + option
                            + "\" (expected: create=SIZE or direct)");
                }
            }
        }
        try {
            return new FileSpec(Path.of(path.toString()), create, direct);
        } catch (InvalidPathException e) {
            throw new IllegalArgumentException("file spec: \"" + spec + "\": " + e.getMessage());
        }
    }

    private static IllegalArgumentException twice(String spec, String option) {
        return new IllegalArgumentException("file spec: \"" + spec + "\": option " + option + " given twice");
    }
}
