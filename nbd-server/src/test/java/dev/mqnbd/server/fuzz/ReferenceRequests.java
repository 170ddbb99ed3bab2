package dev.mqnbd.server.fuzz;

import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdRequest;
import io.netty.buffer.ByteBufUtil;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The fuzz oracle for the request decoder: a plain reading of proto.md "Request message" (and the
 * extended header of the ext branch) over the whole stream at once, written independently of {@link
 * dev.mqnbd.server.protocol.NbdRequestDecoder}. However the stream is cut into reads, the decoder must
 * emit exactly these requests, and fail exactly when this reading meets a framing error.
 */
final class ReferenceRequests {
    /** One request as the spec reads it; {@code payload} is {@code null} when none is kept. */
    record Expected(int flags, int type, long cookie, long offset, long length, byte[] payload, boolean discarded) {
        static Expected of(NbdRequest rq) {
            byte[] payload = rq.payload() == null ? null : ByteBufUtil.getBytes(rq.payload());
            return new Expected(
                    rq.flags(), rq.type(), rq.cookie(), rq.offset(), rq.length(), payload, rq.payloadDiscarded());
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Expected e
                    && e.flags == flags
                    && e.type == type
                    && e.cookie == cookie
                    && e.offset == offset
                    && e.length == length
                    && Arrays.equals(e.payload, payload)
                    && e.discarded == discarded;
        }

        @Override
        public int hashCode() {
            return Long.hashCode(cookie) * 31 + type;
        }

        @Override
        public String toString() {
            return "Request(type " + type + ", flags 0x" + Integer.toHexString(flags) + ", cookie 0x"
                    + Long.toHexString(cookie) + ", offset " + Long.toUnsignedString(offset) + ", length "
                    + Long.toUnsignedString(length) + (payload != null ? ", payload " + payload.length : "")
                    + (discarded ? ", discarded" : "") + ")";
        }
    }

    /**
     * What the stream holds: every whole request before the end or before a framing error, and whether
     * there was one.
     */
    record Reading(List<Expected> requests, boolean framingError) {}

    private ReferenceRequests() {}

    static Reading read(byte[] stream, boolean extended, int maximumPayload) {
        ByteBuffer in = ByteBuffer.wrap(stream);
        int header = extended ? 32 : 28;
        int magic = extended ? NbdConstants.EXTENDED_REQUEST_MAGIC : NbdConstants.REQUEST_MAGIC;
        List<Expected> requests = new ArrayList<>();
        while (in.remaining() >= header) {
            if (in.getInt() != magic) {
                return new Reading(requests, true);
            }
            int flags = Short.toUnsignedInt(in.getShort());
            int type = Short.toUnsignedInt(in.getShort());
            long cookie = in.getLong();
            long offset = in.getLong();
            long length = extended ? in.getLong() : Integer.toUnsignedLong(in.getInt());
            // Compact: only WRITE carries a payload. Extended: WRITE always, others with PAYLOAD_LEN.
            boolean payload =
                    type == NbdCommand.WRITE.code() || (extended && (flags & NbdConstants.CMD_FLAG_PAYLOAD_LEN) != 0);
            if (!payload) {
                requests.add(new Expected(flags, type, cookie, offset, length, null, false));
                continue;
            }
            if (length < 0) {
                return new Reading(requests, true); // a payload of 2^63 bytes or more: no request at all
            }
            if (in.remaining() < length) {
                break;
            }
            if (length > maximumPayload) {
                in.position(in.position() + (int) length);
                requests.add(new Expected(flags, type, cookie, offset, length, null, true));
            } else {
                byte[] data = new byte[(int) length];
                in.get(data);
                requests.add(new Expected(flags, type, cookie, offset, length, data, false));
            }
        }
        return new Reading(requests, false);
    }
}
