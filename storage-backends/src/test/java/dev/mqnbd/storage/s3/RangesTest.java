package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class RangesTest {
    @Test
    void add_mergesRangesThatOverlapOrTouch_andKeepsOthersApart() {
        Ranges r = new Ranges();
        r.add(100, 200);
        r.add(300, 400);
        r.add(0, 10);
        assertThat(r).hasToString("[0-10, 100-200, 300-400]");

        r.add(200, 250);
        r.add(90, 100);
        assertThat(r).hasToString("[0-10, 90-250, 300-400]");

        r.add(5, 350);
        assertThat(r).hasToString("[0-400]");
        r.add(7, 7);
        assertThat(r.count()).isEqualTo(1);
    }

    @Test
    void covers_onlyWhatOneRangeHolds() {
        Ranges r = new Ranges();
        r.add(0, 4096);
        r.add(8192, 12288);

        assertThat(r.covers(0, 4096)).isTrue();
        assertThat(r.covers(100, 200)).isTrue();
        assertThat(r.covers(4000, 4097)).isFalse();
        assertThat(r.covers(4096, 8192)).isFalse();
        assertThat(r.covers(8192, 12288)).isTrue();
        assertThat(r.covers(12287, 12289)).isFalse();
        assertThat(r.covers(50, 50)).isTrue();
    }

    @Test
    void manySmallRanges_growTheArrays_andFillUpToOne() {
        Ranges r = new Ranges();
        for (int i = 255; i >= 0; i -= 2) {
            r.add(i * 4096, (i + 1) * 4096);
        }
        assertThat(r.count()).isEqualTo(128);
        for (int i = 0; i < 256; i += 2) {
            r.add(i * 4096, (i + 1) * 4096);
        }
        assertThat(r).hasToString("[0-1048576]");
        assertThat(r.covers(0, 1 << 20)).isTrue();
    }

    @Test
    void copyGaps_copiesOnlyTheBytesOutsideTheRanges() {
        Ranges r = new Ranges();
        r.add(2, 4);
        r.add(6, 7);
        byte[] stored = {1, 1, 1, 1, 1, 1, 1, 1};
        byte[] data = {0, 0, 9, 9, 0, 0, 9, 0};

        r.copyGaps(stored, data);

        assertThat(data).containsExactly(1, 1, 9, 9, 1, 1, 9, 1);
    }
}
