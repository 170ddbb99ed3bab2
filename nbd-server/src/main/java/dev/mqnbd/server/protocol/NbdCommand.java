package dev.mqnbd.server.protocol;

import org.jspecify.annotations.Nullable;

/** Transmission command types ({@code NBD_CMD_*}, proto.md "Request types"). */
public enum NbdCommand {
    READ(0),
    WRITE(1),
    /** Disconnect: no reply; the server finishes the outstanding requests and closes. */
    DISC(2),
    FLUSH(3),
    TRIM(4),
    CACHE(5),
    WRITE_ZEROES(6),
    BLOCK_STATUS(7);

    // INVARIANT: BY_CODE[c.code] == c for every constant; the codes are 0..7 without gaps.
    private static final NbdCommand[] BY_CODE = values();

    private final int code;

    NbdCommand(int code) {
        this.code = code;
    }

    /** Returns the u16 type on the wire. */
    public int code() {
        return code;
    }

    /** Returns the command with type {@code code}, or {@code null} if the type is unknown; never allocates. */
    public static @Nullable NbdCommand fromCode(int code) {
        return code >= 0 && code < BY_CODE.length ? BY_CODE[code] : null;
    }
}
