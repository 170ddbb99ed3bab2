package dev.mqnbd.mq;

/** What a device supports beyond reads and writes; advertised to clients through {@link QueueLimits}. */
public enum Feature {
    /** {@link ReqOp#FLUSH} makes completed writes durable (a volatile write cache is present). */
    FLUSH,
    /** {@link ReqFlags#FUA} is honoured on writes. */
    FUA,
    /** {@link ReqOp#DISCARD} is supported. */
    DISCARD,
    /** {@link ReqOp#WRITE_ZEROES} is supported, with and without {@link ReqFlags#NO_UNMAP}. */
    WRITE_ZEROES,
    /** The medium is rotational: a hint for clients' schedulers. */
    ROTATIONAL
}
