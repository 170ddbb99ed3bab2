package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class BlockMapTest {
    @Test
    void setClear_andNextSet_acrossWords() {
        BlockMap map = new BlockMap(200);
        map.set(3);
        map.set(64);
        map.set(199);
        map.set(64);

        assertThat(map.count()).isEqualTo(3);
        assertThat(map.mayExist(3)).isTrue();
        assertThat(map.mayExist(4)).isFalse();
        assertThat(map.nextSet(0, 200)).isEqualTo(3);
        assertThat(map.nextSet(4, 200)).isEqualTo(64);
        assertThat(map.nextSet(65, 200)).isEqualTo(199);
        assertThat(map.nextSet(65, 150)).isEqualTo(150);

        map.clear(64);
        map.clear(65);

        assertThat(map.nextSet(4, 200)).isEqualTo(199);
        assertThat(map.count()).isEqualTo(2);
    }

    @Test
    void terabyteIn64KBlocks_fitsInTwoMebibytes() {
        BlockMap map = new BlockMap((1L << 40) / (64 << 10));
        map.set(map.blocks() - 1);

        assertThat(map.nextSet(0, map.blocks())).isEqualTo(map.blocks() - 1);
    }
}
