package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.hex;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.protocol.NbdReplyEncoder.Mode;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import org.junit.jupiter.api.Test;

class NbdReplyEncoderTest {
    private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;

    private static byte[] bytesOf(ByteBuf reply) {
        try {
            return ByteBufUtil.getBytes(reply);
        } finally {
            reply.release();
        }
    }

    @Test
    void forSession_choosesTheNegotiatedFraming() {
        assertThat(NbdReplyEncoder.forSession(new NbdSession(0, 0, true, false, false, 0))
                        .mode())
                .isEqualTo(Mode.SIMPLE);
        assertThat(NbdReplyEncoder.forSession(new NbdSession(0, 0, true, true, false, 0))
                        .mode())
                .isEqualTo(Mode.STRUCTURED);
        assertThat(NbdReplyEncoder.forSession(new NbdSession(0, 0, true, true, true, 0))
                        .mode())
                .isEqualTo(Mode.EXTENDED);
        assertThat(NbdReplyEncoder.of(Mode.EXTENDED))
                .isSameAs(NbdReplyEncoder.forSession(new NbdSession(0, 0, true, true, true, 0)));
    }

    @Test
    void succeeded_simpleReplyOfSixteenBytes() {
        ByteBuf reply = NbdReplyEncoder.of(Mode.SIMPLE).succeeded(ALLOC, -1L, 0);
        // u32 magic | u32 error | u64 cookie
        assertThat(bytesOf(reply)).isEqualTo(hex("67446698 | 00000000 | ffffffffffffffff"));
        reply = NbdReplyEncoder.of(Mode.STRUCTURED).succeeded(ALLOC, 7, 0);
        assertThat(bytesOf(reply)).isEqualTo(hex("67446698 | 00000000 | 0000000000000007"));
    }

    @Test
    void succeeded_extendedNoneChunk() {
        ByteBuf reply = NbdReplyEncoder.of(Mode.EXTENDED).succeeded(ALLOC, 7, 4096);
        // u32 magic | u16 flags DONE | u16 type NONE | u64 cookie | u64 offset | u64 length
        assertThat(bytesOf(reply))
                .isEqualTo(hex("6e8a278c | 0001 | 0000 | 0000000000000007 | 0000000000001000 | 0000000000000000"));
    }

    @Test
    void failed_simpleErrorOrStructuredErrorChunk() {
        assertThat(bytesOf(
                        NbdReplyEncoder.of(Mode.SIMPLE).failed(ALLOC, 1, 0, NbdCommand.READ, NbdError.EINVAL.code())))
                .isEqualTo(hex("67446698 | 00000016 | 0000000000000001"));
        assertThat(bytesOf(NbdReplyEncoder.of(Mode.STRUCTURED).failed(ALLOC, 1, 0, NbdCommand.WRITE, 5)))
                .isEqualTo(hex("67446698 | 00000005 | 0000000000000001"));
        byte[] chunk = bytesOf(NbdReplyEncoder.of(Mode.STRUCTURED).failed(ALLOC, 1, 0, NbdCommand.READ, 5));
        String message = "READ failed: EIO";
        // u32 magic | u16 flags DONE | u16 type ERROR | u64 cookie | u32 length | u32 error | u16 message length
        assertThat(chunk)
                .startsWith(
                        hex("668e33ef | 0001 | 8001 | 0000000000000001 | " + String.format("%08x", 6 + message.length())
                                + " | 00000005 | " + String.format("%04x", message.length())));
        assertThat(chunk).hasSize(20 + 6 + message.length());
    }

    @Test
    void readSucceeded_headerInFrontOfTheDataInPlace() {
        for (Mode mode : Mode.values()) {
            NbdReplyEncoder encoder = NbdReplyEncoder.of(mode);
            ByteBuf buffer = encoder.allocateRead(ALLOC, 4);
            assertThat(buffer.isDirect()).isTrue();
            buffer.setBytes(encoder.dataIndex(), new byte[] {1, 2, 3, 4});
            ByteBuf reply = encoder.readSucceeded(ALLOC, buffer, 7, 0, 4, null, null, 0);
            assertThat(reply).isSameAs(buffer);
            String header = switch (mode) {
                case SIMPLE -> "67446698 | 00000000 | 0000000000000007";
                // u32 magic | u16 flags DONE | u16 type OFFSET_DATA | u64 cookie | u32 length | u64 data offset
                case STRUCTURED -> "668e33ef | 0001 | 0001 | 0000000000000007 | 0000000c | 0000000000000000";
                case EXTENDED ->
                    "6e8a278c | 0001 | 0001 | 0000000000000007 | 0000000000000000 | 000000000000000c"
                            + " | 0000000000000000";
            };
            assertThat(bytesOf(reply)).as("%s", mode).isEqualTo(hex(header + " | 01020304"));
        }
    }

