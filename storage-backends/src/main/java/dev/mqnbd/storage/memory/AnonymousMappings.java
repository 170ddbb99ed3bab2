package dev.mqnbd.storage.memory;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;

/**
 * Private anonymous memory mappings for {@link MemoryStore}'s leaves, bound with the Foreign Function and
 * Memory API: {@code mmap} with {@code MAP_NORESERVE}, {@code madvise(MADV_POPULATE_WRITE)} to allocate a
 * run of pages in one call, {@code madvise(MADV_DONTNEED)} to give pages back at once, and {@code munmap}
 * once nothing refers to a mapping any more.
 *
 * <p>Why: a page that a write touches first costs a page fault, and a fault costs several microseconds
 * on a virtual machine (6.4 µs per 4 KiB page measured on a 2-core VM, 1.7 s of system time per GiB).
 * Populating the pages of a whole write in one {@code madvise} call costs 0.2 s per GiB there. A direct
 * {@link ByteBuffer} per page also costs a {@code malloc}, a zeroing pass and a cleaner each.
 *
 * <p><b>Ownership:</b> {@link #map} returns a buffer over a fresh mapping whose memory is unmapped by the
 * garbage collector's cleaner once neither the buffer nor any slice of it is reachable, so a reply that
 * still holds a slice never touches unmapped memory.
 *
 * <p><b>Threading:</b> every method is safe for concurrent use.
 */
final class AnonymousMappings {
    private static final int PROT_READ = 1;
    private static final int PROT_WRITE = 2;
    private static final int MAP_PRIVATE = 0x02;
    private static final int MAP_ANONYMOUS = 0x20;
    private static final int MAP_NORESERVE = 0x4000;
    private static final int MADV_DONTNEED = 4;
    private static final int MADV_NOHUGEPAGE = 15;
    private static final int MADV_POPULATE_WRITE = 23;

    /** Largest mapping handed out: a {@link ByteBuffer} holds at most 2 GiB; 1 GiB keeps it a power of two. */
    static final long MAX_MAPPING = 1L << 30;

    /** The instance of this process, or {@code null} where mappings cannot be made (not Linux, no native access). */
    static final @Nullable AnonymousMappings SYSTEM = create();

    private final MethodHandle mmap;
    private final MethodHandle munmap;
    private final MethodHandle madvise;
    private final boolean populate;
    private final long maxMappings;
    private final long maxMappedBytes;
    private final AtomicLong mappings = new AtomicLong();
    private final AtomicLong mappedBytes = new AtomicLong();

