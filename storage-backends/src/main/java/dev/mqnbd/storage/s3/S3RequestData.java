package dev.mqnbd.storage.s3;

import dev.mqnbd.mq.Request;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * The private data {@code R} of each preallocated request of an S3 export: what the request's thread
 * needs to serve it, so that starting it allocates no task object of its own.
 *
 * <p><b>Threading:</b> filled on the context's executor before the request's thread starts (the start
 * publishes it), read by that thread.
 */
public final class S3RequestData implements Runnable {
    private @Nullable S3BlockDevice device;
    private @Nullable S3HwData hw;
    private @Nullable Request<S3RequestData> rq;
    private int generation;
    private long deadline;

    S3RequestData() {}

    /** Readies the request for its thread; {@code deadline} is when it must have ended. */
    void bind(S3BlockDevice device, S3HwData hw, Request<S3RequestData> rq, long deadline) {
        this.device = device;
        this.hw = hw;
        this.rq = rq;
        this.generation = rq.generation();
        this.deadline = deadline;
    }

    /** Serves the bound request; runs on its own virtual thread. */
    @Override
    public void run() {
        Request<S3RequestData> r = Objects.requireNonNull(rq, "not bound");
        rq = null;
        Objects.requireNonNull(device).serve(Objects.requireNonNull(hw), r, generation, deadline);
    }
}
