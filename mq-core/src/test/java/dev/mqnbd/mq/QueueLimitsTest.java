package dev.mqnbd.mq;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.EnumSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class QueueLimitsTest {

    private static QueueLimits limits(long capacity, int logical, int physical, int maxTransfer, int discard) {
        return new QueueLimits(capacity, logical, physical, maxTransfer, discard, Set.of(), false);
    }

    @Test
    void constructor_validLimits_keepsThem() {
        EnumSet<Feature> features = EnumSet.of(Feature.FLUSH, Feature.DISCARD);
        QueueLimits limits = new QueueLimits(1L << 40, 512, 4096, 1 << 20, 4096, features, false);

        assertThat(limits.capacity()).isEqualTo(1L << 40);
        assertThat(limits.logicalBlockSize()).isEqualTo(512);
        assertThat(limits.physicalBlockSize()).isEqualTo(4096);
        assertThat(limits.maxTransferBytes()).isEqualTo(1 << 20);
        assertThat(limits.discardGranularity()).isEqualTo(4096);
        assertThat(limits.has(Feature.FLUSH)).isTrue();
        assertThat(limits.has(Feature.FUA)).isFalse();
        assertThat(limits.readOnly()).isFalse();
    }

    @Test
    void constructor_copiesFeatures() {
        EnumSet<Feature> features = EnumSet.of(Feature.FLUSH);
        QueueLimits limits = new QueueLimits(4096, 512, 512, 4096, 0, features, false);
        features.add(Feature.DISCARD);

        assertThat(limits.has(Feature.DISCARD)).isFalse();
        assertThatThrownBy(() -> limits.features().add(Feature.FUA)).isInstanceOf(UnsupportedOperationException.class);
    }

    @Test
    void logicalBlockSize_notPowerOfTwo_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(4096, 1000, 4096, 4096, 0))
                .withMessage("logicalBlockSize: 1000 (expected: a power of two)");
    }

    @Test
    void logicalBlockSize_zero_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(4096, 0, 4096, 4096, 0))
                .withMessage("logicalBlockSize: 0 (expected: a power of two)");
    }

    @Test
    void physicalBlockSize_notPowerOfTwo_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(4096, 512, 3072, 4096, 0))
                .withMessage("physicalBlockSize: 3072 (expected: a power of two)");
    }

    @Test
    void physicalBlockSize_belowLogical_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(1 << 20, 4096, 512, 1 << 16, 0))
                .withMessage("physicalBlockSize: 512 (expected: >= logicalBlockSize 4096)");
    }

    @Test
    void capacity_negative_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(-1, 512, 512, 4096, 0))
                .withMessage("capacity: -1 (expected: >= 0)");
    }

    @Test
    void maxTransferBytes_belowLogical_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(1 << 20, 4096, 4096, 512, 0))
                .withMessage("maxTransferBytes: 512 (expected: >= 4096)");
    }

    @Test
    void discardGranularity_negative_throws() {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> limits(1 << 20, 512, 512, 4096, -512))
                .withMessage("discardGranularity: -512 (expected: >= 0)");
    }

    @Test
    void withReadOnly_changesOnlyReadOnly() {
        QueueLimits limits = new QueueLimits(8192, 512, 4096, 4096, 0, EnumSet.of(Feature.FUA), false);

        QueueLimits readOnly = limits.withReadOnly(true);

        assertThat(readOnly.readOnly()).isTrue();
        assertThat(readOnly.withReadOnly(false)).isEqualTo(limits);
    }
}
