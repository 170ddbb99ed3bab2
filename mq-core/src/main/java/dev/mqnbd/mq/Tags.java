package dev.mqnbd.mq;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The tags of one hardware-queue index and their preallocated requests: a lock-free bitmap after the
 * kernel's {@code sbitmap}, plus the submitters waiting for a free tag.
 *
 * <p><b>Threading:</b> {@link #get} and {@link #put} are safe from any thread and never block or allocate.
 */
final class Tags<R> {
    private final AtomicLongArray used;
    private final int depth;
    final Request<R>[] requests;
    private final ConcurrentLinkedQueue<TagWaiter> waiters = new ConcurrentLinkedQueue<>();

    @SuppressWarnings("unchecked")
    Tags(int hwIndex, int depth, Operations<?, ?, ?, R> ops) {
        this.depth = depth;
        this.used = new AtomicLongArray((depth + 63) >>> 6);
        this.requests = (Request<R>[]) new Request<?>[depth];
        for (int tag = 0; tag < depth; tag++) {
            requests[tag] = new Request<>(hwIndex, tag, ops.newRequestData());
        }
    }

    /** Takes a free tag, or returns -1 when every tag is in use. */
    int get() {
        for (int word = 0; word < used.length(); word++) {
            long bits = used.get(word);
            while (true) {
                int bit = Long.numberOfTrailingZeros(~bits);
                int tag = (word << 6) + bit;
                if (bit == 64 || tag >= depth) {
                    break;
                }
                long witness = used.compareAndExchange(word, bits, bits | (1L << bit));
                if (witness == bits) {
                    return tag;
                }
                bits = witness;
            }
        }
        return -1;
    }

    /** Returns a tag and wakes one waiter, which tries again on its own thread. */
    void put(int tag) {
        int word = tag >>> 6;
        long mask = 1L << (tag & 63);
        long before;
        do {
            before = used.get(word);
        } while (!used.compareAndSet(word, before, before & ~mask));
        assert (before & mask) != 0 : "tag " + tag + " freed twice";
        // One tag, one waiter: waking them all would have all but one of them fail and wait again.
        wakeOne();
    }

    boolean anyFree() {
        for (int word = 0; word < used.length(); word++) {
            long bits = used.get(word);
            int bit = Long.numberOfTrailingZeros(~bits);
            if (bit < 64 && (word << 6) + bit < depth) {
                return true;
            }
        }
        return false;
    }

    void addWaiter(TagWaiter waiter) {
        waiters.add(waiter);
        // INVARIANT: no lost wakeup. put() clears its bit before it looks for a waiter, and this looks for a
        // free bit after adding the waiter; both are sequentially consistent, so at least one of them sees
        // the other: a tag freed between the caller's failed get() and add() is found here.
        wakeNextIfFree();
    }

    /** Wakes one waiter when a tag is free: passes on a wakeup that its waiter did not use. */
    void wakeNextIfFree() {
        if (anyFree()) {
            wakeOne();
        }
    }

    private void wakeOne() {
        TagWaiter waiter = waiters.poll();
        if (waiter != null) {
            waiter.tagAvailable();
        }
    }

    int depth() {
        return depth;
    }

    /** Returns how many tags are taken now; a moment's reading, for statistics. */
    int inUse() {
        int n = 0;
        for (int word = 0; word < used.length(); word++) {
            n += Long.bitCount(used.get(word));
        }
        return n;
    }
}
