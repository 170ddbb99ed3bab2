package dev.mqnbd.storage.s3;

import java.io.IOException;
import org.jspecify.annotations.Nullable;

/**
 * A request to the object store failed. It says whether trying again later may succeed ({@link
 * #retryable()}: throttling, a 5xx, a timeout, a broken connection, after the SDK's own retries) and
 * whether a conditional write or delete found the object changed ({@link #preconditionFailed()}, HTTP
 * 412).
 */
final class StoreException extends IOException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final boolean retryable;

    /**
     * Creates the exception.
     *
     * @param status the HTTP status, or 0 when no reply came
     */
    StoreException(@Nullable String message, int status, boolean retryable, @Nullable Throwable cause) {
        super(message, cause);
        this.status = status;
        this.retryable = retryable;
    }

    StoreException(String message, int status, boolean retryable) {
        this(message, status, retryable, null);
    }

    /** Returns the HTTP status of the store's reply, or 0 when there was none (timeout, connection). */
    int status() {
        return status;
    }

    /** Returns whether the same request may succeed later. */
    boolean retryable() {
        return retryable;
    }

    /** Returns whether a conditional request failed because the object is not as expected (412). */
    boolean preconditionFailed() {
        return status == 412;
    }
}
