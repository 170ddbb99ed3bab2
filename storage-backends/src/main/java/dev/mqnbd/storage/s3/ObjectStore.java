package dev.mqnbd.storage.s3;

import java.time.Duration;
import java.util.Collection;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;

/**
 * The few object-store requests the S3 backend makes, on one bucket. {@link SdkObjectStore} makes them
 * with the AWS SDK; {@link DirectObjectStore} makes block GETs and PUTs over its own HTTP client and the
 * rest through the SDK; tests wrap either to inject faults.
 *
 * <p>Every request takes a {@code timeout}: the longest it may take, retries included. When it is over,
 * or the store answered with an error, the request throws a {@link StoreException}; a timed-out write may
 * still have been stored (its reply was lost).
 *
 * <p><b>Ownership:</b> byte arrays handed to {@link #put} and friends are only read during the call; the
 * caller must not change them until it returns. Arrays returned by {@link #get} belong to the caller.
 *
 * <p><b>Threading:</b> implementations are safe for concurrent use; calls block the calling thread
 * (the backend calls them from virtual threads).
 */
interface ObjectStore extends AutoCloseable {
    /**
     * An object as read.
     *
     * @param data its bytes
     * @param etag its entity tag, quotes included, as the store sent it
     * @param metadata its user metadata ({@code x-amz-meta-*}), keys in lower case without the prefix
     */
    record StoredObject(byte[] data, String etag, Map<String, String> metadata) {}

    /** Reads {@code key}; returns {@code null} when it does not exist. */
    default @Nullable StoredObject get(String key, Duration timeout) throws StoreException {
        return get(key, timeout, byte[]::new);
    }

    /**
     * Reads {@code key} into an array from {@code buffers} (given the body's length, it returns an array
     * of exactly that length whose bytes need not be zero: all of them are overwritten) where the reply
     * announces its length; returns {@code null} when it does not exist.
     */
    @Nullable
    StoredObject get(String key, Duration timeout, IntFunction<byte[]> buffers) throws StoreException;

    /**
     * Stores {@code data} as {@code key} with user {@code metadata}, replacing what was there. The upload
     * carries the CRC32C of {@code data} ({@code x-amz-checksum-crc32c}) and, over plain http, is signed
     * with its SHA-256, so the store refuses bytes damaged on the way.
     *
     * @return the new object's entity tag
     */
    String put(String key, byte[] data, Map<String, String> metadata, Duration timeout) throws StoreException;

    /**
     * Stores {@code data} as {@code key} only if no such object exists ({@code If-None-Match: *}).
     *
     * @return the new object's entity tag
     * @throws StoreException with {@link StoreException#preconditionFailed()} when it exists
     */
    String putIfAbsent(String key, byte[] data, Duration timeout) throws StoreException;

    /**
     * Replaces {@code key} with {@code data} only if its entity tag is still {@code etag} ({@code If-Match}).
     * Where a store never matches a quoted entity tag (Ceph's RADOS Gateway answers 412), the tag is sent
     * without its quotes: see {@link SdkObjectStore}.
     *
     * @return the new object's entity tag
     * @throws StoreException with {@link StoreException#preconditionFailed()} when the object changed or is gone
     */
    String putIfMatch(String key, byte[] data, String etag, Duration timeout) throws StoreException;

    /** Deletes {@code key}; deleting a missing object succeeds. */
    void delete(String key, Duration timeout) throws StoreException;

    /**
     * Deletes up to 1000 keys in one request (missing ones count as deleted).
     *
     * @throws StoreException if the request failed or any key could not be deleted (the others may have been)
     */
    void deleteAll(Collection<String> keys, Duration timeout) throws StoreException;

    /**
     * Lists every key that starts with {@code prefix}, in order, page by page; {@code timeout} bounds each page.
     */
    void list(String prefix, Consumer<String> keys, Duration timeout) throws StoreException;

    /** Returns where the store is, for messages: its endpoint and bucket. */
    String describe();

    /** Releases the store's client; the last user of a shared client closes it. */
    @Override
    void close();
}
