package dev.mqnbd.storage.s3;

/**
 * The wake-up of a background loop that runs a round every {@link #TICK_MILLIS} ms, or sooner when
 * woken, until stopped: the S3 export's {@link Writeback} and its trims' deleter ({@link Trims}).
 *
 * <p><b>Threading:</b> {@link #wake} and {@link #stop} from any thread; {@link #await} from the loop.
 */
final class Wakeup {
    /** The longest a loop sleeps between rounds. */
    static final long TICK_MILLIS = 100;

    // Guarded by this.
    private boolean woken;
    private boolean stopped;

    /** Asks for a round now. */
    synchronized void wake() {
        if (!woken) {
            woken = true;
            notifyAll();
        }
    }

    /** Ends the loop: its next {@link #await} returns {@code false}. */
    synchronized void stop() {
        stopped = true;
        notifyAll();
    }

    /** Returns whether {@link #stop} was called. */
    synchronized boolean stopped() {
        return stopped;
    }

    /**
     * Waits for a wake-up or the next tick; returns {@code false} once stopped. An interrupt only ends
     * the wait: only {@link #stop} ends the loop.
     */
    synchronized boolean await() {
        if (!woken && !stopped) {
            try {
                wait(TICK_MILLIS);
            } catch (InterruptedException e) {
                // Only stop() ends the loop.
            }
        }
        woken = false;
        return !stopped;
    }
}
