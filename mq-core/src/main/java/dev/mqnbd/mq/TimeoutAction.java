package dev.mqnbd.mq;

/** What {@link Operations#timeout} decided for an overdue request, after {@code enum blk_eh_timer_return}. */
public enum TimeoutAction {
    /** The request stays in flight and gets another full timeout period. */
    RESET_TIMER,
    /** The driver has ended the request, or will end it: mq-core does nothing more. */
    DONE
}
