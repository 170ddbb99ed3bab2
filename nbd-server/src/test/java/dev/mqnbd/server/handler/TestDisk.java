package dev.mqnbd.server.handler;

import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A heap-backed driver for handler tests: completes inline, or holds requests until the test releases
 * them, and can fail chosen requests. Records what the handler submitted.
 */
final class TestDisk implements Operations<Object, Object, Object, Object> {
    final byte[] data;
    final List<String> calls = new CopyOnWriteArrayList<>();
    final List<Request<Object>> held = new ArrayList<>();
    volatile boolean hold;
    volatile Status failWith;

    TestDisk(int size) {
        this.data = new byte[size];
    }

    static QueueLimits limits(int size, boolean readOnly) {
        return new QueueLimits(
                size,
                1,
                4096,
                32 << 20,
                4096,
                EnumSet.of(Feature.FLUSH, Feature.FUA, Feature.DISCARD, Feature.WRITE_ZEROES),
                readOnly);
    }

    @Override
    public Object initHctx(Object tagSetData, int hctxIndex) {
        return new Object();
    }

    @Override
    public Object newRequestData() {
        return null;
    }

    @Override
    public Status queueRq(Object hw, Object queue, Request<Object> rq, boolean isLast) {
        calls.add("queueRq " + rq.op() + " " + rq.offset() + "+" + rq.length() + " flags=" + rq.flags() + " isLast="
                + isLast);
        if (hold) {
            held.add(rq);
            return Status.OK;
        }
        rq.end(execute(rq));
        return Status.OK;
    }

    @Override
    public void commitRqs(Object hw, Object queue) {
        calls.add("commitRqs");
    }

    /** Ends every held request, in order. */
    void releaseHeld() {
        List<Request<Object>> now = new ArrayList<>(held);
        held.clear();
        for (Request<Object> rq : now) {
            rq.end(execute(rq));
        }
    }

    private Status execute(Request<Object> rq) {
        if (failWith != null) {
            return failWith;
        }
        int offset = (int) rq.offset();
        int length = (int) rq.length();
        switch (rq.op()) {
            case READ -> rq.data().put(0, data, offset, length);
            case WRITE -> rq.data().get(0, data, offset, length);
            case DISCARD, WRITE_ZEROES -> Arrays.fill(data, offset, offset + length, (byte) 0);
            case FLUSH -> {}
        }
        return Status.OK;
    }
}
