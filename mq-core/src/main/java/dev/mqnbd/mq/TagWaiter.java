package dev.mqnbd.mq;

/**
 * A submitter waiting for a free tag on a hardware context: the back-pressure hook of {@link
 * BlockQueue#waitForTag}.
 *
 * <p>Each freed tag wakes one waiter, the longest waiting, so a woken waiter owes the others its
 * attempt: it calls {@link BlockQueue#tryAllocate}, and if it then wants no tag after all (its
 * connection closed, its work was answered otherwise), it calls {@link BlockQueue#wakeNextWaiter} so
 * that the wakeup reaches the next waiter. A waiter that lost the race for the tag registers again.
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
