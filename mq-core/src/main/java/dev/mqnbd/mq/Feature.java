package dev.mqnbd.mq;

import java.util.Arrays;
import java.util.EnumSet;

/** What a device supports beyond reads and writes; advertised to clients through {@link QueueLimits}. */
public enum Feature {
    /** {@link ReqOp#FLUSH} makes completed writes durable (a volatile write cache is present). */
    FLUSH,
    /** {@link ReqFlags#FUA} is honoured on writes. */
    FUA,
    /** {@link ReqOp#DISCARD} is supported. */
    DISCARD,
    /** {@link ReqOp#WRITE_ZEROES} is supported, with and without {@link ReqFlags#NO_UNMAP}. */
    WRITE_ZEROES,
    /** The medium is rotational: a hint for clients' schedulers. */
    ROTATIONAL,
    /** {@link ReqOp#CACHE} does something useful (prefetch); it is always accepted. */
    CACHE,
    /** {@link ReqFlags#FAST_ZERO} is honoured: zeroing that would be slow fails fast instead. */
    FAST_ZERO,
    /** {@link ReqOp#BLOCK_STATUS} reports real allocation (holes and zeroes), not only "data". */
    BLOCK_STATUS,
    /**
     * A FLUSH on any hardware context makes every write completed on every context durable, and what one
     * context completed is visible to reads on all: clients may use several connections at once.
     */
    SHARED_FLUSH,
    /**
     * The driver takes a WRITE's payload as several segments ({@link Request#segmentCount()}, {@link
     * Request#segment(int)}), so a payload that arrived in several network buffers is not first copied
     * into one.
     */
    WRITE_SEGMENTS,
    /**
     * The driver may answer a READ given a {@link Request#readSegments() segment sink} with views of its
     * own memory, which the front end sends as they are: no copy into a reply buffer.
     */
    READ_SEGMENTS;

    /**
     * Returns a new set of what every writable disk of ours offers: {@link #FLUSH}, {@link #FUA}, {@link
     * #DISCARD}, {@link #WRITE_ZEROES}, {@link #FAST_ZERO}, {@link #BLOCK_STATUS} and {@link
     * #SHARED_FLUSH}, plus {@code more}: what else the driver does.
     */
    public static EnumSet<Feature> writableDisk(Feature... more) {
        EnumSet<Feature> set = EnumSet.of(FLUSH, FUA, DISCARD, WRITE_ZEROES, FAST_ZERO, BLOCK_STATUS, SHARED_FLUSH);
        set.addAll(Arrays.asList(more));
        return set;
    }
}
