package dev.mqnbd.storage.s3;

import java.util.concurrent.atomic.LongAdder;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttribute;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;

/**
 * Counts the SDK's retries: registered on every shared client ({@link S3Clients}), it sees each attempt
 * of a request before it is sent, and for a request that carries a {@link #RETRIES} counter (set by
 * {@link SdkObjectStore}) adds one per attempt after the first.
 *
 * <p><b>Threading:</b> stateless; the counters are striped.
 */
final class RetryCounter implements ExecutionInterceptor {
    /** The counter a request's retries go to: its export's, for its type. */
    static final ExecutionAttribute<LongAdder> RETRIES = new ExecutionAttribute<>("mqnbd.s3.retries");

    private static final ExecutionAttribute<Boolean> SENT = new ExecutionAttribute<>("mqnbd.s3.sent");

    @Override
    public void beforeTransmission(Context.BeforeTransmission context, ExecutionAttributes attributes) {
        LongAdder retries = attributes.getAttribute(RETRIES);
        if (retries == null) {
            return;
        }
        if (attributes.getAttribute(SENT) != null) {
            retries.increment();
        } else {
            attributes.putAttribute(SENT, Boolean.TRUE);
        }
    }
}
