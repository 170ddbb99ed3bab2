package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.Sizes;
import java.nio.charset.StandardCharsets;
import java.util.OptionalInt;
import java.util.OptionalLong;

/**
 * A parsed S3 spec: what follows {@code s3:} in an export spec.
 *
 * <pre>
 * SPEC   := "//" BUCKET [ "/" PREFIX ] [ "," OPTION ]...
 * OPTION := "create=" SIZE        create the export with this size if it does not exist
 *         | "block-size=" SIZE    the block size to create it with (64K to 64M, a power of two; default 1M),
 *                                 or to expect when opening it
 *         | "overwrite"           with create=: delete an existing export's objects and create it anew
 * </pre>
 *
 * PREFIX may be empty or contain slashes (not empty segments); trailing slashes are dropped. A comma
 * inside PREFIX is written twice ({@code ,,}), as in the file spec. SIZE is a {@link Sizes} size.
 *
 * @param names the bucket and prefix
 * @param createSize the size to create a missing export with, if {@code create=} was given
 * @param blockSize the block size asked for, if {@code block-size=} was given
 * @param overwrite whether an existing export is to be deleted and created anew
 */
record S3Spec(ObjectNames names, OptionalLong createSize, OptionalInt blockSize, boolean overwrite) {
    /** The grammar, for error messages. */
    static final String GRAMMAR = "//BUCKET[/PREFIX][,create=SIZE][,block-size=SIZE][,overwrite]";

    /** Block size of a new export when {@code block-size=} is not given: 1 MiB. */
    static final int DEFAULT_BLOCK_SIZE = 1 << 20;

    /** Smallest block size: 64 KiB. */
    static final int MIN_BLOCK_SIZE = 64 << 10;

    /** Largest block size: 64 MiB. */
    static final int MAX_BLOCK_SIZE = 64 << 20;

    /** Longest key S3 takes, in bytes; block keys add {@code /blocks/} and 16 digits to the prefix. */
    private static final int MAX_KEY_BYTES = 1024;

    /** Returns the block size to create a new export with. */
    int blockSizeOrDefault() {
        return blockSize.orElse(DEFAULT_BLOCK_SIZE);
    }

    /**
     * Parses {@code spec}.
     *
     * @throws IllegalArgumentException if it does not follow the grammar: no {@code //}, a bad bucket
     *     name, an empty prefix segment, an unknown or repeated option, a bad size or block size, or
     *     {@code overwrite} without {@code create=}
     */
    static S3Spec parse(String spec) {
        if (!spec.startsWith("//")) {
            throw bad(spec, "missing \"//\" before the bucket");
        }
        StringBuilder location = new StringBuilder();
        int i = 2;
        while (i < spec.length()) {
            char c = spec.charAt(i);
            if (c == ',') {
                if (i + 1 < spec.length() && spec.charAt(i + 1) == ',') {
                    location.append(',');
                    i += 2;
                    continue;
                }
                break;
            }
            location.append(c);
            i++;
        }
        int slash = location.indexOf("/");
        String bucket = slash < 0 ? location.toString() : location.substring(0, slash);
        String prefix = slash < 0 ? "" : location.substring(slash + 1);
        while (prefix.endsWith("/")) {
            prefix = prefix.substring(0, prefix.length() - 1);
        }
        checkBucket(spec, bucket);
        checkPrefix(spec, prefix);

        OptionalLong create = OptionalLong.empty();
        OptionalInt blockSize = OptionalInt.empty();
        boolean overwrite = false;
        if (i < spec.length()) {
            for (String option : spec.substring(i + 1).split(",", -1)) {
                if (option.equals("overwrite")) {
                    if (overwrite) {
                        throw twice(spec, "overwrite");
                    }
                    overwrite = true;
                } else if (option.startsWith("create=")) {
                    if (create.isPresent()) {
                        throw twice(spec, "create");
                    }
                    create = OptionalLong.of(parseSize(spec, option.substring("create=".length())));
                } else if (option.startsWith("block-size=")) {
                    if (blockSize.isPresent()) {
                        throw twice(spec, "block-size");
                    }
                    blockSize = OptionalInt.of(parseBlockSize(spec, option.substring("block-size=".length())));
                } else {
                    throw bad(
                            spec,
                            "unknown option \"" + option + "\" (expected: create=SIZE, block-size=SIZE or"
                                    + " overwrite)");
                }
            }
        }
        if (overwrite && create.isEmpty()) {
            throw bad(spec, "overwrite needs create=SIZE (the size to create the export anew with)");
        }
        return new S3Spec(new ObjectNames(bucket, prefix), create, blockSize, overwrite);
    }

    private static void checkBucket(String spec, String bucket) {
        boolean ok = bucket.length() >= 3 && bucket.length() <= 63;
        for (int i = 0; ok && i < bucket.length(); i++) {
            char c = bucket.charAt(i);
            ok = (c >= 'a' && c <= 'z')
                    || (c >= 'A' && c <= 'Z')
                    || (c >= '0' && c <= '9')
                    || c == '.'
                    || c == '-'
                    || c == '_';
        }
        if (!ok) {
            throw bad(
                    spec,
                    "bucket \"" + bucket + "\" (expected: 3 to 63 letters, digits, dots, hyphens or" + " underscores)");
        }
    }

    private static void checkPrefix(String spec, String prefix) {
        if (prefix.isEmpty()) {
            return;
        }
        for (String segment : prefix.split("/", -1)) {
            if (segment.isEmpty()) {
                throw bad(
                        spec,
                        "prefix \"" + prefix + "\" has an empty segment (expected: no \"//\" and no"
                                + " leading \"/\")");
            }
        }
        int keyBytes = prefix.getBytes(StandardCharsets.UTF_8).length + 1 + ObjectNames.BLOCKS.length() + 16;
        if (keyBytes > MAX_KEY_BYTES) {
            throw bad(
                    spec,
                    "prefix of " + prefix.length() + " characters is too long (expected: block keys of at" + " most "
                            + MAX_KEY_BYTES + " bytes)");
        }
    }

    private static long parseSize(String spec, String text) {
        long size = Sizes.parse(text);
        if (size <= 0 || size % 512 != 0) {
            throw bad(spec, "create=" + text + " (expected: a positive multiple of 512)");
        }
        return size;
    }

    private static int parseBlockSize(String spec, String text) {
        long size = Sizes.parse(text);
        if (size < MIN_BLOCK_SIZE || size > MAX_BLOCK_SIZE || Long.bitCount(size) != 1) {
            throw bad(spec, "block-size=" + text + " (expected: a power of two from 64K to 64M)");
        }
        return (int) size;
    }

    private static IllegalArgumentException bad(String spec, String problem) {
        return new IllegalArgumentException("s3 spec: \"" + spec + "\": " + problem + " (grammar: " + GRAMMAR + ")");
    }

    private static IllegalArgumentException twice(String spec, String option) {
        return new IllegalArgumentException("s3 spec: \"" + spec + "\": option " + option + " given twice");
    }
}
