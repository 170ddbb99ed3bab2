package dev.mqnbd.storage.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Where a store's pages live: anonymous mappings (the tests run on Linux with native access enabled, as the
 * server does), buffers of their own once mappings run out, and the budget both share.
 */
class MemoryStoreMemoryTest {
    private static final int PAGE = MemoryStore.PAGE_SIZE;
    private static final int LEAF = 1024 * PAGE; // leaves of stores up to 4 TiB

    @Test
    void new_onLinuxWithNativeAccess_mapsItsLeaves() {
        MemoryStore store = new MemoryStore(3L * LEAF);
        assertThat(store.mapped()).isTrue();

        store.write(LEAF + 5, ByteBuffer.allocate(1), 0, 1);

        assertThat(store.mappedLeaves()).isEqualTo(1);
    }

    @Test
    void zero_releasingMappedPages_givesTheirMemoryBackAtOnce() throws IOException {
        int bytes = 256 << 20;
        MemoryStore store = new MemoryStore(bytes);
        ByteBuffer src = ByteBuffer.wrap(random(1, 1 << 20));
        for (long offset = 0; offset < bytes; offset += src.capacity()) {
            assertThat(store.write(offset, src, 0, src.capacity())).isTrue();
        }
        long held = residentKiB();

        store.zero(0, bytes, true);

        // No collection runs in between: the kernel took the pages back when the discard returned.
        assertThat(held - residentKiB()).as("KiB given back").isGreaterThan(200 << 10);
        assertThat(store.allocatedBytes()).isZero();
        ByteBuffer dst = ByteBuffer.allocate(PAGE);
        store.read(bytes - PAGE, dst, 0, PAGE);
        assertThat(dst.array()).containsOnly(0);
    }

    @Test
    void views_handedOutBeforeADiscardOrClose_stayReadable_andShowOnlyTheirOwnRange() {
        MemoryStore store = new MemoryStore(2L * LEAF);
        byte[] first = random(2, 3 * PAGE);
        store.write(0, ByteBuffer.wrap(first), 0, first.length);
        List<ByteBuffer> views = new ArrayList<>();
        store.readSegments(100, 3 * PAGE - 100, views::add);
        assertThat(concat(views)).isEqualTo(java.util.Arrays.copyOfRange(first, 100, first.length));

        store.zero(0, 3 * PAGE, true);
        assertThat(concat(views)).as("after the discard").containsOnly(0);

        byte[] second = random(3, PAGE);
        store.write(LEAF, ByteBuffer.wrap(second), 0, PAGE); // another range: never shows through
        store.write(PAGE, ByteBuffer.wrap(second), 0, PAGE); // the same range again
        byte[] seen = concat(views);
        assertThat(java.util.Arrays.copyOfRange(seen, 0, PAGE - 100)).containsOnly(0);
        assertThat(java.util.Arrays.copyOfRange(seen, PAGE - 100, 2 * PAGE - 100))
                .isEqualTo(second);
        assertThat(java.util.Arrays.copyOfRange(seen, 2 * PAGE - 100, seen.length))
                .containsOnly(0);

        store.close();
        System.gc(); // the views keep the mapping: touching them after a collection must not crash the JVM
        assertThat(concat(views)).as("after close").containsOnly(0);
    }

    @Test
    void leaves_pastTheMappingLimit_holdBuffers_andKeepEveryByte() {
        AnonymousMappings one = Objects.requireNonNull(AnonymousMappings.limitedTo(1));
        MemoryStore store = new MemoryStore(3L * LEAF - 512, one, new PageBudget(1 << 20), MemoryStoreMemoryTest::page);
        byte[] data = random(4, 3 * LEAF - 512 - 7);

        assertThat(store.write(7, ByteBuffer.wrap(data), 0, data.length)).isTrue();

        assertThat(store.mappedLeaves()).isEqualTo(1);
        assertThat(store.allocatedBytes()).isEqualTo(3L * LEAF);
        ByteBuffer dst = ByteBuffer.allocate(data.length);
        store.read(7, dst, 0, data.length);
        assertThat(dst.array()).isEqualTo(data);
        // Zero a range across the mapped leaf and the buffers, partly and wholly covered pages.
        store.zero(LEAF - PAGE - 3, LEAF + 2 * PAGE + 6, true);
        store.read(7, dst, 0, data.length);
        byte[] expected = data.clone();
        java.util.Arrays.fill(expected, LEAF - PAGE - 10, 2 * LEAF + PAGE - 4, (byte) 0);
        assertThat(dst.array()).isEqualTo(expected);
        assertThat(store.allocatedBytes()).isEqualTo(3L * LEAF - (LEAF + 2 * PAGE));
    }

