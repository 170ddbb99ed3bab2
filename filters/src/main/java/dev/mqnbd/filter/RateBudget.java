package dev.mqnbd.filter;

/**
 * Two token buckets, requests per second and bytes per second, in their virtual-scheduling form (GCRA):
 * each limit keeps a theoretical arrival time; a request may start when that time is no more than the
 * burst ahead of now, and moves it forward by the request's cost. Over any long interval the limits hold
 * exactly; after an idle spell a burst's worth may go at once. A request larger than the burst is let
 * through when the bucket is full and pays its whole cost, so it delays the ones after it.
 *
 * <p><b>Threading:</b> safe for every hardware context at once; a call holds the lock for a few nanoseconds.
 */
final class RateBudget {
    private final long nanosPerRequest;
    private final double nanosPerByte;
    private final long burstNanos;

    // Guarded by `this`.
    private long requestTat;
    private long byteTat;

    /**
     * @param iops requests per second, or 0 for no limit
     * @param bytesPerSecond bytes per second, or 0 for no limit
     * @param burstNanos how far ahead of its rate a limit may run after an idle spell
     */
    RateBudget(long iops, long bytesPerSecond, long burstNanos) {
        this.nanosPerRequest = iops == 0 ? 0 : Math.max(1, 1_000_000_000L / iops);
        this.nanosPerByte = bytesPerSecond == 0 ? 0 : 1e9 / bytesPerSecond;
        this.burstNanos = burstNanos;
    }

    /** Starts both buckets full at {@code now}. */
    synchronized void reset(long now) {
        requestTat = now - burstNanos;
        byteTat = now - burstNanos;
    }

    /**
     * Takes one request of {@code bytes} (0 for requests that carry no data) when both limits allow it at
     * {@code now}; otherwise takes nothing.
     */
    synchronized boolean tryAcquire(long bytes, long now) {
        long byteCost = nanosPerByte > 0 ? (long) (bytes * nanosPerByte) : 0;
        if (nanosPerRequest > 0 && requestTat - now > burstNanos) {
            return false;
        }
        if (byteCost > 0 && byteTat - now > burstNanos) {
            return false;
        }
        if (nanosPerRequest > 0) {
            requestTat = Math.max(requestTat, now) + nanosPerRequest;
        }
        if (byteCost > 0) {
            byteTat = Math.max(byteTat, now) + byteCost;
        }
        return true;
    }
}
