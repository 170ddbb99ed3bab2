package dev.mqnbd.storage;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
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
     * Opens the storage that {@code spec} names and builds its request queue.
     *
     * <p><b>Ownership:</b> the caller owns the returned queue; closing it releases the storage.
     *
     * @param spec what follows {@code scheme:} in the export spec (for {@code memory:1G}, {@code 1G})
     * @throws IllegalArgumentException if the spec is malformed; the message says what was expected
     * @throws IOException if the storage cannot be opened
     * @throws MqException if the queue cannot be set up
     */
    BlockQueue<?, ?, ?, ?> open(String spec, DeviceOptions options, QueueSetup setup) throws IOException, MqException;
}
