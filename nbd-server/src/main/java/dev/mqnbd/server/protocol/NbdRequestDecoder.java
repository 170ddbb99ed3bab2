package dev.mqnbd.server.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Decodes transmission requests into {@link NbdRequest}s (proto.md "Request message").
 *
 * <p>A WRITE payload of up to the maximum is a retained slice of the inbound buffer: no copy. A larger
 * payload is not buffered: its bytes are skipped as they arrive and the request is emitted with {@link
 * NbdRequest#payloadDiscarded()} set, so the handler can answer with an error and the connection stays in
 * sync (as nbdkit's {@code skip_over_write_buffer}). Unknown command types are emitted with a {@code null}
 * command. A bad magic is a framing violation: the decoder throws {@link NbdCodecException}, the pipeline
 * closes the channel, and all further input is skipped.
 *
 * <p>Before a payload is read, the {@link PayloadAdmission} reserves room for it; while it cannot, the
 * decoder stops after the header (the admission stops reading the socket) and decodes on when told to.
 * The reservation goes with the request, or back when the decoder is removed half way.
 *
 * <p>While a payload arrives, its bytes buffered so far count against the server's {@link PayloadBudget},
 * which closes the connection if it stalls while the server's partial payloads are over their bound.
 *
 * <p>With extended headers (ext branch) the header is 32 bytes with a u64 length, and a payload follows
 * when {@code NBD_CMD_FLAG_PAYLOAD_LEN} is set, and always for WRITE.
 *
 * <p><b>Ownership:</b> each emitted request belongs to the next handler, which releases it. The decoder
 * keeps nothing between calls besides the header of the request whose payload is pending; the pending bytes
 * sit in the cumulation, which {@link ByteToMessageDecoder} releases when the handler is removed or the
 * channel closes.
 *
 * <p><b>Threading:</b> one instance per channel, used on its event loop only.
 */
public final class NbdRequestDecoder extends ByteToMessageDecoder {
    private enum State {
        HEADER,
        /** A payload follows the header just read; it is read once the admission lets it. */
        ADMIT,
        PAYLOAD,
        DISCARD_PAYLOAD,
        BAD
    }

    private final int maximumPayload;
    private final boolean extendedHeaders;
    private final PayloadBudget budget;
    /** This connection's part of {@link #budget}, from when the decoder is added. */
    private PayloadBudget.@Nullable Share share;

    private final PayloadAdmission admission;
    /** Decodes again what waits in the cumulation, once the admission lets a payload in; made in handlerAdded. */
    private @Nullable Runnable resume;
    /** Whether the admission held the pending payload back, and has not yet told the decoder to resume. */
    private boolean held;
    /** Room the admission reserved for the payload being read. */
    private long reserved;

    private final int headerLength;
    private final int requestMagic;

    private State state = State.HEADER;
    // The header of the request whose payload is being read (PAYLOAD) or drained (DISCARD_PAYLOAD).
    private int flags;
    private int type;
    private long cookie;
    private long offset;
    private long length;
    private long remaining;

    /**
     * Creates a decoder for compact (28-byte) request headers.
     *
     * @param maximumPayload the largest WRITE payload to buffer; larger ones are drained
     * @throws IllegalArgumentException if {@code maximumPayload} is negative
     */
    public NbdRequestDecoder(int maximumPayload) {
        this(maximumPayload, false);
    }

    /**
     * Creates a decoder for compact (28-byte) or, after {@code NBD_OPT_EXTENDED_HEADERS}, extended
     * (32-byte) request headers.
     *
     * @param maximumPayload the largest payload to buffer; larger ones are drained
     * @param extendedHeaders whether extended headers were negotiated
     * @throws IllegalArgumentException if {@code maximumPayload} is negative
     */
    public NbdRequestDecoder(int maximumPayload, boolean extendedHeaders) {
        this(maximumPayload, extendedHeaders, PayloadBudget.UNLIMITED);
    }

    /**
     * Creates a decoder whose payloads, while they arrive, count against {@code budget}, shared by the
     * server's connections.
     *
     * @param maximumPayload the largest payload to buffer; larger ones are drained
     * @param extendedHeaders whether extended headers were negotiated
     * @param budget the server's bound on partial payloads; over it, the connection waiting longest closes
     * @throws IllegalArgumentException if {@code maximumPayload} is negative
     */
    public NbdRequestDecoder(int maximumPayload, boolean extendedHeaders, PayloadBudget budget) {
        this(maximumPayload, extendedHeaders, budget, PayloadAdmission.ALWAYS);
    }

    /**
     * Creates a decoder that also asks {@code admission}, after each header with a payload, whether the
     * payload may be read now; until it may, nothing more is decoded.
     *
     * @param maximumPayload the largest payload to buffer; larger ones are drained
     * @param extendedHeaders whether extended headers were negotiated
     * @param budget the server's bound on partial payloads; over it, the connection waiting longest closes
     * @param admission reserves room for each payload before it is read
     * @throws IllegalArgumentException if {@code maximumPayload} is negative
     */
    public NbdRequestDecoder(
            int maximumPayload, boolean extendedHeaders, PayloadBudget budget, PayloadAdmission admission) {
        this.admission = admission;
        if (maximumPayload < 0) {
            throw new IllegalArgumentException("maximumPayload: " + maximumPayload + " (expected: >= 0)");
        }
        this.maximumPayload = maximumPayload;
        this.extendedHeaders = extendedHeaders;
        this.budget = budget;
        this.headerLength =
                extendedHeaders ? NbdConstants.EXTENDED_REQUEST_HEADER_LENGTH : NbdConstants.REQUEST_HEADER_LENGTH;
        this.requestMagic = extendedHeaders ? NbdConstants.EXTENDED_REQUEST_MAGIC : NbdConstants.REQUEST_MAGIC;
        // A large WRITE payload spans many socket reads, and its slice stays retained while the request is in
        // flight: the merge cumulator would then copy the whole unread cumulation on every read. The composite
        // cumulator only adds each read's buffer.
        setCumulator(COMPOSITE_CUMULATOR);
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        share = budget.share(ctx.channel());
        resume = () -> {
            if (state != State.ADMIT
                    || !held
                    || ctx.isRemoved()
                    || !ctx.channel().isActive()) {
                return;
            }
            held = false;
            try {
                // What waits in the cumulation is decoded as if it had just arrived.
                channelRead(ctx, Unpooled.EMPTY_BUFFER);
                channelReadComplete(ctx);
            } catch (Exception e) {
                ctx.fireExceptionCaught(e);
            }
        };
    }

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        for (; ; ) {
            switch (state) {
                case HEADER -> {
                    if (in.readableBytes() < headerLength) {
                        return;
                    }
                    decodeHeader(in, out);
                }
                case ADMIT -> {
                    if (held) {
                        return; // asked once; resume asks again
                    }
                    long r = admission.admit(length, Objects.requireNonNull(resume));
                    if (r < 0) {
                        held = true; // the admission turned reading off; resume decodes again
                        return;
                    }
                    reserved = r;
                    state = State.PAYLOAD;
                }
                case PAYLOAD -> {
                    // header <here> {payload: length bytes}
                    if (in.readableBytes() < length) {
                        // A payload with room reserved counts from before its first byte, so that one that never
                        // comes is seen; a small one only once some of it is buffered.
                        if (share != null && (reserved > 0 || in.readableBytes() > 0)) {
                            share.hold(in.readableBytes());
                        }
                        return;
                    }
                    if (share != null) {
                        share.release();
                    }
                    // OWNERSHIP: the payload's one reference goes to the request.
                    ByteBuf payload = readPayload(ctx, in, (int) length);
                    out.add(new NbdRequest(flags, type, cookie, offset, length, payload, false, reserved, admission));
                    reserved = 0;
                    state = State.HEADER;
                }
                case DISCARD_PAYLOAD -> {
                    // header {payload: <here> remaining bytes}: skipped as they arrive, never buffered.
                    int skip = (int) Math.min(remaining, in.readableBytes());
                    in.skipBytes(skip);
                    remaining -= skip;
                    if (remaining > 0) {
                        return;
                    }
                    out.add(new NbdRequest(flags, type, cookie, offset, length, null, true));
                    state = State.HEADER;
                }
                case BAD -> {
                    in.skipBytes(in.readableBytes());
                    return;
                }
            }
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) throws Exception {
        if (held) {
            // The superclass asks for one more read when a read decoded nothing and the channel does not read
            // by itself: here that would take in the very payload the admission holds back, read after read.
            discardSomeReadBytes();
            ctx.fireChannelReadComplete();
            return;
        }
        super.channelReadComplete(ctx);
    }

    /**
     * Reads a payload of {@code length} bytes without copying it: a retained slice of {@code in}, or, when
     * {@code in} is a composite cumulation, retained slices of the network buffers under it (one slice, or
     * a composite of them). Never a slice of the composite itself: that would share its reference count,
     * and a cumulation that stays shared while requests are in flight can no longer drop the components
     * it has read, so every later read would copy a growing component list.
     */
    /** Payloads from this size up that span several network buffers are gathered, not copied. */
    private static final int GATHER_MIN = 64 << 10;

    private static ByteBuf readPayload(ChannelHandlerContext ctx, ByteBuf in, int length) {
        if (!(in instanceof CompositeByteBuf composite) || length == 0) {
            return in.readRetainedSlice(length);
        }
        if (length < GATHER_MIN
                && composite.toComponentIndex(in.readerIndex())
                        != composite.toComponentIndex(in.readerIndex() + length - 1)) {
            // A small payload split between two network buffers: one pooled copy is cheaper than a gather list.
            ByteBuf copy = ctx.alloc().directBuffer(length, length);
            in.readBytes(copy, length);
            return copy;
        }
        List<ByteBuf> parts = composite.decompose(in.readerIndex(), length);
        in.skipBytes(length);
        if (parts.size() == 1) {
            return parts.get(0).retain();
        }
        CompositeByteBuf payload = ctx.alloc().compositeDirectBuffer(parts.size());
        for (ByteBuf part : parts) {
            payload.addComponent(true, part.retain());
        }
        return payload;
    }

    /** Reads one header; emits the request or moves to the state that reads or drains its payload. */
    private void decodeHeader(ByteBuf in, List<Object> out) {
        int r = in.readerIndex();
        // <here> u32 magic | u16 flags | u16 type | u64 cookie | u64 offset | u32 length (u64 when extended)
        int magic = in.getInt(r);
        if (magic != requestMagic) {
            fail(
                    in,
                    "request magic: 0x" + Integer.toHexString(magic) + " (expected: 0x"
                            + Integer.toHexString(requestMagic) + ")");
        }
        flags = in.getUnsignedShort(r + 4);
        type = in.getUnsignedShort(r + 6);
        cookie = in.getLong(r + 8);
        offset = in.getLong(r + 16);
        length = extendedHeaders ? in.getLong(r + 24) : in.getUnsignedInt(r + 24);
        in.skipBytes(headerLength);
        // header <here> {payload}
        if (!hasPayload()) {
            out.add(new NbdRequest(flags, type, cookie, offset, length, null, false));
            return;
        }
        if (length < 0) {
            // Only an extended u64 can be negative: a payload of 2^63 bytes or more is no request at all.
            fail(in, "payload length: " + Long.toUnsignedString(length) + " (expected: <= " + Long.MAX_VALUE + ")");
        }
        if (length > maximumPayload) {
            remaining = length;
            state = State.DISCARD_PAYLOAD;
        } else {
            state = State.ADMIT;
        }
    }

    private boolean hasPayload() {
        // proto.md "NBD_CMD_WRITE": only WRITE carries a payload in compact mode. With extended headers
        // NBD_CMD_FLAG_PAYLOAD_LEN announces one; WRITE MUST set it, and its length is the payload length
        // either way, so a WRITE is read as carrying one even without the flag.
        return type == NbdCommand.WRITE.code() || (extendedHeaders && (flags & NbdConstants.CMD_FLAG_PAYLOAD_LEN) != 0);
    }

    private void fail(ByteBuf in, String message) {
        // The stream cannot be resynced: skip everything from here on.
        state = State.BAD;
        in.skipBytes(in.readableBytes());
        throw new NbdCodecException(message);
    }

    @Override
    protected void handlerRemoved0(ChannelHandlerContext ctx) {
        // Nothing half-built is held here: a pending payload sits in the cumulation, which the superclass
        // releases (or passes on) itself.
        state = State.BAD;
        if (share != null) {
            share.release();
        }
        if (reserved > 0) {
            admission.giveBack(reserved);
            reserved = 0;
        }
    }
}
