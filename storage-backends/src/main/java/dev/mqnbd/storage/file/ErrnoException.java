package dev.mqnbd.storage.file;

import java.io.IOException;

/**
 * A failed libc call: what was attempted, and the {@code errno} it failed with, so that callers can map
 * it to a request status ({@code ENOSPC} to {@link dev.mqnbd.mq.Status#NO_SPACE}) or fall back ({@code
 * EOPNOTSUPP} from {@code fallocate}).
 */
final class ErrnoException extends IOException {
    private static final long serialVersionUID = 1L;

    private final int errno;

    /** Creates the exception for {@code what} (e.g. {@code "fallocate /img"}) failing with {@code errno}. */
    ErrnoException(String what, int errno) {
        super(LibC.describe(what, errno));
        this.errno = errno;
    }

    /** Returns the C library's error number. */
    int errno() {
        return errno;
    }
}
