package dev.mqnbd.server.metrics;

import io.prometheus.metrics.model.snapshots.CounterSnapshot;
import io.prometheus.metrics.model.snapshots.CounterSnapshot.CounterDataPointSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot;
import io.prometheus.metrics.model.snapshots.GaugeSnapshot.GaugeDataPointSnapshot;
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
}