    @Test
    void readOfAMebibyte_dataInABufferOfItsOwn_filledThroughOneNioBuffer_framedAsInPlace() {
        int mib = 1 << 20;
        for (Mode mode : Mode.values()) {
            NbdReplyEncoder encoder = NbdReplyEncoder.of(mode);
            ByteBuf buffer = encoder.allocateRead(ALLOC, mib);
            assertThat(buffer).isInstanceOf(io.netty.buffer.CompositeByteBuf.class);
            assertThat(((io.netty.buffer.CompositeByteBuf) buffer).component(1).capacity())
                    .as("the data's own buffer, of a size the allocator pools")
                    .isEqualTo(mib);
            java.nio.ByteBuffer data = buffer.nioBuffer(encoder.dataIndex(), mib);
            assertThat(data.isDirect()).isTrue();
            byte[] pattern = new byte[mib];
            for (int i = 0; i < mib; i++) {
                pattern[i] = (byte) (i * 31 + 7);
            }
            data.put(pattern); // as a backend fills it: the bytes must land in the reply
            ByteBuf reply = encoder.readSucceeded(ALLOC, buffer, 7, 0, mib, null, null, 0);
            byte[] bytes = bytesOf(reply);
            assertThat(bytes).as("%s", mode).hasSize(encoder.dataIndex() + mib);
            assertThat(java.util.Arrays.copyOfRange(bytes, encoder.dataIndex(), bytes.length))
                    .as("%s", mode)
                    .isEqualTo(pattern);
        }
        // Runs of zeroes in it still go out as holes, the data as slices of it.
        NbdReplyEncoder encoder = NbdReplyEncoder.of(Mode.STRUCTURED);
        ByteBuf buffer = encoder.allocateRead(ALLOC, mib);
        buffer.setByte(encoder.dataIndex(), 9);
        ByteBuf reply = encoder.readSucceeded(ALLOC, buffer, 7, 0, mib, new long[] {1, mib - 1}, new int[] {0, 3}, 2);
        assertThat(bytesOf(reply))
                .isEqualTo(hex(""
                        + "668e33ef | 0000 | 0001 | 0000000000000007 | 00000009 | 0000000000000000 | 09"
                        + "668e33ef | 0000 | 0002 | 0000000000000007 | 0000000c | 0000000000000001 | 000fffff"
                        + "668e33ef | 0001 | 0000 | 0000000000000007 | 00000000"));
        assertThat(buffer.refCnt()).isZero();
    }

    @Test
    void readSucceeded_runsOfZeroesAsHoles() {
        NbdReplyEncoder encoder = NbdReplyEncoder.of(Mode.STRUCTURED);
        ByteBuf buffer = encoder.allocateRead(ALLOC, 4);
        buffer.setBytes(encoder.dataIndex(), new byte[] {1, 0, 0, 4});
        ByteBuf reply = encoder.readSucceeded(ALLOC, buffer, 7, 0, 4, new long[] {1, 2}, new int[] {0, 3}, 2);
        assertThat(bytesOf(reply))
                .isEqualTo(hex(""
                        + "668e33ef | 0000 | 0001 | 0000000000000007 | 00000009 | 0000000000000000 | 01"
                        + "668e33ef | 0000 | 0002 | 0000000000000007 | 0000000c | 0000000000000001 | 00000002"
                        + "668e33ef | 0000 | 0001 | 0000000000000007 | 00000009 | 0000000000000003 | 04"
                        + "668e33ef | 0001 | 0000 | 0000000000000007 | 00000000"));
        assertThat(buffer.refCnt()).isZero();
    }

    @Test
    void blockStatus_compactOrExtendedDescriptors() {
        long[] lengths = {4096};
        int[] flags = {3};
        assertThat(bytesOf(NbdReplyEncoder.of(Mode.STRUCTURED).blockStatus(ALLOC, 7, 0, 1, lengths, flags, 1)))
                .isEqualTo(
                        hex("668e33ef | 0001 | 0005 | 0000000000000007 | 0000000c | 00000001 | 00001000 | 00000003"));
        assertThat(bytesOf(NbdReplyEncoder.of(Mode.EXTENDED).blockStatus(ALLOC, 7, 0, 1, lengths, flags, 1)))
                .isEqualTo(hex("6e8a278c | 0001 | 0006 | 0000000000000007 | 0000000000000000 | 0000000000000018"
                        + " | 00000001 | 00000001 | 0000000000001000 | 0000000000000003"));
        assertThatThrownBy(() -> NbdReplyEncoder.of(Mode.SIMPLE).blockStatus(ALLOC, 7, 0, 1, lengths, flags, 1))
                .isInstanceOf(IllegalStateException.class);
    }
}
