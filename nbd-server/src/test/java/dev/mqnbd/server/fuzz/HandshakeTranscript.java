package dev.mqnbd.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdExportInfo;
import dev.mqnbd.server.protocol.NbdSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import java.nio.charset.StandardCharsets;

/**
 * Checks what the server sent during option haggling against proto.md "Option reply message" and
 * "Option reply types": every reply well framed, of a known type, with data of the length and shape its
 * type needs; and, when haggling ended with {@code NBD_OPT_EXPORT_NAME}, the export reply at the end.
 */
final class HandshakeTranscript {
    private HandshakeTranscript() {}

    /** Checks a transcript that holds option replies only; returns how many there were. */
    static int checkOptionReplies(byte[] bytes) {
        return checkReplies(Unpooled.wrappedBuffer(bytes));
    }

    /**
     * Checks the transcript of a handshake that started transmission: option replies, the last of them
     * the ACK of GO, or (EXPORT_NAME) followed by u64 size, u16 flags and 124 zeroes unless NO_ZEROES.
     */
    static void checkStarted(byte[] bytes, NbdExportInfo export, NbdSession session) {
        ByteBuf in = Unpooled.wrappedBuffer(bytes);
        int flags = session.transmissionFlags();
        assertThat(flags & NbdConstants.FLAG_HAS_FLAGS).as("HAS_FLAGS").isNotZero();
        assertThat(flags & NbdConstants.FLAG_BLOCK_STATUS_PAYLOAD)
                .as("BLOCK_STATUS_PAYLOAD (never offered)")
                .isZero();
        if (!session.structuredReplies()) {
            assertThat(flags & NbdConstants.FLAG_SEND_DF)
                    .as("SEND_DF without structured replies")
                    .isZero();
        }
        if (session.extendedHeaders()) {
            assertThat(session.structuredReplies())
                    .as("extended headers imply structured replies")
                    .isTrue();
        }
        if (session.go()) {
            checkReplies(in);
            // The last reply is GO's ACK: u64 magic | u32 GO | u32 ACK | u32 0.
            assertThat(bytes.length).isGreaterThanOrEqualTo(20);
            ByteBuf ack = Unpooled.wrappedBuffer(bytes, bytes.length - 20, 20);
            assertThat(ack.getInt(8)).as("option of the last reply").isEqualTo(NbdConstants.OPT_GO);
            assertThat(ack.getInt(12)).as("type of the last reply").isEqualTo(NbdConstants.REP_ACK);
            return;
        }
        assertThat(session.extendedHeaders())
                .as("EXPORT_NAME after EXTENDED_HEADERS")
                .isFalse();
        int tail = 10 + (session.noZeroes() ? 0 : NbdConstants.EXPORT_NAME_PADDING);
        assertThat(bytes.length)
                .as("transcript ending in the EXPORT_NAME reply")
                .isGreaterThanOrEqualTo(tail);
        checkReplies(in.readSlice(bytes.length - tail));
        assertThat(in.readLong()).as("export size").isEqualTo(export.size());
        assertThat(in.readUnsignedShort()).as("transmission flags").isEqualTo(flags);
        while (in.isReadable()) {
            assertThat(in.readByte()).as("EXPORT_NAME padding").isZero();
        }
    }

    private static int checkReplies(ByteBuf in) {
        int n = 0;
        while (in.isReadable()) {
            // u64 magic | u32 option | u32 reply type | u32 length | data
            assertThat(in.readableBytes()).as("option reply header").isGreaterThanOrEqualTo(20);
            assertThat(in.readLong()).as("option reply magic").isEqualTo(NbdConstants.OPTION_REPLY_MAGIC);
            in.readInt();
            int type = in.readInt();
            long length = in.readUnsignedInt();
            assertThat(length).as("option reply length").isLessThanOrEqualTo(in.readableBytes());
            checkData(type, in.readSlice((int) length));
            n++;
        }
        return n;
    }

    private static void checkData(int type, ByteBuf data) {
        int length = data.readableBytes();
        if ((type & NbdConstants.REP_FLAG_ERROR) != 0) {
            int code = type & ~NbdConstants.REP_FLAG_ERROR;
            assertThat(code).as("error reply type").isBetween(1, 10);
            assertThat(length).as("error message length").isLessThanOrEqualTo(NbdConstants.MAX_STRING_LENGTH);
            return;
        }
        switch (type) {
            case NbdConstants.REP_ACK -> assertThat(length).as("ACK data").isZero();
            case NbdConstants.REP_SERVER -> {
                assertThat(length).as("SERVER data").isGreaterThanOrEqualTo(4);
                assertThat(data.readUnsignedInt()).as("SERVER name length").isLessThanOrEqualTo(length - 4);
            }
            case NbdConstants.REP_INFO -> checkInfo(data);
            case NbdConstants.REP_META_CONTEXT -> {
                assertThat(length).as("META_CONTEXT data").isGreaterThan(4);
                data.readInt();
                assertThat(data.toString(StandardCharsets.UTF_8)).isEqualTo("base:allocation");
            }
            default -> throw new AssertionError("option reply type: " + type + " (expected: a known type)");
        }
    }

    private static void checkInfo(ByteBuf data) {
        assertThat(data.readableBytes()).as("INFO data").isGreaterThanOrEqualTo(2);
        int info = data.readUnsignedShort();
        switch (info) {
            case NbdConstants.INFO_EXPORT -> {
                assertThat(data.readableBytes()).as("INFO_EXPORT data").isEqualTo(10);
                assertThat(data.readLong()).as("export size").isNotNegative();
                assertThat(data.readUnsignedShort() & NbdConstants.FLAG_HAS_FLAGS)
                        .as("HAS_FLAGS")
                        .isNotZero();
            }
            case NbdConstants.INFO_NAME, NbdConstants.INFO_DESCRIPTION ->
                assertThat(data.readableBytes()).isLessThanOrEqualTo(NbdConstants.MAX_STRING_LENGTH);
            case NbdConstants.INFO_BLOCK_SIZE -> {
                // proto.md "Size constraints": min a power of 2 <= 64 KiB; preferred a power of 2 >= max(min,
                // 512); maximum >= preferred.
                assertThat(data.readableBytes()).as("INFO_BLOCK_SIZE data").isEqualTo(12);
                long min = data.readUnsignedInt();
                long preferred = data.readUnsignedInt();
                long max = data.readUnsignedInt();
                assertThat(Long.bitCount(min))
                        .as("minimum block size a power of 2")
                        .isEqualTo(1);
                assertThat(min).isLessThanOrEqualTo(64 * 1024);
                assertThat(Long.bitCount(preferred))
                        .as("preferred block size a power of 2")
                        .isEqualTo(1);
                assertThat(preferred).isGreaterThanOrEqualTo(Math.max(min, 512));
                assertThat(max).isGreaterThanOrEqualTo(preferred);
            }
            default -> throw new AssertionError("NBD_INFO type: " + info + " (expected: one the client asked for)");
        }
    }
}
