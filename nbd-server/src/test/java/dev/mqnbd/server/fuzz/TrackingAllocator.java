package dev.mqnbd.server.fuzz;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;
import java.util.ArrayList;
import java.util.List;

/**
 * An unpooled allocator (without leak-detection wrappers, whose paranoid stack traces would slow fuzzing)
 * that remembers every buffer it hands out, so a fuzz run can check that the server
 * allocated nothing larger than a bound and released everything it allocated.
 *
 * <p><b>Threading:</b> one per channel; the embedded channel's handlers run on the test thread.
 */
final class TrackingAllocator extends AbstractByteBufAllocator {
    private final List<ByteBuf> buffers = new ArrayList<>();
    private int largest;
    private int largestAllowed = Integer.MAX_VALUE;

    TrackingAllocator() {
        super(false);
    }

    @Override
    public boolean isDirectBufferPooled() {
        return false;
    }

    /** Fails (at the allocation, with the caller on the stack) any buffer asked for above {@code bytes}. */
    TrackingAllocator limit(int bytes) {
        this.largestAllowed = bytes;
        return this;
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return track(new UnpooledHeapByteBuf(this, initialCapacity, maxCapacity), initialCapacity);
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        return track(new UnpooledDirectByteBuf(this, initialCapacity, maxCapacity), initialCapacity);
    }

    @Override
    public CompositeByteBuf compositeHeapBuffer(int maxNumComponents) {
        return track(new CompositeByteBuf(this, false, maxNumComponents), 0);
    }

    @Override
    public CompositeByteBuf compositeDirectBuffer(int maxNumComponents) {
        return track(new CompositeByteBuf(this, true, maxNumComponents), 0);
    }

    private <B extends ByteBuf> B track(B buf, int capacity) {
        if (capacity > largestAllowed) {
            buf.release();
            throw new AssertionError("allocation of " + capacity + " bytes (expected: <= " + largestAllowed + ")");
        }
        largest = Math.max(largest, capacity);
        buffers.add(buf);
        return buf;
    }

    /** Returns the largest capacity asked for. */
    int largest() {
        return largest;
    }

    /** Returns how many buffers were handed out. */
    int count() {
        return buffers.size();
    }

    /** Asserts that every buffer handed out has been released. */
    void assertAllReleased(String when) {
        for (ByteBuf buf : buffers) {
            Check.that(
                    buf.refCnt() == 0,
                    () -> when + ": a " + buf.capacity() + "-byte buffer the server allocated has " + "reference count "
                            + buf.refCnt() + " (expected: 0, released)");
        }
    }
}
