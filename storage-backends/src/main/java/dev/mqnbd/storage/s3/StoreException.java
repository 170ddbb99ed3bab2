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

    /**
     * Returns whether a store's error reply may succeed when sent again: 5xx, 408, 409, 429, and the S3
     * error codes {@code BadDigest} (the body was damaged on the way) and {@code RequestTimeout}.
     */
    static boolean retryableReply(int status, String code) {
        return status >= 500
                || status == 408
                || status == 409
                || status == 429
                || "BadDigest".equals(code)
                || "RequestTimeout".equals(code);
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
