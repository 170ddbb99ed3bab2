package dev.mqnbd.server.metrics;

import dev.mqnbd.storage.Histogram;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets;
import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot.HistogramDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
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

    /** Collects the data points of one counter family, in the order added; empty families are left out. */
    static final class Counter {
        private final String name;
        private final String help;
        private final List<CounterDataPointSnapshot> points = new ArrayList<>();

        Counter(String name, String help) {
            this.name = name;
            this.help = help;
        }

        Counter add(Labels labels, double value) {
            points.add(counter(labels, value));
            return this;
        }

        void addTo(List<MetricSnapshot> out) {
            if (!points.isEmpty()) {
                CounterSnapshot.Builder b = CounterSnapshot.builder().name(name).help(help);
                points.forEach(b::dataPoint);
                out.add(b.build());
            }
        }
    }

    /** Collects the data points of one gauge family, in the order added; empty families are left out. */
    static final class Gauge {
        private final String name;
        private final String help;
        private final List<GaugeDataPointSnapshot> points = new ArrayList<>();

        Gauge(String name, String help) {
            this.name = name;
            this.help = help;
        }

        Gauge add(Labels labels, double value) {
            points.add(gauge(labels, value));
            return this;
        }

        void addTo(List<MetricSnapshot> out) {
            if (!points.isEmpty()) {
                GaugeSnapshot.Builder b = GaugeSnapshot.builder().name(name).help(help);
                points.forEach(b::dataPoint);
                out.add(b.build());
            }
        }
    }

    /** Collects the data points of one classic histogram family, in the order added; empty families are left out. */
    static final class Distribution {
        private final String name;
        private final String help;
        private final List<HistogramDataPointSnapshot> points = new ArrayList<>();

        Distribution(String name, String help) {
            this.name = name;
            this.help = help;
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

        void addTo(List<MetricSnapshot> out) {
            if (!points.isEmpty()) {
                HistogramSnapshot.Builder b =
                        HistogramSnapshot.builder().name(name).help(help);
                points.forEach(b::dataPoint);
                out.add(b.build());
            }
        }
    }
}
