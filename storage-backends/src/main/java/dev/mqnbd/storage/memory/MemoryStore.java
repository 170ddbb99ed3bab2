package dev.mqnbd.storage.memory;

import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.Segments;
import dev.mqnbd.storage.Sizes;
import java.nio.ByteBuffer;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * The bytes of one memory export: a sparse array of fixed-size off-heap pages, the per-queue data
 * {@code Q} of {@link MemoryBlockDevice}. After jimfs's {@code HeapDisk}, it allocates pages as writes
 * need them and never for reads; a range never written, or discarded, reads as zeroes.
 *
 * <p><b>Layout:</b> a two-level radix table. A top-level array, sized by the capacity when the store is
 * built, holds lazily created leaves; each leaf holds the pages of one aligned run of {@code 2^leafShift}
 * pages. The top level has at most 2^20 entries, so the fixed cost of an empty store is at most a few
 * MiB of heap (1 MiB for a 1 TiB export), and each leaf costs 1/1024 of the data it maps or less. Leaves
 * are installed by compare-and-set and stay until {@link #close()}; pages are installed by
 * compare-and-set and released by setting their slot to {@code null}. Pages are 4 KiB, the size of the
 * kernel's page cache pages and of most clients' I/O, so a random 4 KiB write costs 4 KiB.
 *
 * <p><b>Ownership:</b> the {@link dev.mqnbd.mq.BlockQueue} of the export owns the store and closes it
 * last. Pages are direct {@link ByteBuffer}s whose memory the garbage collector frees once nothing
 * refers to them. That is deliberate: a request that fetched a page just before a concurrent discard
 * released it keeps a live page and never touches freed memory. (An explicitly freed page, such as a
 * segment of a closed {@code Arena}, would make that reader fail instead.) The price is that released
 * memory returns when the collector runs; the JDK runs it when direct memory nears {@code
 * -XX:MaxDirectMemorySize}, which also bounds what all memory exports may hold.
 *
 * <p><b>Threading:</b> safe for concurrent use from every hardware context without a shared lock. Reads
 * and writes copy with absolute bulk operations, so requests on different threads that touch different
 * bytes of one page never lose each other's bytes. Requests whose ranges overlap and run at the same
 * time leave the overlap in an unspecified mix of their data, as on any block device.
 */
public final class MemoryStore implements AutoCloseable {
    /** Page size: 4 KiB. */
    public static final int PAGE_SIZE = 4096;

    /** Largest capacity a store can map with its two-level table: 4 PiB. */
    public static final long MAX_CAPACITY = 1L << 52;

    static final int PAGE_SHIFT = 12;
    private static final int PAGE_MASK = PAGE_SIZE - 1;
    private static final int TOP_BITS_MAX = 20;
    private static final int LEAF_SHIFT_MIN = 10;

    /** Zeroes for reads of holes and for zeroing in place; read-only and never repositioned, so shareable. */
    private static final ByteBuffer ZEROES =
            ByteBuffer.allocateDirect(PAGE_SIZE).asReadOnlyBuffer();
    /**
     * Zeroes handed out by {@link #readSegments} over holes. Writable (network code sends writable direct
     * buffers without a copy) but never written: INVARIANT: nothing in this class or elsewhere puts into it.
     */
    private static final ByteBuffer ZERO_SEGMENT = ByteBuffer.allocateDirect(1 << 20);

    private final long capacity;
    private final long pageCount;
    private final int leafShift;
    private final AtomicReferenceArray<AtomicReferenceArray<ByteBuffer>> leaves;
    private final Supplier<ByteBuffer> allocator;
    private final LongAdder pages = new LongAdder();

    /**
     * Creates an empty store of {@code capacity} bytes; it holds no pages until written.
     *
     * @throws IllegalArgumentException if {@code capacity} is not between 1 and {@link #MAX_CAPACITY}
     */
    public MemoryStore(long capacity) {
        this(capacity, () -> ByteBuffer.allocateDirect(PAGE_SIZE));
    }

    /** Creates a store whose pages come from {@code allocator} (tests inject allocation failures here). */
    MemoryStore(long capacity, Supplier<ByteBuffer> allocator) {
        if (capacity < 1 || capacity > MAX_CAPACITY) {
            throw new IllegalArgumentException(
                    "capacity: " + capacity + " (expected: 1 to " + Sizes.format(MAX_CAPACITY) + ")");
        }
        this.capacity = capacity;
        this.allocator = allocator;
        this.pageCount = (capacity + PAGE_MASK) >>> PAGE_SHIFT;
        int indexBits = 64 - Long.numberOfLeadingZeros(pageCount - 1);
        // INVARIANT: indexBits <= 40, so leafShift <= 20 and the top level has at most 2^20 entries.
        this.leafShift = Math.max(LEAF_SHIFT_MIN, indexBits - TOP_BITS_MAX);
        this.leaves = new AtomicReferenceArray<>((int) ((pageCount + (1L << leafShift) - 1) >>> leafShift));
    }

    /** Returns the size of the store in bytes. */
    public long capacity() {
        return capacity;
    }

    /** Returns the bytes held in pages now: pages currently allocated × {@link #PAGE_SIZE}; a snapshot. */
    public long allocatedBytes() {
        return pages.sum() << PAGE_SHIFT;
    }

    /** Returns the number of pages each leaf of the table maps. */
    int leafPages() {
        return 1 << leafShift;
    }

    /** Returns the number of entries of the table's top level. */
    int topEntries() {
        return leaves.length();
    }

    /**
     * Copies {@code length} bytes from {@code offset} into {@code dst[dstIndex, dstIndex + length)} with
     * absolute puts: {@code dst}'s position and limit do not change. Allocates nothing.
     */
    public void read(long offset, ByteBuffer dst, int dstIndex, int length) {
        assert inStore(offset, length) : offset + "+" + length;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            int n = Math.min(length, PAGE_SIZE - inPage);
            ByteBuffer page = page(offset >>> PAGE_SHIFT);
            if (page == null) {
                dst.put(dstIndex, ZEROES, 0, n);
            } else {
                dst.put(dstIndex, page, inPage, n);
            }
            offset += n;
            dstIndex += n;
            length -= n;
        }
    }

    /**
     * Hands {@code [offset, offset + length)} to {@code sink} as views of the pages themselves (no copy):
     * a page's slice where the page is held, slices of one shared zero buffer over runs of holes. The
     * views stay valid while referenced (pages are garbage-collected, never reused); a later write,
     * discard or zeroing of the range may show through them, which only a racing request can observe.
     */
    void readSegments(long offset, int length, Segments sink) {
        assert inStore(offset, length) : offset + "+" + length;
        int zeroRun = 0;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            int n = Math.min(length, PAGE_SIZE - inPage);
            ByteBuffer page = page(offset >>> PAGE_SHIFT);
            if (page == null) {
                zeroRun += n;
                if (zeroRun > ZERO_SEGMENT.capacity() - PAGE_SIZE) {
                    sink.add(ZERO_SEGMENT.slice(0, zeroRun));
                    zeroRun = 0;
                }
            } else {
                if (zeroRun > 0) {
                    sink.add(ZERO_SEGMENT.slice(0, zeroRun));
                    zeroRun = 0;
                }
                sink.add(page.slice(inPage, n));
            }
            offset += n;
            length -= n;
        }
        if (zeroRun > 0) {
            sink.add(ZERO_SEGMENT.slice(0, zeroRun));
        }
    }

    /**
     * Copies {@code src[srcIndex, srcIndex + length)} to {@code offset} with absolute gets: {@code src}'s
     * position and limit do not change. Allocates the pages the range touches that are not held yet.
     *
     * @return {@code false} when a page could not be allocated; the bytes before it were written
     */
    public boolean write(long offset, ByteBuffer src, int srcIndex, int length) {
        assert inStore(offset, length) : offset + "+" + length;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            int n = Math.min(length, PAGE_SIZE - inPage);
            ByteBuffer page = pageForWrite(offset >>> PAGE_SHIFT);
            if (page == null) {
                return false;
            }
            page.put(inPage, src, srcIndex, n);
            offset += n;
            srcIndex += n;
            length -= n;
        }
        return true;
    }

    /**
     * Makes {@code [offset, offset + length)} read as zeroes. Partly covered pages are zeroed in place.
     * Wholly covered pages (the last page counts as whole when the range reaches the capacity) are
     * released when {@code release} is set and zeroed in place otherwise. Holes stay holes either way:
     * they already read as zeroes. Allocates nothing.
     */
    public void zero(long offset, long length, boolean release) {
        assert inStore(offset, length) : offset + "+" + length;
        long end = offset + length;
        while (offset < end) {
            long pageIndex = offset >>> PAGE_SHIFT;
            int leafIndex = (int) (pageIndex >>> leafShift);
            AtomicReferenceArray<ByteBuffer> leaf = leaves.get(leafIndex);
            if (leaf == null) {
                // A leaf never written: skip every page it maps.
                offset = (long) (leafIndex + 1) << (leafShift + PAGE_SHIFT);
                continue;
            }
            int slot = (int) (pageIndex & ((1L << leafShift) - 1));
            int inPage = (int) (offset & PAGE_MASK);
            int n = (int) Math.min(end - offset, PAGE_SIZE - inPage);
            boolean whole = inPage == 0 && (n == PAGE_SIZE || offset + n == capacity);
            if (release && whole) {
                if (leaf.getAndSet(slot, null) != null) {
                    pages.decrement();
                }
            } else {
                ByteBuffer page = leaf.get(slot);
                if (page != null) {
                    page.put(inPage, ZEROES, 0, n);
                }
            }
            offset += n;
        }
    }

    /**
     * Drops every page and leaf; the memory returns when the collector runs. The queue calls this after
     * its last request ended; the store then reads as zeroes. A second call does nothing.
     */
    @Override
    public void close() {
        for (int i = 0; i < leaves.length(); i++) {
            AtomicReferenceArray<ByteBuffer> leaf = leaves.getAndSet(i, null);
            if (leaf == null) {
                continue;
            }
            for (int slot = 0; slot < leaf.length(); slot++) {
                if (leaf.getAndSet(slot, null) != null) {
                    pages.decrement();
                }
            }
        }
    }

    /**
     * Reports the allocation of {@code [offset, offset + length)} into {@code out}, page by page: pages
     * never written (or released) are {@code HOLE | ZERO}, held pages are data. Stops early when {@code
     * out} is full. Whole leaves that were never created are skipped in one step.
     */
    void extents(long offset, long length, Extents out) {
        assert inStore(offset, length) : offset + "+" + length;
        long end = offset + length;
        while (offset < end) {
            long pageIndex = offset >>> PAGE_SHIFT;
            long runEnd;
            int flags;
            if (leaves.get((int) (pageIndex >>> leafShift)) == null) {
                runEnd = ((pageIndex >>> leafShift) + 1) << (leafShift + PAGE_SHIFT);
                flags = Extents.HOLE | Extents.ZERO;
            } else {
                runEnd = (pageIndex + 1) << PAGE_SHIFT;
                flags = page(pageIndex) == null ? Extents.HOLE | Extents.ZERO : 0;
            }
            long n = Math.min(runEnd, end) - offset;
            if (!out.add(n, flags)) {
                return;
            }
            offset += n;
        }
    }

    private @Nullable ByteBuffer page(long pageIndex) {
        AtomicReferenceArray<ByteBuffer> leaf = leaves.get((int) (pageIndex >>> leafShift));
        return leaf == null ? null : leaf.get((int) (pageIndex & ((1L << leafShift) - 1)));
    }

    /** Returns the page, allocating and installing it if needed, or {@code null} when out of memory. */
    private @Nullable ByteBuffer pageForWrite(long pageIndex) {
        int leafIndex = (int) (pageIndex >>> leafShift);
        int slot = (int) (pageIndex & ((1L << leafShift) - 1));
        AtomicReferenceArray<ByteBuffer> leaf;
        ByteBuffer fresh;
        try {
            leaf = leaves.get(leafIndex);
            if (leaf == null) {
                leaf = installLeaf(leafIndex);
            }
            ByteBuffer page = leaf.get(slot);
            if (page != null) {
                return page;
            }
            fresh = allocator.get();
        } catch (OutOfMemoryError e) {
            // Direct memory (or the heap, for a leaf) is exhausted: this write fails, the server lives on.
            return null;
        }
        ByteBuffer witness = leaf.compareAndExchange(slot, null, fresh);
        if (witness != null) {
            // Another context installed the page first; ours is dropped and the collector frees it.
            return witness;
        }
        // OWNERSHIP: the store owns the page until zero() or close() clears its slot.
        pages.increment();
        return fresh;
    }

    private AtomicReferenceArray<ByteBuffer> installLeaf(int leafIndex) {
        // The last leaf maps only the pages left, so a small store needs only a small leaf.
        long first = (long) leafIndex << leafShift;
        AtomicReferenceArray<ByteBuffer> fresh =
                new AtomicReferenceArray<>((int) Math.min(1L << leafShift, pageCount - first));
        AtomicReferenceArray<ByteBuffer> witness = leaves.compareAndExchange(leafIndex, null, fresh);
        // OWNERSHIP: the store owns the installed leaf until close(); a leaf that lost the race is garbage.
        return witness != null ? witness : fresh;
    }

    private boolean inStore(long offset, long length) {
        return offset >= 0 && length >= 0 && length <= capacity - offset;
    }

    @Override
    public String toString() {
        return "MemoryStore[capacity=" + Sizes.format(capacity) + ", allocated=" + allocatedBytes() + "]";
    }
}
