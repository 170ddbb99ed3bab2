/**
 * The Prometheus endpoint of {@code mqnbd serve --metrics}: {@link dev.mqnbd.server.metrics.MetricsEndpoint}
 * serves {@code /metrics} with the Prometheus Java client, read from counters kept without locks on the I/O
 * path (per-export request counters of {@link dev.mqnbd.filter.ExportStats}, the hardware queues' counters,
 * the backends' own) and from connection events. The README lists every metric.
 */
@NullMarked
package dev.mqnbd.server.metrics;

import org.jspecify.annotations.NullMarked;
