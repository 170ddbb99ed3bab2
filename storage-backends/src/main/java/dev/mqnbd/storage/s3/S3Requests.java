package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.Histogram;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.LongAdder;

/**
 * Every request one S3 export made of its store, as {@link DirectObjectStore} and {@link SdkObjectStore}
 * saw it: by type and HTTP status, with their latency (retries included), the bytes of object bodies sent
 * and received, the retries made and the requests in flight. Block, metadata, lease and listing requests all count.
 *
 * <p>A request counts once when it ends, under the status of its last attempt ({@code 0}: no reply, a
 * time-out or a connection failure); its retries count separately ({@link #retries}).
 *
 * <p><b>Threading:</b> safe for concurrent use without locks; nothing is allocated per request. Readings
 * are a moment's snapshot.
 */
public final class S3Requests {
    /** The kinds of store request. */
    public enum Type {
        GET,
        PUT,
        /** A PUT with {@code If-None-Match} or {@code If-Match}: metadata creation, the lease and its release. */
        CONDITIONAL_PUT,
        DELETE,
        /** A multi-object DELETE (up to 1000 keys). */
        BATCH_DELETE,
        /** One page of a LIST (up to 1000 keys). */
        LIST;

        private final String label = name().toLowerCase(Locale.ROOT);

        /** Returns the type's metric label, e.g. {@code conditional_put}. */
        public String label() {
            return label;
        }
    }

    /** HTTP statuses counted: 100 to 599, and 0 for no reply; anything else counts as 0. */
    public static final int STATUSES = 600;

    /** Upper bounds of the latency buckets, in nanoseconds: 1 ms to 60 s. */
    private static final long[] LATENCY_BOUNDS_NANOS = {
        1_000_000,
        2_500_000,
        5_000_000,
        10_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        250_000_000,
        500_000_000,
        1_000_000_000,
        2_500_000_000L,
        5_000_000_000L,
        10_000_000_000L,
        30_000_000_000L,
        60_000_000_000L
    };

    private static final Type[] TYPES = Type.values();

    private final AtomicLongArray ended = new AtomicLongArray(TYPES.length * STATUSES);
    private final Histogram[] latency = new Histogram[TYPES.length];
    private final LongAdder[] retries = new LongAdder[TYPES.length];
    private final LongAdder[] inFlight = new LongAdder[TYPES.length];
    private final LongAdder bytesUp = new LongAdder();
    private final LongAdder bytesDown = new LongAdder();

    S3Requests() {
        for (int t = 0; t < TYPES.length; t++) {
            latency[t] = new Histogram(1.0 / TimeUnit.SECONDS.toNanos(1), LATENCY_BOUNDS_NANOS);
            retries[t] = new LongAdder();
            inFlight[t] = new LongAdder();
        }
    }

    /** Notes that a request of {@code type} starts; returns its start time for {@link #end}. */
    long begin(Type type) {
        inFlight[type.ordinal()].increment();
        return System.nanoTime();
    }

    /** Notes that the request of {@code type} begun at {@code start} ended with HTTP {@code status} (0: no reply). */
    void end(Type type, long start, int status) {
        int t = type.ordinal();
        latency[t].record(Math.max(0, System.nanoTime() - start));
        ended.getAndIncrement(t * STATUSES + (status > 0 && status < STATUSES ? status : 0));
        inFlight[t].decrement();
    }

    /** Returns the counter of {@code type}'s retries, which the SDK's {@link RetryCounter} and {@link DirectObjectStore} add to. */
    LongAdder retryCounter(Type type) {
        return retries[type.ordinal()];
    }

    /** Counts the bytes of an object body sent. */
    void uploaded(long bytes) {
        bytesUp.add(bytes);
    }

    /** Counts the bytes of an object body received. */
    void downloaded(long bytes) {
        bytesDown.add(bytes);
    }

    /** Returns how many requests of {@code type} ended with HTTP {@code status} (0: no reply). */
    public long requests(Type type, int status) {
        return status >= 0 && status < STATUSES ? ended.get(type.ordinal() * STATUSES + status) : 0;
    }

    /** Returns how many requests of {@code type} ended, whatever their status. */
    public long requests(Type type) {
        long n = 0;
        for (int s = 0; s < STATUSES; s++) {
            n += ended.get(type.ordinal() * STATUSES + s);
        }
        return n;
    }

    /** Returns the latency of the requests of {@code type}, in seconds, from the call to its end, retries included. */
    public Histogram latency(Type type) {
        return latency[type.ordinal()];
    }

    /** Returns how many times a request of {@code type} was sent again after a failed attempt. */
    public long retries(Type type) {
        return retries[type.ordinal()].sum();
    }

    /** Returns the requests of {@code type} begun and not yet ended. */
    public long inFlight(Type type) {
        return inFlight[type.ordinal()].sum();
    }

    /** Returns the bytes of object bodies sent (PUTs of every kind). */
    public long bytesUploaded() {
        return bytesUp.sum();
    }

    /** Returns the bytes of object bodies received (GETs). */
    public long bytesDownloaded() {
        return bytesDown.sum();
    }
}
