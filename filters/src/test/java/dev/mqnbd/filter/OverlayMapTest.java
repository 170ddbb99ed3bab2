package dev.mqnbd.filter;

import static dev.mqnbd.filter.OverlayMap.BASE;
import static dev.mqnbd.filter.OverlayMap.DATA;
import static dev.mqnbd.filter.OverlayMap.ZERO;
import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The copy-on-write map against a byte-per-byte model, and its memory on huge ranges. */
class OverlayMapTest {
    private final OverlayMap map = new OverlayMap();

    /** The runs of [from, to) as "start-end:state". */
    private List<String> runs(long from, long to) {
        List<String> out = new ArrayList<>();
        for (long at = from; at < to; ) {
            long end = map.runEnd(at, to);
            out.add(at + "-" + end + ":" + map.stateAt(at));
            at = end;
        }
        return out;
    }

    @Test
    void empty_isAllBase() {
        assertThat(runs(0, 100)).containsExactly("0-100:0");
        assertThat(map.allBase(0, 100)).isTrue();
        assertThat(map.noBase(0, 100)).isFalse();
    }

    @Test
    void overlappingWrites_splitAndMergeRuns() {
        map.set(10, 20, DATA);
        map.set(30, 40, DATA);
        map.set(15, 35, ZERO);
        assertThat(runs(0, 50)).containsExactly("0-10:0", "10-15:1", "15-35:2", "35-40:1", "40-50:0");
        map.set(15, 35, DATA);
        assertThat(runs(0, 50)).containsExactly("0-10:0", "10-40:1", "40-50:0");
        assertThat(map.size()).isEqualTo(1);
        map.set(12, 14, ZERO); // inside one run: splits it in three
        assertThat(runs(0, 50)).containsExactly("0-10:0", "10-12:1", "12-14:2", "14-40:1", "40-50:0");
        assertThat(map.noBase(10, 40)).isTrue();
        assertThat(map.allBase(40, 50)).isTrue();
        assertThat(map.allBase(39, 50)).isFalse();
    }

    @Test
    void zeroingATerabyte_isOneRun() {
        map.set(4096, 8192, DATA);
        map.set(0, 1L << 40, ZERO);
        assertThat(map.size()).isEqualTo(1);
        assertThat(map.stateAt(5000)).isEqualTo(ZERO);
        assertThat(map.runEnd(0, Long.MAX_VALUE)).isEqualTo(1L << 40);
    }

    @Test
    void randomOperations_agreeWithAByteModel() {
        Random random = new Random(7);
        int size = 4096;
        int[] model = new int[size];
        for (int i = 0; i < 5_000; i++) {
            int from = random.nextInt(size);
            int to = Math.min(size, from + 1 + random.nextInt(300));
            int state = random.nextBoolean() ? DATA : ZERO;
            map.set(from, to, state);
            for (int b = from; b < to; b++) {
                model[b] = state;
            }
            int probe = random.nextInt(size);
            assertThat(map.stateAt(probe)).isEqualTo(model[probe]);
        }
        for (int at = 0; at < size; ) {
            int end = (int) map.runEnd(at, size);
            assertThat(end).isGreaterThan(at);
            for (int b = at; b < end; b++) {
                assertThat(model[b]).as("byte %s", b).isEqualTo(map.stateAt(at));
            }
            if (end < size) {
                assertThat(model[end])
                        .as("runs end where the state changes, at %s", end)
                        .isNotEqualTo(model[at]);
            }
            at = end;
        }
        assertThat(map.stateAt(size)).isEqualTo(BASE);
    }
}
