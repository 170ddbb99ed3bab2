package dev.mqnbd.server.protocol;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.ReferenceCountUtil;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Test helpers: golden frames from hex, the ways to cut a stream into reads, and draining a channel. */
public final class Frames {
    private Frames() {}

    /** One way to cut a client byte stream into inbound buffers. */
    record Feed(String name, List<byte[]> chunks) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** Parses hex, ignoring white space and the {@code |} used to mark field boundaries. */
    static byte[] hex(String hex) {
        return ByteBufUtil.decodeHexDump(hex.replaceAll("[\\s|]", ""));
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    public static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** The stream whole, one byte per read, and (if {@code everySplit}) cut in two at every position. */
    static List<Feed> feeds(byte[] stream, boolean everySplit) {
        List<Feed> feeds = new ArrayList<>();
        feeds.add(new Feed("whole", List.of(stream)));
        List<byte[]> bytes = new ArrayList<>(stream.length);
        for (int i = 0; i < stream.length; i++) {
            bytes.add(new byte[] {stream[i]});
        }
        feeds.add(new Feed("byte by byte", bytes));
        if (everySplit) {
            for (int i = 1; i < stream.length; i++) {
                feeds.add(new Feed(
                        "split at " + i,
                        List.of(Arrays.copyOfRange(stream, 0, i), Arrays.copyOfRange(stream, i, stream.length))));
            }
        }
        return feeds;
    }

    /**
     * Writes {@code feed}'s chunks while the channel is open; returns the buffers written, whose reference
     * counts the caller checks once it has released everything.
     */
    static List<ByteBuf> write(EmbeddedChannel ch, Feed feed) {
        List<ByteBuf> written = new ArrayList<>();
        for (byte[] chunk : feed.chunks()) {
            if (!ch.isOpen()) {
                break;
            }
            ByteBuf buf = Unpooled.wrappedBuffer(chunk);
            written.add(buf);
            ch.writeInbound(buf);
        }
        return written;
    }

    /** Reads, concatenates and releases every outbound buffer. */
    static byte[] readAllOutbound(EmbeddedChannel ch) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object msg; (msg = ch.readOutbound()) != null; ) {
            ByteBuf buf = (ByteBuf) msg;
            try {
                out.writeBytes(ByteBufUtil.getBytes(buf));
            } finally {
                buf.release();
            }
        }
        return out.toByteArray();
    }

    /** Reads every inbound message; the caller releases them. */
    static List<Object> readAllInbound(EmbeddedChannel ch) {
        List<Object> in = new ArrayList<>();
        for (Object msg; (msg = ch.readInbound()) != null; ) {
            in.add(msg);
        }
        return in;
    }

    static void releaseAll(List<?> msgs) {
        msgs.forEach(ReferenceCountUtil::release);
    }

    static void assertAllReleased(List<ByteBuf> bufs) {
        for (ByteBuf buf : bufs) {
            assertThat(buf.refCnt()).as("inbound buffer reference count").isZero();
        }
    }

    /**
     * A compact request (proto.md "Request message"): u32 magic | u16 flags | u16 type | u64 cookie | u64
     * offset | u32 length | payload.
     */
    static byte[] request(int flags, int type, long cookie, long offset, int length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.REQUEST_MAGIC).writeShort(flags).writeShort(type);
        buf.writeLong(cookie).writeLong(offset).writeInt(length).writeBytes(payload);
        return ByteBufUtil.getBytes(buf);
    }

    /** An extended request (ext): as the compact one with a u64 length. */
    static byte[] extendedRequest(int flags, int type, long cookie, long offset, long length, byte[] payload) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(NbdConstants.EXTENDED_REQUEST_MAGIC).writeShort(flags).writeShort(type);
        buf.writeLong(cookie).writeLong(offset).writeLong(length).writeBytes(payload);
        return ByteBufUtil.getBytes(buf);
    }

    /** An option request (proto.md "Option haggling"): u64 IHAVEOPT | u32 option | u32 length | data. */
    public static byte[] option(int option, byte[] data) {
        ByteBuf buf = Unpooled.buffer();
        buf.writeLong(NbdConstants.IHAVEOPT)
                .writeInt(option)
                .writeInt(data.length)
                .writeBytes(data);
        return ByteBufUtil.getBytes(buf);
    }

    /** INFO/GO data: u32 name length | name | u16 n | n × u16 info request. */
    public static byte[] infoRequest(String name, int... infos) {
        byte[] n = utf8(name);
        ByteBuf buf = Unpooled.buffer();
        buf.writeInt(n.length).writeBytes(n).writeShort(infos.length);
        for (int info : infos) {
            buf.writeShort(info);
        }
        return ByteBufUtil.getBytes(buf);
    }

    /** One option reply as parsed back from the server's bytes. */
    record OptionReply(int option, int type, byte[] data) {
        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    /** Parses a run of option replies, checking each magic; fails on trailing bytes. */
    static List<OptionReply> optionReplies(byte[] bytes) {
        ByteBuf buf = Unpooled.wrappedBuffer(bytes);
        List<OptionReply> replies = new ArrayList<>();
        while (buf.isReadable()) {
            assertThat(buf.readableBytes()).isGreaterThanOrEqualTo(NbdConstants.OPTION_REPLY_HEADER_LENGTH);
            assertThat(buf.readLong()).isEqualTo(NbdConstants.OPTION_REPLY_MAGIC);
            int option = buf.readInt();
            int type = buf.readInt();
            int length = buf.readInt();
            replies.add(new OptionReply(option, type, ByteBufUtil.getBytes(buf.readSlice(length))));
        }
        return replies;
    }
}
