package dev.mqnbd.server.fuzz;

import dev.mqnbd.filter.FaultInjectingOperations;
import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.filter.FilterContext;
import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.HctxExecutor;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.TagSet;
import java.time.Duration;
import java.util.Arrays;
import java.util.EnumSet;

/**
 * A small heap disk behind a {@link FaultInjectingOperations} that delays, fails, drops and refuses some of
 * its requests, with four tags: the fuzzed connection then meets replies out of order, errors from the
 * device, request timeouts, back-pressure (no free tag) and a close with requests still in flight.
 *
 * <p><b>Threading:</b> the disk completes inline on its hardware context's executor, a {@link
 * ManualExecutor}; delays, BUSY retries and the timeout scan run when the harness advances its clock.
 */
final class SlowDisk implements Operations<Object, byte[], Void, Void> {
    static final int SIZE = 64 * 1024;
    static final int DEPTH = 4;
    /**
     * The tag set's timeout. mq-core measures it on the real clock while its scan runs on the harness's clock, so a dropped request times out only if the run is slow enough; the harness ends the
     * rest with {@link FaultInjectingOperations#endDropped} once the input is over.
     */
    static final Duration TIMEOUT = Duration.ofMillis(1);

    /** The queue and the filter in front of the disk. */
    record Slow(
            BlockQueue<FilterContext<Object>, byte[], Void, Void> queue,
            FaultInjectingOperations<Object, byte[], Void, Void> faulty) {}

    private SlowDisk() {}

    /** Builds the queue: the disk under the fault rules, on {@code executor}. */
    static Slow open(HctxExecutor executor) throws MqException {
        QueueLimits limits = new QueueLimits(
                SIZE,
                1,
                4096,
                1 << 20,
                4096,
                EnumSet.of(Feature.FLUSH, Feature.FUA, Feature.DISCARD, Feature.WRITE_ZEROES, Feature.CACHE),
                false);
        FaultInjectingOperations<Object, byte[], Void, Void> faulty =
                FaultInjectingOperations.wrap(new SlowDisk(), limits);
        faulty.add(
                FaultRule.on(ReqOp.READ, ReqOp.WRITE).everyNth(3).name("slow").delay(Duration.ofMillis(3)));
        faulty.add(FaultRule.on(ReqOp.WRITE, ReqOp.WRITE_ZEROES)
                .everyNth(5)
                .name("eio")
                .fail(Status.IO_ERROR));
        faulty.add(FaultRule.on(ReqOp.FLUSH).everyNth(4).name("enospc").fail(Status.NO_SPACE));
        faulty.add(FaultRule.onAny().everyNth(7).name("lost").drop());
        faulty.add(FaultRule.onAny().everyNth(6).name("busy").busy());
        TagSet<FilterContext<Object>, byte[], Void, Void> tags =
                TagSet.builder(faulty).queueDepth(DEPTH).timeout(TIMEOUT).build();
        return new Slow(
                BlockQueue.builder(tags)
                        .queueData(new byte[SIZE])
                        .limits(limits)
                        .executors(i -> executor)
                        .name("slow")
                        .build(),
                faulty);
    }

    @Override
    public Object initHctx(Void tagSetData, int hctxIndex) {
        return new Object();
    }

    @Override
    public Void newRequestData() {
        return null;
    }

    @Override
    public Status queueRq(Object hw, byte[] data, Request<Void> rq, boolean isLast) {
        int offset = (int) rq.offset();
        int length = (int) rq.length();
        switch (rq.op()) {
            case READ -> rq.data().put(0, data, offset, length);
            case WRITE -> rq.data().get(0, data, offset, length);
            case DISCARD, WRITE_ZEROES -> Arrays.fill(data, offset, offset + length, (byte) 0);
            default -> {}
        }
        rq.end(Status.OK);
        return Status.OK;
    }
}
