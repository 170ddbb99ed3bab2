package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.hex;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

class NbdReplyEncoderTest {
    @Test
    void writeSimpleReplyHeader_atWriterIndex() {
        ByteBuf out = Unpooled.buffer().writeByte(0xee);
        NbdReplyEncoder.writeSimpleReplyHeader(out, 0x0102030405060708L, NbdError.EINVAL.code());
        // (existing byte) | u32 magic | u32 error 22 | u64 cookie
        assertThat(ByteBufUtil.getBytes(out)).isEqualTo(hex("ee | 67446698 | 00000016 | 0102030405060708"));
        out.release();
    }

    @Test
    void simpleReply_sixteenBytes() {
        ByteBuf reply = NbdReplyEncoder.simpleReply(PooledByteBufAllocator.DEFAULT, -1L, 0);
        assertThat(ByteBufUtil.getBytes(reply)).isEqualTo(hex("67446698 | 00000000 | ffffffffffffffff"));
        reply.release();
    }

    @Test
    void readReply_headerThenRoomForData() {
        ByteBuf reply = NbdReplyEncoder.readReply(PooledByteBufAllocator.DEFAULT, 7, 4096);
        assertThat(reply.isDirect()).isTrue();
        assertThat(reply.readableBytes()).isEqualTo(16);
        assertThat(reply.writableBytes()).isEqualTo(4096);
        assertThat(ByteBufUtil.getBytes(reply)).isEqualTo(hex("67446698 | 00000000 | 0000000000000007"));
        reply.release();
        assertThatThrownBy(() -> NbdReplyEncoder.readReply(PooledByteBufAllocator.DEFAULT, 7, -1))
                .isInstanceOf(IllegalArgumentException.class);
    }
}
