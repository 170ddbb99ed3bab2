package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.offset;

import org.junit.jupiter.api.Test;

class HistogramTest {
    @Test
    void record_putsEachValueInTheFirstBucketWhoseBoundIsNotBelowIt() {
        Histogram h = new Histogram(1, 1, 2, 4);

        for (long v : new long[] {0, 1, 2, 3, 4, 5, 1000}) {
            h.record(v);
        }

        assertThat(h.counts()).containsExactly(2, 1, 2, 2);
        assertThat(h.count()).isEqualTo(7);
        assertThat(h.sum()).isEqualTo(1015.0);
        assertThat(h.upperBounds()).containsExactly(1, 2, 4, Double.POSITIVE_INFINITY);
    }

    @Test
    void scale_convertsBoundsAndSumToTheBaseUnit() {
        Histogram h = new Histogram(1e-9, 1_000_000, 1_000_000_000);

        h.record(500_000);
        h.record(2_000_000);

        assertThat(h.upperBounds()).containsExactly(0.001, 1.0, Double.POSITIVE_INFINITY);
        assertThat(h.counts()).containsExactly(1, 1, 0);
        assertThat(h.sum()).isCloseTo(0.0025, offset(1e-12));
    }

    @Test
    void bounds_mustBeGivenAndAscending() {
        assertThatThrownBy(() -> new Histogram(1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Histogram(1, 2, 2))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("bounds[1]");
    }
}
