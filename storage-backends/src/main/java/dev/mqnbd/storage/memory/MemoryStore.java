package dev.mqnbd.storage.memory;

import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.Segments;
import dev.mqnbd.storage.Sizes;
import java.nio.ByteBuffer;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.Supplier;
import org.jspecify.annotations.Nullable;

/**
 * The bytes of one memory export: a sparse array of fixed-size pages, the per-queue data {@code Q} of
 * {@link MemoryBlockDevice}. After jimfs's {@code HeapDisk}, it allocates pages as writes need them and
 * never for reads; a range never written, or discarded, reads as zeroes.
 *
 * <p><b>Layout:</b> a two-level radix table. A top-level array, sized by the capacity when the store is
 * built, holds lazily created leaves; each leaf holds the pages of one aligned run of {@code 2^leafShift}
 * pages. The top level has at most 2^20 entries, so the fixed cost of an empty store is at most a few
 * MiB of heap (1 MiB for a 1 TiB export), and each leaf costs 1/1024 of the data it maps or less. Leaves
 * are installed by compare-and-set and stay until {@link #close()}; pages are installed by
 * compare-and-set and released by setting their slot to {@code null}. Pages are 4 KiB, the size of the
 * kernel's page cache pages and of most clients' I/O, so a random 4 KiB write costs 4 KiB.
 *
 * <p><b>Memory:</b> where the platform allows ({@link AnonymousMappings}: Linux, native access enabled), a
 * leaf is one private anonymous mapping of its whole range that costs address space only; the slot of a
 * held page then refers to the leaf's mapping, and page {@code s} is its bytes {@code [s × 4 KiB, (s + 1)
 * × 4 KiB)}. A write allocates the pages it needs in one {@code madvise(MADV_POPULATE_WRITE)} call instead
 * of a page fault each, and a discard gives them back to the kernel at once ({@code MADV_DONTNEED}). A
 * page's address never changes while the store lives, so a reply that still holds a view of a page sees
 * that page's bytes, zeroes or newer writes to the same range, never another range's. Where mappings
 * cannot be made (another OS, no native access, this process's share of mappings used up), a leaf holds
 * one direct {@link ByteBuffer} of 4 KiB per page, freed by the garbage collector once nothing refers to
 * it. Either way, the pages of all stores together are bounded by a {@link PageBudget}, by default the
 * JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}); past it, writes fail and the store is
 * unchanged beyond the pages written before.
 *
 * <p><b>Ownership:</b> the {@link dev.mqnbd.mq.BlockQueue} of the export owns the store and closes it
 * last. Mappings are unmapped, and buffers freed, by the garbage collector once nothing refers to them:
 * a request that fetched a page just before a concurrent discard released it keeps a live page and never
 * touches freed memory.
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
    private final long leafMask;
    private final AtomicReferenceArray<@Nullable Leaf> leaves;
    private final @Nullable AnonymousMappings mappings;
    private final PageBudget budget;
    private final Supplier<ByteBuffer> allocator;
    private final LongAdder pages = new LongAdder();

    /**
     * One leaf of the table. INVARIANT: in a leaf with a {@code mapping}, every held slot refers to that
     * mapping; in a leaf without one, every held slot refers to a buffer of its own of exactly {@link
     * #PAGE_SIZE} bytes. So a page of {@link #PAGE_SIZE} bytes starts at 0 and any larger one is a mapping
     * in which page {@code slot} starts at {@code slot × PAGE_SIZE} (see {@link #base}).
     */
    private record Leaf(
            AtomicReferenceArray<@Nullable ByteBuffer> slots,
            @Nullable ByteBuffer mapping) {}

    /**
     * Creates an empty store of {@code capacity} bytes; it holds no pages until written.
     *
     * @throws IllegalArgumentException if {@code capacity} is not between 1 and {@link #MAX_CAPACITY}
     */
    public MemoryStore(long capacity) {
        this(capacity, AnonymousMappings.SYSTEM, PageBudget.PROCESS, () -> ByteBuffer.allocateDirect(PAGE_SIZE));
    }

    /**
     * Creates a store whose pages are buffers from {@code allocator}, never mappings (tests inject
     * allocation failures here).
     */
    MemoryStore(long capacity, Supplier<ByteBuffer> allocator) {
        this(capacity, null, PageBudget.PROCESS, allocator);
    }

    /** Creates a store that maps its leaves with {@code mappings} (none: buffers from {@code allocator}). */
    MemoryStore(
            long capacity, @Nullable AnonymousMappings mappings, PageBudget budget, Supplier<ByteBuffer> allocator) {
        if (capacity < 1 || capacity > MAX_CAPACITY) {
            throw new IllegalArgumentException(
                    "capacity: " + capacity + " (expected: 1 to " + Sizes.format(MAX_CAPACITY) + ")");
        }
        this.capacity = capacity;
        this.budget = budget;
        this.allocator = allocator;
        this.pageCount = (capacity + PAGE_MASK) >>> PAGE_SHIFT;
        int indexBits = 64 - Long.numberOfLeadingZeros(pageCount - 1);
        // INVARIANT: indexBits <= 40, so leafShift <= 20 and the top level has at most 2^20 entries.
        this.leafShift = Math.max(LEAF_SHIFT_MIN, indexBits - TOP_BITS_MAX);
        this.leafMask = (1L << leafShift) - 1;
        this.leaves = new AtomicReferenceArray<>((int) ((pageCount + (1L << leafShift) - 1) >>> leafShift));
        // Leaves past 1 GiB (stores over 1 PiB) hold buffers: a ByteBuffer cannot span such a mapping.
        this.mappings = ((long) PAGE_SIZE << leafShift) <= AnonymousMappings.MAX_MAPPING ? mappings : null;
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

    /** Returns whether this store's leaves are anonymous mappings (see the class comment). */
    boolean mapped() {
        return mappings != null;
    }

    /** Returns how many leaves are anonymous mappings now; the rest of those created hold buffers. */
    int mappedLeaves() {
        int mapped = 0;
        for (int i = 0; i < leaves.length(); i++) {
            Leaf leaf = leaves.get(i);
            if (leaf != null && leaf.mapping() != null) {
                mapped++;
            }
        }
        return mapped;
    }

    /**
     * Copies {@code length} bytes from {@code offset} into {@code dst[dstIndex, dstIndex + length)} with
     * absolute puts, one per run of held pages in a mapped leaf: {@code dst}'s position and limit do not
     * change. Allocates nothing.
     */
    public void read(long offset, ByteBuffer dst, int dstIndex, int length) {
        assert inStore(offset, length) : offset + "+" + length;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            long pageIndex = offset >>> PAGE_SHIFT;
            ByteBuffer page = page(pageIndex);
            int n;
            if (page == null) {
                n = Math.min(length, PAGE_SIZE - inPage);
                dst.put(dstIndex, ZEROES, 0, n);
            } else {
                n = runBytes(page, pageIndex, inPage, length);
                dst.put(dstIndex, page, base(page, pageIndex) + inPage, n);
            }
            offset += n;
            dstIndex += n;
            length -= n;
        }
    }

    /**
     * Hands {@code [offset, offset + length)} to {@code sink} as views of the pages themselves (no copy):
     * one slice of a mapped leaf over each run of held pages in it (a page's slice where pages are buffers
     * of their own), slices of one shared zero buffer over runs of holes. A 1 MiB read of written data in
     * one leaf is one view, not 256. The
     * views stay valid while referenced (a page's memory stays at its address while the store lives and
     * is freed only once unreachable); a later write, discard or zeroing of the range may show through
     * them, which only a racing request can observe.
     */
    void readSegments(long offset, int length, Segments sink) {
        assert inStore(offset, length) : offset + "+" + length;
        int zeroRun = 0;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            long pageIndex = offset >>> PAGE_SHIFT;
            ByteBuffer page = page(pageIndex);
            int n;
            if (page == null) {
                n = Math.min(length, PAGE_SIZE - inPage);
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
                n = runBytes(page, pageIndex, inPage, length);
                sink.add(page.slice(base(page, pageIndex) + inPage, n));
            }
            offset += n;
            length -= n;
        }
        if (zeroRun > 0) {
            sink.add(ZERO_SEGMENT.slice(0, zeroRun));
        }
    }

    /**
     * Makes sure every page of {@code [offset, offset + length)} is held, allocating those that are not:
     * on a mapped leaf, each run of missing pages in one call. A write of several buffers calls this once
     * first, so its pages are allocated together. Returns {@code false} when a page could not be
     * allocated; the pages before it are held then.
     */
    boolean allocate(long offset, long length) {
        assert inStore(offset, length) : offset + "+" + length;
        if (length == 0) {
            return true;
        }
        long last = (offset + length - 1) >>> PAGE_SHIFT;
        for (long pageIndex = offset >>> PAGE_SHIFT; pageIndex <= last; ) {
            Leaf leaf = leafForWrite((int) (pageIndex >>> leafShift));
            if (leaf == null) {
                return false;
            }
            int slot = (int) (pageIndex & leafMask);
            if (leaf.slots.get(slot) != null) {
                pageIndex++;
                continue;
            }
            int run = missingRun(leaf, slot, last - pageIndex + 1);
            if (!fill(leaf, slot, run)) {
                return false;
            }
            pageIndex += run;
        }
        return true;
    }

    /**
     * Copies {@code src[srcIndex, srcIndex + length)} to {@code offset} with absolute gets: {@code src}'s
     * position and limit do not change. Allocates the pages the range touches that are not held yet.
     *
     * @return {@code false} when a page could not be allocated; the bytes before it were written
     */
    public boolean write(long offset, ByteBuffer src, int srcIndex, int length) {
        assert inStore(offset, length) : offset + "+" + length;
        long last = (offset + length - 1) >>> PAGE_SHIFT;
        while (length > 0) {
            int inPage = (int) (offset & PAGE_MASK);
            long pageIndex = offset >>> PAGE_SHIFT;
            ByteBuffer page = pageForWrite(pageIndex, last);
            if (page == null) {
                return false;
            }
            // pageForWrite allocated the missing pages after this one too: on a mapped leaf, one copy
            // covers the run of held pages.
            int n = runBytes(page, pageIndex, inPage, length);
            page.put(base(page, pageIndex) + inPage, src, srcIndex, n);
            offset += n;
            srcIndex += n;
            length -= n;
        }
        return true;
    }

    /**
     * Makes {@code [offset, offset + length)} read as zeroes. Partly covered pages are zeroed in place.
     * Wholly covered pages (the last page counts as whole when the range reaches the capacity) are
     * released when {@code release} is set, their memory returned to the kernel at once on a mapped leaf,
     * and zeroed in place otherwise. Holes stay holes either way: they already read as zeroes. Allocates
     * nothing.
     */
    public void zero(long offset, long length, boolean release) {
        assert inStore(offset, length) : offset + "+" + length;
        long end = offset + length;
        // Pages below this index are wholly inside the range.
        long wholeEnd = (end == capacity ? end + PAGE_MASK : end) >>> PAGE_SHIFT;
        while (offset < end) {
            long pageIndex = offset >>> PAGE_SHIFT;
            int leafIndex = (int) (pageIndex >>> leafShift);
            Leaf leaf = leaves.get(leafIndex);
            if (leaf == null) {
                // A leaf never written: skip every page it maps.
                offset = Math.min(end, (long) (leafIndex + 1) << (leafShift + PAGE_SHIFT));
                continue;
            }
            int slot = (int) (pageIndex & leafMask);
            int inPage = (int) (offset & PAGE_MASK);
            if (release && inPage == 0 && pageIndex < wholeEnd) {
                int count = (int) Math.min(leaf.slots.length() - slot, wholeEnd - pageIndex);
                release(leaf, slot, count);
                offset = Math.min(end, (pageIndex + count) << PAGE_SHIFT);
                continue;
            }
            int n = (int) Math.min(end - offset, PAGE_SIZE - inPage);
            ByteBuffer page = leaf.slots.get(slot);
            if (page != null) {
                page.put(base(page, pageIndex) + inPage, ZEROES, 0, n);
            }
            offset += n;
        }
    }

    /**
     * Drops every page and leaf, giving mapped memory back to the kernel at once; the rest returns when
     * the collector runs. The queue calls this after its last request ended; the store then reads as
     * zeroes. A second call does nothing.
     */
    @Override
    public void close() {
        for (int i = 0; i < leaves.length(); i++) {
            Leaf leaf = leaves.getAndSet(i, null);
            if (leaf != null) {
                release(leaf, 0, leaf.slots.length());
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

    /**
     * Returns how many of the {@code length} bytes from byte {@code inPage} of page {@code pageIndex}, whose
     * slot holds {@code page}, one bulk operation on {@code page} can cover: on a mapped leaf, the run of
     * held pages after it in the same leaf (they are contiguous in its mapping); else the rest of the page.
     * A page released after this check keeps its memory (see the class comment): a racing discard can only
     * leave the overlap in a mix of the two requests, as page by page.
     */
    private int runBytes(ByteBuffer page, long pageIndex, int inPage, int length) {
        int n = Math.min(length, PAGE_SIZE - inPage);
        if (n == length || page.capacity() == PAGE_SIZE) {
            return n;
        }
        Leaf leaf = leaves.get((int) (pageIndex >>> leafShift));
        if (leaf == null || leaf.mapping != page) {
            return n;
        }
        int slot = (int) (pageIndex & leafMask);
        int end = (int) Math.min(leaf.slots.length(), slot + 1 + ((long) (length - n + PAGE_MASK) >>> PAGE_SHIFT));
        for (int s = slot + 1; s < end && leaf.slots.get(s) == page; s++) {
            n = Math.min(length, n + PAGE_SIZE);
        }
        return n;
    }

    /** Where page {@code pageIndex}'s bytes start in {@code page}, its slot's buffer (see {@link Leaf}). */
    private int base(ByteBuffer page, long pageIndex) {
        return page.capacity() == PAGE_SIZE ? 0 : (int) (pageIndex & leafMask) << PAGE_SHIFT;
    }

    private @Nullable ByteBuffer page(long pageIndex) {
        Leaf leaf = leaves.get((int) (pageIndex >>> leafShift));
        return leaf == null ? null : leaf.slots.get((int) (pageIndex & leafMask));
    }

    /**
     * Returns the page, allocating it, and on a mapped leaf the missing pages after it up to page {@code
     * last}, if needed; {@code null} when out of memory.
     */
    private @Nullable ByteBuffer pageForWrite(long pageIndex, long last) {
        Leaf leaf = leafForWrite((int) (pageIndex >>> leafShift));
        if (leaf == null) {
            return null;
        }
        int slot = (int) (pageIndex & leafMask);
        ByteBuffer page = leaf.slots.get(slot);
        while (page == null) {
            if (!fill(leaf, slot, missingRun(leaf, slot, last - pageIndex + 1))) {
                return null;
            }
            // A racing discard may have released it again: then allocate once more.
            page = leaf.slots.get(slot);
        }
        return page;
    }

    /** Counts the missing pages from {@code slot} on, at most {@code max} and not past the leaf's end. */
    private static int missingRun(Leaf leaf, int slot, long max) {
        int end = (int) Math.min(leaf.slots.length(), slot + max);
        int s = slot + 1;
        while (s < end && leaf.slots.get(s) == null) {
            s++;
        }
        return s - slot;
    }

    /**
     * Allocates and installs the {@code count} missing pages from {@code slot} on, or returns {@code false}
     * (installing nothing) when the budget or the memory is exhausted. Slots another context filled in
     * the meantime keep their page.
     */
    private boolean fill(Leaf leaf, int slot, int count) {
        if (!budget.tryTake(count)) {
            return false;
        }
        ByteBuffer mapping = leaf.mapping;
        int installed = 0;
        if (mapping != null) {
            AnonymousMappings m = Objects.requireNonNull(mappings);
            if (!m.populate(mapping, (long) slot << PAGE_SHIFT, (long) count << PAGE_SHIFT)) {
                budget.give(count);
                return false;
            }
            for (int s = slot; s < slot + count; s++) {
                // OWNERSHIP: the slot refers to the leaf's mapping, which the leaf keeps until close().
                if (leaf.slots.compareAndExchange(s, null, mapping) == null) {
                    installed++;
                }
            }
        } else {
            for (int s = slot; s < slot + count; s++) {
                ByteBuffer fresh;
                try {
                    fresh = allocator.get();
                } catch (OutOfMemoryError e) {
                    // Direct memory is exhausted: this write fails, the server lives on.
                    budget.give(count - (s - slot));
                    pages.add(installed);
                    return false;
                }
                // OWNERSHIP: the store owns the page until zero() or close() clears its slot; a page that
                // lost the race is garbage.
                if (leaf.slots.compareAndExchange(s, null, fresh) == null) {
                    installed++;
                } else {
                    budget.give(1);
                }
            }
            pages.add(installed);
            return true;
        }
        budget.give(count - installed);
        pages.add(installed);
        return true;
    }

    /**
     * Releases the {@code count} slots from {@code slot} on; on a mapped leaf, the kernel takes the whole
     * run's memory back in one call, held or not (a write racing with the discard may have touched it).
     */
    private void release(Leaf leaf, int slot, int count) {
        int released = 0;
        for (int s = slot; s < slot + count; s++) {
            if (leaf.slots.getAndSet(s, null) != null) {
                released++;
            }
        }
        if (leaf.mapping != null) {
            Objects.requireNonNull(mappings)
                    .release(leaf.mapping, (long) slot << PAGE_SHIFT, (long) count << PAGE_SHIFT);
        }
        pages.add(-released);
        budget.give(released);
    }

    /** Returns the leaf, creating and installing it if needed, or {@code null} when out of memory. */
    private @Nullable Leaf leafForWrite(int leafIndex) {
        Leaf leaf = leaves.get(leafIndex);
        if (leaf != null) {
            return leaf;
        }
        // The last leaf maps only the pages left, so a small store needs only a small leaf.
        long first = (long) leafIndex << leafShift;
        int slots = (int) Math.min(1L << leafShift, pageCount - first);
        Leaf fresh;
        try {
            ByteBuffer mapping = mappings == null ? null : mappings.map((long) slots << PAGE_SHIFT);
            fresh = new Leaf(new AtomicReferenceArray<>(slots), mapping);
        } catch (OutOfMemoryError e) {
            return null; // the heap is exhausted: this write fails, the server lives on
        }
        Leaf witness = leaves.compareAndExchange(leafIndex, null, fresh);
        // OWNERSHIP: the store owns the installed leaf until close(); a leaf that lost the race is garbage,
        // and so is its mapping, which the collector unmaps.
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
