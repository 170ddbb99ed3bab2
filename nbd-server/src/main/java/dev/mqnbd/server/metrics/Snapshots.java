package dev.mqnbd.server.metrics;

import dev.mqnbd.storage.Histogram;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.DataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot.HistogramDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricMetadata;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import java.util.ArrayList;
import java.util.List;

/** Builds the data points of one scrape: small helpers over the client's snapshot builders. */
final class Snapshots {
    private Snapshots() {}

    static CounterDataPointSnapshot counter(Labels labels, double value) {
        return CounterDataPointSnapshot.builder().labels(labels).value(value).build();
    }

    static GaugeDataPointSnapshot gauge(Labels labels, double value) {
        return GaugeDataPointSnapshot.builder().labels(labels).value(value).build();
    }

    /**
     * The data points of one metric family, in the order added; an empty family is left out of the scrape
     * (an error series, for instance, appears with its first error).
     */
    abstract static class Family<P extends DataPointSnapshot> {
        private final MetricMetadata metadata;
        final List<P> points = new ArrayList<>();

        Family(String name, String help) {
            this.metadata = new MetricMetadata(name, help);
        }

        abstract MetricSnapshot snapshot(MetricMetadata metadata, List<P> points);

        void addTo(List<MetricSnapshot> out) {
            if (!points.isEmpty()) {
                out.add(snapshot(metadata, points));
            }
        }
    }

    /** A counter family. */
    static final class Counter extends Family<CounterDataPointSnapshot> {
        Counter(String name, String help) {
            super(name, help);
        }

        Counter add(Labels labels, double value) {
            points.add(counter(labels, value));
            return this;
        }

        @Override
        MetricSnapshot snapshot(MetricMetadata metadata, List<CounterDataPointSnapshot> points) {
            return new CounterSnapshot(metadata, points);
        }
    }

    /** A gauge family. */
    static final class Gauge extends Family<GaugeDataPointSnapshot> {
        Gauge(String name, String help) {
            super(name, help);
        }

        Gauge add(Labels labels, double value) {
            points.add(gauge(labels, value));
            return this;
        }

        @Override
        MetricSnapshot snapshot(MetricMetadata metadata, List<GaugeDataPointSnapshot> points) {
            return new GaugeSnapshot(metadata, points);
        }
    }

    /** A classic histogram family. */
    static final class Distribution extends Family<HistogramDataPointSnapshot> {
        Distribution(String name, String help) {
            super(name, help);
        }

        /**
         * Adds a data point: {@code upperBounds} ascending with {@code +Inf} last, {@code counts} per bucket
         * (not cumulative: the client's model adds them up), {@code sum} of the observations.
         */
        Distribution add(Labels labels, double[] upperBounds, long[] counts, double sum) {
            points.add(HistogramDataPointSnapshot.builder()
                    .labels(labels)
                    .classicHistogramBuckets(ClassicHistogramBuckets.of(upperBounds, counts))
                    .sum(sum)
                    .build());
            return this;
        }

        /** Adds a data point of a backend's {@link Histogram}, read now. */
        Distribution add(Labels labels, Histogram h) {
            return add(labels, h.upperBounds(), h.counts(), h.sum());
        }

        @Override
        MetricSnapshot snapshot(MetricMetadata metadata, List<HistogramDataPointSnapshot> points) {
            return new HistogramSnapshot(metadata, points);
        }
    }
}
