package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * {@code delay}: adds a fixed delay to the requests of each kind named, without holding up any thread
 * (the request waits on a timer); nbdkit's delay filter.
 */
public final class DelayFilterKind extends DescribedFilterKind {
    private static final List<String> OPS = List.of("read", "write", "flush", "trim", "zero", "cache", "block-status");

    /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
    public DelayFilterKind() {
        super(
                "delay",
                "adds a delay to requests, per kind of request",
                OPS.stream()
                        .map(op -> op + "=DURATION  delay of each " + op + " request, e.g. 10ms")
                        .toList(),
                "vm=delay,read=5ms,write=20ms");
    }

    @Override
    public <N, Q, T, R> Filter<?, N, Q, T, R> create(
            Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context) {
        if (settings.values().isEmpty()) {
            throw new IllegalArgumentException("filter delay: no delay given (expected: at least one of "
                    + String.join("=, ", OPS) + "=, e.g. read=10ms)");
        }
        FaultInjectingOperations<N, Q, T, R> filter =
                FaultInjectingOperations.wrap(next, below, "delay(" + settings + ")");
        for (String name : OPS) {
            Duration delay = settings.duration(name, Duration.ZERO);
            if (!delay.isZero()) {
                ReqOp op = Objects.requireNonNull(ErrorFilterKind.op(name));
                filter.add(FaultRule.on(op).name("delay " + name).delay(delay));
            }
        }
        return filter;
    }
}
