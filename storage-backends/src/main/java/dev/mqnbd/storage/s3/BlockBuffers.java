package dev.mqnbd.storage.s3;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.IntFunction;

/**
 * Block-size arrays to reuse: the arrays of clean blocks the cache evicts, taken again by the next GET
 * or whole-block write, so that a streaming reader or writer does not allocate (and the JVM zero and
 * fault in) a fresh block-size array per block. A profile of a cold 1 GiB read showed a fifth of the
 * CPU in zeroing new arrays and a third in faulting in their pages.
 *
 * <p>A reused array holds another block's old bytes, so it is only handed where every byte is about to
 * be overwritten: a GET body of exactly the block size, a write of the whole block. Arrays for partial
 * writes, where unwritten bytes must read as zeroes, are always new.
 *
 * <p><b>Ownership:</b> an array given back must be referenced by nothing else (a block, the clean
 * cache, an upload in flight); the pool owns it until {@link #take()} hands it to exactly one caller.
 *
 * <p><b>Threading:</b> safe for concurrent use.
 */
final class BlockBuffers {
    /** The most bytes the pool keeps beside the clean cache. */
    static final long MAX_POOLED_BYTES = 16L << 20;

    private final int blockSize;
    private final ArrayBlockingQueue<byte[]> pool;
    private final LongAdder reused = new LongAdder();

    /** Allocates GET bodies: reused arrays for exactly {@code blockSize} bytes, new ones otherwise. */
    final IntFunction<byte[]> bodies;

    BlockBuffers(int blockSize) {
        this.blockSize = blockSize;
        this.pool = new ArrayBlockingQueue<>((int) Math.max(1, Math.min(64, MAX_POOLED_BYTES / blockSize)));
        this.bodies = n -> n == blockSize ? take() : new byte[n];
    }

    /** Returns a block-size array whose contents are arbitrary: the caller overwrites every byte. */
    byte[] take() {
        byte[] a = pool.poll();
        if (a == null) {
            return new byte[blockSize];
        }
        reused.increment();
        return a;
    }

    /** Gives back an array nothing else refers to; one of another length, or past the bound, is left to the GC. */
    void give(byte[] array) {
        if (array.length == blockSize) {
            pool.offer(array);
        }
    }

    /** Returns how many arrays {@link #take()} has handed out again. */
    long reused() {
        return reused.sum();
    }
}
