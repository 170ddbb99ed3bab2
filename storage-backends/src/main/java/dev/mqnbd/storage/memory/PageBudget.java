package dev.mqnbd.storage.memory;

import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.management.ManagementFactory;
import java.util.concurrent.atomic.AtomicLong;

/**
 * How many {@link MemoryStore#PAGE_SIZE} pages the memory stores of this process may hold together. Pages
 * of an anonymous mapping are not JVM direct memory, so nothing else would stop a client from writing the
 * host into the kernel's OOM killer; the {@link #PROCESS} budget keeps the documented bound instead: the
 * JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}, by default the maximum heap size).
 *
 * <p><b>Threading:</b> safe for concurrent use; {@link #tryTake} never lets the pages taken exceed the limit.
 */
final class PageBudget {
    /** The budget every store of this process shares unless built with another. */
    static final PageBudget PROCESS = new PageBudget(maxDirectMemory() >>> MemoryStore.PAGE_SHIFT);

    private final long limit;
    private final AtomicLong taken = new AtomicLong();

    PageBudget(long limitPages) {
        this.limit = limitPages;
    }

    /** Takes {@code pages} from the budget, or nothing and returns {@code false} when they would exceed it. */
    boolean tryTake(long pages) {
        long now = taken.get();
        while (true) {
            if (pages > limit - now) {
                return false;
            }
            long witness = taken.compareAndExchange(now, now + pages);
            if (witness == now) {
                return true;
            }
            now = witness;
        }
    }

    /** Returns {@code pages} taken before. */
    void give(long pages) {
        taken.addAndGet(-pages);
    }

    /** Returns the pages taken now; a snapshot. */
    long taken() {
        return taken.get();
    }

    /** Returns the limit in pages. */
    long limit() {
        return limit;
    }

    private static long maxDirectMemory() {
        long max = 0;
        try {
            HotSpotDiagnosticMXBean vm = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            max = Long.parseLong(vm.getVMOption("MaxDirectMemorySize").getValue());
        } catch (RuntimeException | LinkageError e) {
            // Not HotSpot, or no java.management: fall back to the JVM's own default below.
        }
        // 0 means unset, and the JVM then allows as much direct memory as it allows heap.
        return max > 0 ? max : Runtime.getRuntime().maxMemory();
    }
}
