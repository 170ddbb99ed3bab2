package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.Sizes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The metadata object of an S3 export ({@code PREFIX/mqnbd-export.json}): what it takes to read the
 * block objects back. Written once, when the export is created; never changed after.
 *
 * <pre>
 * {"format": "mqnbd-s3-export", "version": 1, "size": 10737418240, "blockSize": 1048576,
 *  "created": "2026-11-21T21:00:00Z"}
 * </pre>
 *
 * @param size the export's size in bytes
 * @param blockSize the size of every block object, a power of two from 64 KiB to 64 MiB
 * @param version the format version, {@link #VERSION} for exports this code writes
 * @param created when the export was created
 */
record ExportMetadata(long size, int blockSize, int version, Instant created) {
    /** The format's name, so that a stray JSON object is not mistaken for an export. */
    static final String FORMAT = "mqnbd-s3-export";

    /** The format version this code writes and reads. */
    static final int VERSION = 1;

    /** Most blocks an export may have: the known-blocks bitmap stays under 256 MiB. */
    static final long MAX_BLOCKS = 1L << 31;

    /** Returns the number of block objects the export may hold: the size divided by the block size, rounded up. */
    long blockCount() {
        return (size + blockSize - 1) / blockSize;
    }

    /** Serialises the metadata as the JSON object shown above. */
    byte[] toJson() {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("format", FORMAT);
        fields.put("version", version);
        fields.put("size", size);
        fields.put("blockSize", blockSize);
        fields.put("created", created.toString());
        return FlatJson.write(fields).getBytes(StandardCharsets.UTF_8);
    }

    /** Describes the geometry, e.g. {@code size 10G and block size 1M}. */
    String describe() {
        return "size " + Sizes.format(size) + " and block size " + Sizes.format(blockSize);
    }

    /**
     * Reads the metadata object {@code key} holds.
     *
     * @throws IOException if it is not valid JSON, not an mqnbd export, of a newer format, or its
     *     geometry is impossible; the message names the object
     */
    static ExportMetadata parse(String where, byte[] json) throws IOException {
        Map<String, String> fields;
        try {
            fields = FlatJson.read(new String(json, StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
            throw new IOException("metadata " + where + " is not valid JSON: " + e.getMessage());
        }
        if (!FORMAT.equals(fields.get("format"))) {
            throw new IOException("metadata " + where + ": format \"" + fields.get("format") + "\" (expected: \""
                    + FORMAT + "\"; is this an mqnbd export?)");
        }
        try {
            int version = Integer.parseInt(fields.getOrDefault("version", "?"));
            if (version > VERSION || version < 1) {
                throw new IOException("metadata " + where + ": format version " + version + " (expected: " + VERSION
                        + "; written by a newer mqnbd?)");
            }
            long size = Long.parseLong(fields.getOrDefault("size", "?"));
            long blockSize = Long.parseLong(fields.getOrDefault("blockSize", "?"));
            Instant created = fields.containsKey("created") ? Instant.parse(fields.get("created")) : Instant.EPOCH;
            if (blockSize < S3Spec.MIN_BLOCK_SIZE
                    || blockSize > S3Spec.MAX_BLOCK_SIZE
                    || Long.bitCount(blockSize) != 1) {
                throw new IOException("metadata " + where + ": blockSize " + blockSize
                        + " (expected: a power of two from 64K to 64M)");
            }
            if (size <= 0 || (size + blockSize - 1) / blockSize > MAX_BLOCKS) {
                throw new IOException("metadata " + where + ": size " + size + " (expected: 1 to "
                        + Sizes.format(MAX_BLOCKS * blockSize) + " with block size " + Sizes.format(blockSize) + ")");
            }
            return new ExportMetadata(size, (int) blockSize, version, created);
        } catch (NumberFormatException | DateTimeParseException e) {
            throw new IOException("metadata " + where + ": " + e.getMessage() + " (expected: version, size and"
                    + " blockSize numbers, created an ISO-8601 instant)");
        }
    }
}
