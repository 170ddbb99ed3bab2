package dev.mqnbd.mq;

/**
 * A driver that can reap completions when asked, the kernel's {@code .poll}. Detected once, when the
 * {@link TagSet} is built; {@link BlockQueue#poll} calls it on the context's executor.
 */
public interface PollingOperations<H, Q, T, R> extends Operations<H, Q, T, R> {
    /** Reaps completed I/O of one context; returns whether anything completed. */
    boolean poll(H hw);
}