    @ParameterizedTest(name = "mapped={0}")
    @ValueSource(booleans = {true, false})
    void write_pastTheBudget_failsWithoutTakingMore_andReleasesGiveBack(boolean mapped) {
        PageBudget budget = new PageBudget(8);
        MemoryStore store =
                new MemoryStore(LEAF, mapped ? AnonymousMappings.SYSTEM : null, budget, MemoryStoreMemoryTest::page);
        byte[] eight = random(5, 8 * PAGE);
        assertThat(store.write(0, ByteBuffer.wrap(eight), 0, eight.length)).isTrue();
        assertThat(store.mappedLeaves()).isEqualTo(mapped ? 1 : 0);

        assertThat(store.allocate(8 * PAGE, PAGE)).isFalse();
        assertThat(store.write(7 * PAGE, ByteBuffer.wrap(eight), 0, 2 * PAGE)).isFalse();
        assertThat(store.write(PAGE, ByteBuffer.wrap(eight), 0, PAGE))
                .as("held pages need nothing")
                .isTrue();
        assertThat(store.allocatedBytes()).isEqualTo(8 * PAGE);
        assertThat(budget.taken()).isEqualTo(8);

        store.zero(0, 4 * PAGE, true);
        assertThat(budget.taken()).isEqualTo(4);
        assertThat(store.write(100 * PAGE, ByteBuffer.wrap(eight), 0, 4 * PAGE)).isTrue();
        assertThat(budget.taken()).isEqualTo(8);

        store.close();
        assertThat(budget.taken()).isZero();
    }

    @Test
    void mappedRuns_areOneViewAndOneCopy_splitAtHolesAndLeafEnds_andKeepEveryByte() {
        MemoryStore store = new MemoryStore(3L * LEAF);
        byte[] image = new byte[3 * LEAF];
        // Written unaligned across the first leaf's end, then a hole punched inside the run.
        byte[] data = random(7, LEAF + 3 * PAGE + 123);
        int at = LEAF / 2 + 77;
        assertThat(store.write(at, ByteBuffer.wrap(data), 0, data.length)).isTrue();
        System.arraycopy(data, 0, image, at, data.length);
        int hole = LEAF / 2 + 16 * PAGE;
        store.zero(hole, 2 * PAGE, true);
        java.util.Arrays.fill(image, hole, hole + 2 * PAGE, (byte) 0);

        // Held run in leaf 0 up to the hole, the hole, held run to leaf 0's end, leaf 1 up to the written end.
        List<ByteBuffer> views = new ArrayList<>();
        store.readSegments(at, data.length, views::add);
        assertThat(views)
                .extracting(ByteBuffer::remaining)
                .containsExactly(hole - at, 2 * PAGE, LEAF - hole - 2 * PAGE, at + data.length - LEAF);
        assertThat(concat(views)).isEqualTo(java.util.Arrays.copyOfRange(image, at, at + data.length));

        // Copies cover the same bytes, from the whole store's start (a hole) past the written end.
        for (int[] range : new int[][] {{0, 3 * LEAF}, {at + 1, 5 * PAGE}, {LEAF - PAGE - 3, 2 * PAGE + 9}}) {
            ByteBuffer dst = ByteBuffer.allocateDirect(range[1] + 5);
            store.read(range[0], dst, 5, range[1]);
            byte[] got = new byte[range[1]];
            dst.get(5, got);
            assertThat(got)
                    .as("read at %d", range[0])
                    .isEqualTo(java.util.Arrays.copyOfRange(image, range[0], range[0] + range[1]));
        }

        // A write over the hole refills it and the run around it reads back whole, as one view again.
        byte[] again = random(8, 8 * PAGE);
        assertThat(store.write(hole - 3 * PAGE, ByteBuffer.wrap(again), 0, again.length))
                .isTrue();
        System.arraycopy(again, 0, image, hole - 3 * PAGE, again.length);
        views.clear();
        store.readSegments(at, LEAF - at, views::add);
        assertThat(views).hasSize(1);
        assertThat(concat(views)).isEqualTo(java.util.Arrays.copyOfRange(image, at, LEAF));
    }

    @Test
    void processBudget_isTheDirectMemoryLimit() {
        // The tests' JVM leaves -XX:MaxDirectMemorySize unset: the limit is then the maximum heap size.
        assertThat(PageBudget.PROCESS.limit()).isEqualTo(Runtime.getRuntime().maxMemory() / PAGE);
    }

    private static ByteBuffer page() {
        return ByteBuffer.allocateDirect(PAGE);
    }

    private static byte[] concat(List<ByteBuffer> views) {
        int length = views.stream().mapToInt(ByteBuffer::remaining).sum();
        byte[] out = new byte[length];
        int at = 0;
        for (ByteBuffer view : views) {
            view.get(view.position(), out, at, view.remaining());
            at += view.remaining();
        }
        return out;
    }

    private static long residentKiB() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    private static byte[] random(long seed, int length) {
        byte[] bytes = new byte[length];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }
}
