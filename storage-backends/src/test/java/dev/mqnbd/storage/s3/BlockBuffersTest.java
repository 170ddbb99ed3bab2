package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.IdentityHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The pool of block-size arrays: what it keeps, what it hands out, and its bound. */
class BlockBuffersTest {
    private static final int BLOCK = 1 << 20;

    @Test
    void anArrayGivenBack_isTakenOnce() {
        BlockBuffers buffers = new BlockBuffers(BLOCK);
        byte[] a = new byte[BLOCK];
        buffers.give(a);

        assertThat(buffers.take()).isSameAs(a);
        assertThat(buffers.take()).isNotSameAs(a).hasSize(BLOCK);
        assertThat(buffers.reused()).isEqualTo(1);
    }

    @Test
    void arraysOfAnotherLength_areNotKept() {
        BlockBuffers buffers = new BlockBuffers(BLOCK);
        buffers.give(new byte[BLOCK - 1]);
        buffers.give(new byte[2 * BLOCK]);

        assertThat(buffers.take()).hasSize(BLOCK);
        assertThat(buffers.reused()).isZero();
    }

    @Test
    void thePool_keepsAtMostItsBound_andDropsTheRest() {
        BlockBuffers buffers = new BlockBuffers(BLOCK);
        int bound = (int) (BlockBuffers.MAX_POOLED_BYTES / BLOCK);
        Map<byte[], Boolean> given = new IdentityHashMap<>();
        for (int i = 0; i < bound + 5; i++) {
            byte[] a = new byte[BLOCK];
            given.put(a, true);
            buffers.give(a);
        }

        for (int i = 0; i < bound; i++) {
            assertThat(given.remove(buffers.take())).as("take %d", i).isTrue();
        }
        assertThat(given).hasSize(5);
        assertThat(given.containsKey(buffers.take())).isFalse();
        assertThat(buffers.reused()).isEqualTo(bound);
    }

    @Test
    void blocksLargerThanTheBound_stillKeepOne() {
        BlockBuffers buffers = new BlockBuffers((int) BlockBuffers.MAX_POOLED_BYTES * 2);
        byte[] a = new byte[(int) BlockBuffers.MAX_POOLED_BYTES * 2];
        buffers.give(a);
        buffers.give(new byte[(int) BlockBuffers.MAX_POOLED_BYTES * 2]);

        assertThat(buffers.take()).isSameAs(a);
        assertThat(buffers.reused()).isEqualTo(1);
    }

    @Test
    void bodies_reuseOnlyForTheBlockSize() {
        BlockBuffers buffers = new BlockBuffers(BLOCK);
        byte[] a = new byte[BLOCK];
        buffers.give(a);

        byte[] shortBody = buffers.bodies.apply(512);
        assertThat(shortBody).hasSize(512).containsOnly((byte) 0);
        assertThat(buffers.bodies.apply(BLOCK)).isSameAs(a);
    }
}
