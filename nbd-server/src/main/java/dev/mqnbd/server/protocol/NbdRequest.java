package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.util.AbstractReferenceCounted;
import org.jspecify.annotations.Nullable;

/**
 * One decoded transmission request (proto.md "Request message").
 *
 * <p><b>Ownership:</b> a request is reference counted, starting at one, and owns one reference of its
 * payload; when the count drops to zero the payload is released. Whoever reads a request from the
 * pipeline releases it exactly once. A handler that hands the payload on (to a storage request, say)
 * retains the payload first and releases the request as usual: {@code ByteBuf p = rq.payload().retain();
 * rq.release();}.
 *
 * <p>A payload may hold room reserved for it before it was read ({@link PayloadAdmission}); the request
 * gives that room back when it is released, unless the handler took it over with the payload.
 *
 * <p><b>Threading:</b> the header fields are immutable; the reference count is thread-safe; the
 * reservation is taken over on the connection's event loop.
 */
public final class NbdRequest extends AbstractReferenceCounted {
    private final int flags;
    private final int type;
    private final @Nullable NbdCommand command;
    private final long cookie;
    private final long offset;
    private final long length;
    private final @Nullable ByteBuf payload;
    private final boolean payloadDiscarded;
    private final PayloadAdmission admission;
    /** Bytes the admission reserved for the payload and this request still holds; given back on release. */
    private long reserved;

    /**
     * Creates a request.
     *
     * <p><b>Ownership:</b> takes over one reference of {@code payload}.
     *
     * @param flags the u16 command flags
     * @param type the raw u16 command type
     * @param cookie the opaque u64 cookie (handle), echoed in the reply
     * @param offset the u64 offset; a negative value stands for one of 2^63 or more
     * @param length the u32 length (compact headers) or u64 length (extended headers)
     * @param payload the payload, or {@code null} if there is none or it was discarded
     * @param payloadDiscarded whether a payload was drained from the stream instead of being kept
     */
    public NbdRequest(
            int flags,
            int type,
            long cookie,
            long offset,
            long length,
            @Nullable ByteBuf payload,
            boolean payloadDiscarded) {
        this(flags, type, cookie, offset, length, payload, payloadDiscarded, 0, PayloadAdmission.ALWAYS);
    }

    /**
     * Creates a request whose payload holds {@code reserved} bytes of room from {@code admission}: they are
     * given back when the request is released, unless taken over first ({@link #takeReservation}).
     */
    public NbdRequest(
            int flags,
            int type,
            long cookie,
            long offset,
            long length,
            @Nullable ByteBuf payload,
            boolean payloadDiscarded,
            long reserved,
            PayloadAdmission admission) {
        this.reserved = reserved;
        this.admission = admission;
        this.flags = flags;
        this.type = type;
        this.command = NbdCommand.fromCode(type);
        this.cookie = cookie;
        this.offset = offset;
        this.length = length;
        this.payload = payload;
        this.payloadDiscarded = payloadDiscarded;
    }

    /** Returns the u16 command flags ({@code NbdConstants.CMD_FLAG_*}). */
    public int flags() {
        return flags;
    }

    /** Returns the raw u16 command type, also when it is unknown. */
    public int type() {
        return type;
    }

    /** Returns the command, or {@code null} if the type is unknown (the handler answers {@code EINVAL}). */
    public @Nullable NbdCommand command() {
        return command;
    }

    /** Returns the opaque cookie (handle) to echo in the reply. */
    public long cookie() {
        return cookie;
    }

    /** Returns the u64 offset; a negative value stands for one of 2^63 or more. */
    public long offset() {
        return offset;
    }

    /** Returns the length: of the payload for WRITE, of the range for other commands. */
    public long length() {
        return length;
    }

    /**
     * Returns the payload, or {@code null} when the command carries none or the payload was discarded.
     *
     * <p><b>Ownership:</b> the request keeps its reference; retain the payload to keep it longer.
     */
    public @Nullable ByteBuf payload() {
        return payload;
    }

    /**
     * Returns whether the payload was larger than the decoder's maximum and was drained from the stream
     * instead of being kept; the handler answers with an error without touching storage.
     */
    public boolean payloadDiscarded() {
        return payloadDiscarded;
    }

    /** Returns the bytes of room reserved for the payload that this request still holds. */
    public long reserved() {
        return reserved;
    }

    /**
     * Takes over the room reserved for the payload: the caller now gives it back ({@link
     * PayloadAdmission#giveBack}) when it is done with the payload. Returns the bytes, 0 if none.
     */
    public long takeReservation() {
        long r = reserved;
        reserved = 0;
        return r;
    }

    @Override
    public NbdRequest retain() {
        super.retain();
        return this;
    }

    @Override
    public NbdRequest touch(Object hint) {
        if (payload != null) {
            payload.touch(hint);
        }
        return this;
    }

    @Override
    protected void deallocate() {
        if (reserved > 0) {
            long r = reserved;
            reserved = 0;
            admission.giveBack(r);
        }
        if (payload != null) {
            // OWNERSHIP: the reference taken over in the constructor ends with the request.
            payload.release();
        }
    }

    @Override
    public String toString() {
        return "NbdRequest(" + (command != null ? command : "type " + type) + ", flags: 0x"
                + Integer.toHexString(flags) + ", cookie: 0x" + Long.toHexString(cookie) + ", offset: "
                + Long.toUnsignedString(offset) + ", length: " + Long.toUnsignedString(length)
                + (payloadDiscarded ? ", payload discarded)" : ")");
    }
}
