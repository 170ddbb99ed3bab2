package dev.mqnbd.server.protocol;

import io.netty.handler.codec.DecoderException;
import java.io.Serial;

/**
 * A violation of the NBD framing that the stream cannot recover from, such as a bad request magic. The
 * connection is closed: there is no way to find the start of the next message.
 */
public final class NbdCodecException extends DecoderException {
    @Serial
    private static final long serialVersionUID = 1L;

    /** Creates an exception with {@code message}, shaped {@code "magic: 0x.. (expected: 0x..)"}. */
    public NbdCodecException(String message) {
        super(message);
    }

    /** Creates an exception with {@code message} and its {@code cause}. */
    public NbdCodecException(String message, Throwable cause) {
        super(message, cause);
    }
}
