package dev.mqnbd.server.protocol;

/**
 * Decides, when a request's header has been read, whether its payload may be read now: room for it is
 * reserved before its first byte is buffered, so a connection whose payload would not fit is not read at
 * all (its bytes wait in the client's socket) instead of holding a whole payload while it waits.
 *
 * <p><b>Threading:</b> {@link #admit} runs on the connection's event loop; {@link #giveBack} on the thread
 * that drops the request.
 */
public interface PayloadAdmission {
    /** Admits every payload at once and reserves nothing. */
    PayloadAdmission ALWAYS = new PayloadAdmission() {
        @Override
        public long admit(long length, Runnable resume) {
            return 0;
        }

        @Override
        public void giveBack(long bytes) {}
    };

    /**
     * Returns the bytes reserved for a payload of {@code length} bytes (0 when it needs no reservation),
     * or -1 when it must wait: the connection is then not read, and {@code resume} runs on its event loop
     * once the payload may be asked for again.
     */
    long admit(long length, Runnable resume);

    /** Gives back bytes {@link #admit} reserved, for a payload that ended before its reservation was handed on. */
    void giveBack(long bytes);
}
