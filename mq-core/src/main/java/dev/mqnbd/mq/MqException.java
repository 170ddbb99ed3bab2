package dev.mqnbd.mq;

/** A failure to set up or tear down a tag set or a queue. I/O failures are {@link Status}es, never this. */
public final class MqException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Creates an exception with a message. */
    public MqException(String message) {
        super(message);
    }

    /** Creates an exception with a message and the failure behind it. */
    public MqException(String message, Throwable cause) {
        super(message, cause);
    }
}
