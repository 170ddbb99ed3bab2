package dev.mqnbd.storage.s3;

import java.util.HexFormat;

/**
 * The object keys of one S3 export under {@code PREFIX} (joined with {@code /} only when the prefix is
 * not empty):
 *
 * <ul>
 *   <li>{@code PREFIX/mqnbd-export.json}: the metadata (size, block size, format version);
 *   <li>{@code PREFIX/mqnbd-lease.json}: the write lease;
 *   <li>{@code PREFIX/blocks/XXXXXXXXXXXXXXXX}: block {@code X}, its index in 16 lower-case hex digits,
 *       so that a listing returns the blocks in order;
 *   <li>{@code PREFIX/trims/XXXXXXXXXXXXXXXX}: the record of a large trim whose objects are deleted in the
 *       background ({@link Tombstone}), by its sequence number.
 * </ul>
 *
 * @param bucket the bucket
 * @param prefix the key prefix without leading or trailing {@code /}; empty for the bucket's root
 */
record ObjectNames(String bucket, String prefix) {
    /** Name of the metadata object under the prefix. */
    static final String METADATA = "mqnbd-export.json";

    /** Name of the lease object under the prefix. */
    static final String LEASE = "mqnbd-lease.json";

    /** Folder of the block objects under the prefix. */
    static final String BLOCKS = "blocks/";

    /** Folder of the trim records under the prefix. */
    static final String TRIMS = "trims/";

    private static final HexFormat HEX = HexFormat.of();

    /** Returns the key of the metadata object. */
    String metadata() {
        return under(METADATA);
    }

    /** Returns the key of the lease object. */
    String lease() {
        return under(LEASE);
    }

    /** Returns the prefix every block key starts with. */
    String blocks() {
        return under(BLOCKS);
    }

    /** Returns the prefix every trim record's key starts with. */
    String trims() {
        return under(TRIMS);
    }

    /** Returns the key of trim record {@code seq}. */
    String trim(long seq) {
        return trims() + HEX.toHexDigits(seq);
    }

    /** Returns the sequence number of the trim record {@code key} names, or -1 if it names none. */
    long trimSeq(String key) {
        String trims = trims();
        if (!key.startsWith(trims) || key.length() != trims.length() + 16) {
            return -1;
        }
        try {
            return HexFormat.fromHexDigitsToLong(key.substring(trims.length()));
        } catch (IllegalArgumentException e) {
            return -1;
        }
    }

    /** Returns the key of block {@code index}. */
    String block(long index) {
        return blocks() + HEX.toHexDigits(index);
    }

    /**
     * Returns the index of the block {@code key} names, or -1 when {@code key} is not a block key of this
     * export (another object under the prefix).
     */
    long blockIndex(String key) {
        String blocks = blocks();
        if (!key.startsWith(blocks) || key.length() != blocks.length() + 16) {
            return -1;
        }
        String digits = key.substring(blocks.length());
        for (int i = 0; i < digits.length(); i++) {
            char c = digits.charAt(i);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
                return -1;
            }
        }
        return HexFormat.fromHexDigitsToLong(digits);
    }

    /** Returns the export's location, {@code s3://BUCKET/PREFIX}, for messages. */
    String url() {
        return "s3://" + bucket + "/" + prefix;
    }

    private String under(String name) {
        return prefix.isEmpty() ? name : prefix + "/" + name;
    }

    @Override
    public String toString() {
        return url();
    }
}
