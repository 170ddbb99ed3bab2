package dev.mqnbd.storage;

import java.io.IOException;

/**
 * A kind of storage, named by the scheme of an export spec ({@code memory:1G}, {@code file:/path},
 * {@code s3://bucket/prefix}). Implementations are listed in {@code
 * META-INF/services/dev.mqnbd.storage.Backend}.
 *
 * <p><b>Threading:</b> implementations are stateless and safe to share.
 */
public interface Backend {
    /** Returns the scheme this backend serves, e.g. {@code memory}. */
    String scheme();

    /** Returns one line of help: the spec grammar and an example, for {@code --help}. */
    String usage();

    /**
     * Opens the storage that {@code spec} names: its driver and the data its queue is built on, not yet
     * built, so that filters can be stacked on it ({@link Device#wrap}) before {@link Device#build}.
     *
     * <p><b>Ownership:</b> the caller owns the returned device: it builds it (the queue then owns the
     * storage) or closes it.
     *
     * @param spec what follows {@code scheme:} in the export spec (for {@code memory:1G}, {@code 1G})
     * @param setup the queue the device will be built into; backends size per-tag state by its depth
     * @throws IllegalArgumentException if the spec is malformed; the message says what was expected
     * @throws IOException if the storage cannot be opened
     */
    Device<?, ?, ?, ?> open(String spec, DeviceOptions options, QueueSetup setup) throws IOException;
}
