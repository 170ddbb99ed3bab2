package dev.mqnbd.mq;

/**
 * A submitter waiting for a free tag on a hardware context: the back-pressure hook of {@link
 * BlockQueue#waitForTag}.
 *
 * <p><b>Threading:</b> called on whatever thread freed a tag, usually the hardware context's executor;
 * an implementation hands the work to its own thread and tries {@link BlockQueue#tryAllocate} again
 * there.
 */
@FunctionalInterface
public interface TagWaiter {
    /** A tag was freed on the context this waiter waits on. */
    void tagAvailable();
}
