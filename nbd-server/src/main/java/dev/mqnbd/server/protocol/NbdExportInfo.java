package dev.mqnbd.server.protocol;

import java.util.Objects;

/**
 * What the handshake tells a client about one export (proto.md "NBD_OPT_INFO and NBD_OPT_GO", "Size
 * constraints").
 *
 * @param name the export name (UTF-8 on the wire); {@code ""} is the default export
 * @param description human-readable text for {@code NBD_REP_SERVER} and {@code NBD_INFO_DESCRIPTION}
 * @param size the export size in bytes
 * @param transmissionFlags the u16 {@code NbdConstants.FLAG_*} bits; {@code FLAG_HAS_FLAGS} is always sent
 * @param minimumBlockSize the minimum block size, a power of 2 of at most 64 KiB
 * @param preferredBlockSize the preferred block size, a power of 2 of at least max(minimum, 512)
 * @param maximumPayload the largest READ/WRITE payload, at least the preferred block size
 */
public record NbdExportInfo(
        String name,
        String description,
        long size,
        int transmissionFlags,
        int minimumBlockSize,
        int preferredBlockSize,
        int maximumPayload) {

    /**
     * Checks the values that would make the handshake send nonsense.
     *
     * @throws IllegalArgumentException if {@code size} is negative or a block size is not positive
     */
    public NbdExportInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(description, "description");
        if (size < 0) {
            throw new IllegalArgumentException("size: " + size + " (expected: >= 0)");
        }
        if (minimumBlockSize <= 0 || preferredBlockSize <= 0 || maximumPayload <= 0) {
            throw new IllegalArgumentException("block sizes: " + minimumBlockSize + "/" + preferredBlockSize + "/"
                    + maximumPayload + " (expected: > 0)");
        }
    }
}