    private AnonymousMappings(Linker linker, SymbolLookup lookup, long maxMappings) {
        this.mmap = linker.downcallHandle(
                lookup.find("mmap").orElseThrow(),
                FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
        this.munmap = linker.downcallHandle(
                lookup.find("munmap").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        this.madvise = linker.downcallHandle(
                lookup.find("madvise").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
        this.maxMappings = maxMappings;
        // Address space is plentiful (128 TiB for a process on x86-64) but not endless: leave most of it.
        this.maxMappedBytes = 16L << 40;
        this.populate = probePopulate();
    }

    private static @Nullable AnonymousMappings create() {
        // The JVM, its threads and malloc need mappings of their own: take at most a quarter of the limit.
        return limitedTo(maxMapCount() / 4);
    }

    /**
     * Returns an instance that keeps at most {@code maxMappings} mappings at once (tests use a small
     * one), or {@code null} where mappings cannot be made (not Linux, native access not enabled).
     */
    static @Nullable AnonymousMappings limitedTo(long maxMappings) {
        if (!System.getProperty("os.name", "").equals("Linux")
                || !AnonymousMappings.class.getModule().isNativeAccessEnabled()) {
            return null;
        }
        try {
            Linker linker = Linker.nativeLinker();
            return new AnonymousMappings(linker, linker.defaultLookup(), maxMappings);
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }

    private static long maxMapCount() {
        // Not Files.readString: it trusts the size a /proc file reports and may return a part of it.
        try (InputStream in = Files.newInputStream(Path.of("/proc/sys/vm/max_map_count"))) {
            return Long.parseLong(new String(in.readAllBytes(), StandardCharsets.US_ASCII).strip());
        } catch (IOException | NumberFormatException e) {
            return 65530; // the kernel's default
        }
    }

    /** Whether this kernel knows {@code MADV_POPULATE_WRITE} (Linux 5.14 and later), tried on a page of its own. */
    private boolean probePopulate() {
        try {
            MemorySegment page = ((MemorySegment) mmap.invokeExact(
                            MemorySegment.NULL,
                            (long) MemoryStore.PAGE_SIZE,
                            PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS,
                            -1,
                            0L))
                    .reinterpret(MemoryStore.PAGE_SIZE);
            if (page.address() == -1L) {
                return false;
            }
            boolean known = (int) madvise.invokeExact(page, (long) MemoryStore.PAGE_SIZE, MADV_POPULATE_WRITE) == 0;
            int unmapped = (int) munmap.invokeExact(page, (long) MemoryStore.PAGE_SIZE);
            return known && unmapped == 0;
        } catch (Throwable t) {
            throw linkageFailure("probe", t);
        }
    }

    /**
     * Maps {@code size} bytes (a multiple of the page size, at most {@link #MAX_MAPPING}) of zeroes that
     * cost no memory until populated or written; huge pages are turned off so a 4 KiB write costs 4 KiB.
     * Returns {@code null} when the mapping cannot be made or this process's share of mappings or of
     * address space is used up: the caller falls back to buffers of its own.
     */
    @Nullable
    ByteBuffer map(long size) {
        if (size <= 0 || size > MAX_MAPPING || size % MemoryStore.PAGE_SIZE != 0) {
            throw new IllegalArgumentException("size: " + size + " (expected: whole pages, at most 1 GiB)");
        }
        long count = mappings.incrementAndGet();
        if (mappedBytes.addAndGet(size) > maxMappedBytes || count > maxMappings) {
            unaccount(size);
            return null;
        }
        MemorySegment raw;
        try {
            raw = (MemorySegment) mmap.invokeExact(
                    MemorySegment.NULL,
                    size,
                    PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1,
                    0L);
        } catch (Throwable t) {
            unaccount(size);
            throw linkageFailure("mmap", t);
        }
        if (raw.address() == -1L) {
            unaccount(size);
            return null;
        }
        // OWNERSHIP: the automatic arena unmaps the range once the segment, the buffer and every slice of
        // it are unreachable; the cleanup runs on the collector's cleaner thread.
        MemorySegment segment = raw.reinterpret(size, Arena.ofAuto(), unused -> unmap(raw.address(), size));
        ByteBuffer buffer = segment.asByteBuffer();
        advise(buffer, 0, size, MADV_NOHUGEPAGE); // best effort: without it THP may back a 4 KiB write with 2 MiB
        return buffer;
    }

    /**
     * Allocates the pages of {@code [offset, offset + length)} of {@code mapping} in one call, as writes
     * to them would one fault at a time. Returns {@code false} when the kernel cannot supply them (out of
     * memory); where the kernel lacks the call it returns {@code true} and the writes fault the pages in.
     */
    boolean populate(ByteBuffer mapping, long offset, long length) {
        return !populate || advise(mapping, offset, length, MADV_POPULATE_WRITE);
    }

    /** Gives the pages of {@code [offset, offset + length)} back to the kernel now; they read as zeroes after. */
    void release(ByteBuffer mapping, long offset, long length) {
        advise(mapping, offset, length, MADV_DONTNEED);
    }

    /** Returns the number of mappings that are mapped now (including those waiting for the collector). */
    long mappings() {
        return mappings.get();
    }

    private boolean advise(ByteBuffer mapping, long offset, long length, int advice) {
        MemorySegment segment = MemorySegment.ofBuffer(mapping);
        try {
            return (int) madvise.invokeExact(segment.asSlice(offset, length), length, advice) == 0;
        } catch (Throwable t) {
            throw linkageFailure("madvise", t);
        }
    }

    private void unmap(long address, long size) {
        try {
            int rc = (int) munmap.invokeExact(MemorySegment.ofAddress(address), size);
            assert rc == 0 : "munmap failed";
        } catch (Throwable t) {
            throw linkageFailure("munmap", t);
        } finally {
            unaccount(size);
        }
    }

    private void unaccount(long size) {
        mappings.decrementAndGet();
        mappedBytes.addAndGet(-size);
    }

    private static IllegalStateException linkageFailure(String call, Throwable t) {
        return new IllegalStateException("libc " + call + " failed: " + t, t);
    }
}
