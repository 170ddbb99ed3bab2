package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.jspecify.annotations.Nullable;

/**
 * {@code error}: fails a random share of requests with an error of the user's choice, for testing how
 * software above the disk handles I/O errors; nbdkit's error filter. With one connection, the same seed
 * fails the same requests every run.
 */
public final class ErrorFilterKind extends DescribedFilterKind {
    /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
    public ErrorFilterKind() {
        super(
                "error",
                "fails a random share of requests with an error",
                List.of(
                        "rate=P  share of the chosen requests to fail, 0 to 1 or a percentage (required)",
                        "ops=OP[|OP...]  which requests: " + opNames() + " (default: read|write)",
                        "status=ERR  the error: EIO, ENOSPC, EINVAL, ENOTSUP, EPERM, ESHUTDOWN (default: EIO)",
                        "seed=N  seed of the coin; the same seed fails the same requests (default: 1)"),
                "*=error,rate=1%,ops=write,status=ENOSPC,seed=42");
    }

    @Override
    public <N, Q, T, R> Filter<?, N, Q, T, R> create(
            Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context) {
        double rate = settings.probability("rate", -1);
        if (rate < 0) {
            throw new IllegalArgumentException(
                    "filter error: rate=P is required (expected: e.g. rate=0.01 or rate=1%)");
        }
        List<ReqOp> ops = ops(settings, "ops", List.of(ReqOp.READ, ReqOp.WRITE));
        Status status = status(settings);
        long seed = settings.positive("seed", 1);
        FaultInjectingOperations<N, Q, T, R> filter =
                FaultInjectingOperations.wrap(next, below, "error(" + settings + ")");
        filter.add(FaultRule.on(ops.getFirst(), ops.subList(1, ops.size()).toArray(ReqOp[]::new))
                .name("error")
                .probability(rate, seed)
                .fail(status));
        return filter;
    }

    /** Parses {@code read|write|...}. */
    static List<ReqOp> ops(FilterSettings settings, String key, List<ReqOp> fallback) {
        String v = settings.get(key).orElse(null);
        if (v == null) {
            return fallback;
        }
        List<ReqOp> ops = new ArrayList<>();
        for (String name : v.split("\\|")) {
            ReqOp op = op(name.strip());
            if (op == null) {
                throw settings.bad(key, v, "operations joined by |, from " + opNames());
            }
            if (!ops.contains(op)) {
                ops.add(op);
            }
        }
        return ops;
    }

    /** Returns the operation a command-line name stands for, or {@code null}. */
    static @Nullable ReqOp op(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "read" -> ReqOp.READ;
            case "write" -> ReqOp.WRITE;
            case "flush" -> ReqOp.FLUSH;
            case "trim", "discard" -> ReqOp.DISCARD;
            case "zero", "write-zeroes" -> ReqOp.WRITE_ZEROES;
            case "cache" -> ReqOp.CACHE;
            case "block-status" -> ReqOp.BLOCK_STATUS;
            default -> null;
        };
    }

    static String opNames() {
        return "read, write, flush, trim, zero, cache, block-status";
    }

    private static Status status(FilterSettings settings) {
        String v = settings.get("status").orElse("EIO");
        return switch (v.toUpperCase(Locale.ROOT)) {
            case "EIO" -> Status.IO_ERROR;
            case "ENOSPC" -> Status.NO_SPACE;
            case "EINVAL" -> Status.INVALID;
            case "ENOTSUP", "EOPNOTSUPP" -> Status.NOT_SUPPORTED;
            case "EPERM" -> Status.READ_ONLY;
            case "ESHUTDOWN" -> Status.SHUTDOWN;
            default -> throw settings.bad("status", v, "EIO, ENOSPC, EINVAL, ENOTSUP, EPERM or ESHUTDOWN");
        };
    }
}
