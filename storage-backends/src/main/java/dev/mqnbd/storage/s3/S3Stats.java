package dev.mqnbd.storage.s3;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * What one S3 export asked of the store, and how its cache fared: the counters tests, logs and metrics
 * read. The block counters count block requests only (PUTs, GETs and DELETEs of {@code
 * PREFIX/blocks/...}), once however many times the SDK retried them, whether or not they succeeded;
 * {@link #requests()} counts every request the export made, metadata, lease and listing included, by
 * type and HTTP status.
 *
 * <p><b>Threading:</b> safe for concurrent use; readings are a moment's snapshot.
 */
public final class S3Stats {
    final LongAdder puts = new LongAdder();
    final LongAdder gets = new LongAdder();
    final LongAdder deletes = new LongAdder();
    final LongAdder deleteRequests = new LongAdder();
    final LongAdder bytesUp = new LongAdder();
    final LongAdder bytesDown = new LongAdder();
    final LongAdder uploadFailures = new LongAdder();
    final LongAdder checksumFailures = new LongAdder();
    final LongAdder dirtyWaits = new LongAdder();
    final LongAdder streamWaits = new LongAdder();
    final LongAdder readAheads = new LongAdder();
    final LongAdder mergeGets = new LongAdder();
    final LongAdder flushBarriers = new LongAdder();
    final LongAdder cacheHits = new LongAdder();
    final LongAdder cacheMisses = new LongAdder();
    final AtomicLong maxDirtyBytes = new AtomicLong();
    private final S3Requests requests = new S3Requests();

    S3Stats() {}

    /** Returns the counters of every request made of the store. */
    public S3Requests requests() {
        return requests;
    }

    /** Returns the number of blocks READ requests read without a GET: in memory, or known never written. */
    public long cacheHits() {
        return cacheHits.sum();
    }

    /** Returns the number of blocks READ requests had to GET from the store (read-ahead not included). */
    public long cacheMisses() {
        return cacheMisses.sum();
    }

    /** Returns the number of block PUT requests. */
    public long puts() {
        return puts.sum();
    }

    /** Returns the number of block GET requests. */
    public long gets() {
        return gets.sum();
    }

    /** Returns the number of block objects deleted (one batch request deletes up to 1000). */
    public long deletes() {
        return deletes.sum();
    }

    /** Returns the number of DELETE requests for blocks, single or batch. */
    public long deleteRequests() {
        return deleteRequests.sum();
    }

    /** Returns the bytes uploaded in block PUTs. */
    public long bytesUploaded() {
        return bytesUp.sum();
    }

    /** Returns the bytes downloaded in block GETs. */
    public long bytesDownloaded() {
        return bytesDown.sum();
    }

    /** Returns the number of block uploads or deletes that failed (each is retried). */
    public long uploadFailures() {
        return uploadFailures.sum();
    }

    /** Returns the number of downloaded blocks whose CRC32C did not match. */
    public long checksumFailures() {
        return checksumFailures.sum();
    }

    /** Returns how many times a writer waited because the dirty bound was reached. */
    public long dirtyWaits() {
        return dirtyWaits.sum();
    }

    /** Returns how many times a writer waited for the streaming window (blocks written whole waiting for upload). */
    public long streamWaits() {
        return streamWaits.sum();
    }

    /** Returns the number of blocks fetched by read-ahead or CACHE. */
    public long readAheads() {
        return readAheads.sum();
    }

    /**
     * Returns the number of GETs made to complete a partial block before its upload: part of it was
     * written while it was not in memory, and the rest was not written by then (included in {@link
     * #gets()}).
     */
    public long mergeGets() {
        return mergeGets.sum();
    }

    /** Returns the number of FLUSH barriers taken: one per batch of FLUSH requests, however many it holds. */
    public long flushBarriers() {
        return flushBarriers.sum();
    }

    /** Returns the most dirty bytes held at once. */
    public long maxDirtyBytes() {
        return maxDirtyBytes.get();
    }

    @Override
    public String toString() {
        return puts() + " PUTs (" + bytesUploaded() + " bytes), " + gets() + " GETs (" + bytesDownloaded()
                + " bytes; " + mergeGets() + " to complete partly written blocks), " + deletes()
                + " objects deleted in " + deleteRequests() + " requests, "
                + uploadFailures() + " failed uploads, " + checksumFailures() + " checksum failures";
    }
}
