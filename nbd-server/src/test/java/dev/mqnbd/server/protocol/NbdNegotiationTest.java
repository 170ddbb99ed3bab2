package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.concat;
import static dev.mqnbd.server.protocol.Frames.infoRequest;
import static dev.mqnbd.server.protocol.Frames.option;
import static dev.mqnbd.server.protocol.Frames.utf8;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXPORT_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXTENDED_HEADERS;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_GO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_SET_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STRUCTURED_REPLY;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ACK;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_EXT_HEADER_REQD;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_INVALID;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_UNKNOWN;
import static dev.mqnbd.server.protocol.NbdConstants.REP_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.REP_META_CONTEXT;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Negotiation of structured replies, extended headers and metadata contexts (proto.md "Option types"). */
class NbdNegotiationTest {
    private static final byte[] FLAGS = Frames.hex("00000003"); // C_FIXED_NEWSTYLE | C_NO_ZEROES
    private static final NbdExportInfo DISK = new NbdExportInfo(
            "disk", "", 1 << 20, NbdConstants.FLAG_HAS_FLAGS | NbdConstants.FLAG_SEND_DF, 1, 4096, 1 << 20);
    private static final NbdExportInfo OTHER =
            new NbdExportInfo("other", "", 1 << 20, NbdConstants.FLAG_HAS_FLAGS, 1, 4096, 1 << 20);
    private static final NbdExports EXPORTS = new NbdExports() {
        @Override
        public NbdExportInfo find(String name) {
            return switch (name) {
                case "disk" -> DISK;
                case "other" -> OTHER;
                default -> null;
            };
        }

        @Override
        public List<NbdExportInfo> list() {
            return List.of(DISK, OTHER);
        }
    };

    private final List<NbdSession> sessions = new ArrayList<>();
    private EmbeddedChannel ch;

    @AfterEach
    void tearDown() {
        if (ch != null) {
            ch.finishAndReleaseAll();
        }
    }

    /** Runs the handshake on {@code stream} (after the client flags) and returns the option replies. */
    private List<Frames.OptionReply> negotiate(byte[]... options) {
        ch = new EmbeddedChannel(new NbdHandshakeHandler(EXPORTS, (ctx, export, session) -> sessions.add(session)));
        ByteBuf greeting = ch.readOutbound();
        greeting.release();
        ch.writeInbound(Unpooled.wrappedBuffer(concat(FLAGS, concat(options))));
        return Frames.optionReplies(Frames.readAllOutbound(ch));
    }

    /** Meta-context option data: u32 name length | name | u32 n | n × (u32 length | query). */
    private static byte[] metaQuery(String export, String... queries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(4).putInt(utf8(export).length).array());
        out.writeBytes(utf8(export));
        out.writeBytes(ByteBuffer.allocate(4).putInt(queries.length).array());
        for (String q : queries) {
            out.writeBytes(ByteBuffer.allocate(4).putInt(utf8(q).length).array());
            out.writeBytes(utf8(q));
        }
        return out.toByteArray();
    }

    @Test
    void structuredReply_ack_thenGoCarriesItAndDf() {
        List<Frames.OptionReply> replies =
                negotiate(option(OPT_STRUCTURED_REPLY, new byte[0]), option(OPT_GO, infoRequest("disk")));

        assertThat(replies.get(0).type()).isEqualTo(REP_ACK);
        assertThat(sessions).singleElement().satisfies(s -> {
            assertThat(s.structuredReplies()).isTrue();
            assertThat(s.extendedHeaders()).isFalse();
            assertThat(s.transmissionFlags() & NbdConstants.FLAG_SEND_DF).isNotZero();
            assertThat(s.baseAllocationContext()).isZero();
        });
    }

    @Test
    void withoutStructuredReplies_dfIsClearedAndMetaContextsInvalid() {
        List<Frames.OptionReply> replies = negotiate(
                option(OPT_SET_META_CONTEXT, metaQuery("disk", "base:allocation")),
                option(OPT_GO, infoRequest("disk")));

        assertThat(replies.get(0).type()).isEqualTo(REP_ERR_INVALID);
        assertThat(sessions.get(0).transmissionFlags() & NbdConstants.FLAG_SEND_DF)
                .isZero();
        assertThat(sessions.get(0).baseAllocationContext()).isZero();
    }

    @Test
    void listMetaContext_noQueriesOrWildcard_listsBaseAllocation_otherNamespacesIgnored() {
        List<Frames.OptionReply> replies = negotiate(
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_LIST_META_CONTEXT, metaQuery("disk")),
                option(OPT_LIST_META_CONTEXT, metaQuery("disk", "base:")),
                option(OPT_LIST_META_CONTEXT, metaQuery("disk", "qemu:dirty-bitmap:x", "base:nothing")));

        assertThat(replies)
                .extracting(Frames.OptionReply::option, Frames.OptionReply::type)
                .containsExactly(
                        tuple(OPT_STRUCTURED_REPLY, REP_ACK),
                        tuple(OPT_LIST_META_CONTEXT, REP_META_CONTEXT),
                        tuple(OPT_LIST_META_CONTEXT, REP_ACK),
                        tuple(OPT_LIST_META_CONTEXT, REP_META_CONTEXT),
                        tuple(OPT_LIST_META_CONTEXT, REP_ACK),
                        tuple(OPT_LIST_META_CONTEXT, REP_ACK));
        // u32 id (0 in LIST replies) | "base:allocation"
        assertThat(replies.get(1).data()).isEqualTo(concat(new byte[4], utf8("base:allocation")));
    }

    @Test
    void setMetaContext_selectsBaseAllocation_forThatExportOnly() {
        List<Frames.OptionReply> replies = negotiate(
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_SET_META_CONTEXT, metaQuery("disk", "base:allocation")),
                option(OPT_GO, infoRequest("disk")));

        assertThat(replies.get(1).type()).isEqualTo(REP_META_CONTEXT);
        assertThat(replies.get(1).data()).isEqualTo(concat(new byte[] {0, 0, 0, 1}, utf8("base:allocation")));
        assertThat(replies.get(2).type()).isEqualTo(REP_ACK);
        assertThat(sessions.get(0).baseAllocationContext()).isEqualTo(1);

        sessions.clear();
        ch.finishAndReleaseAll();
        negotiate(
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_SET_META_CONTEXT, metaQuery("disk", "base:allocation")),
                option(OPT_GO, infoRequest("other")));
        assertThat(sessions.get(0).baseAllocationContext()).isZero();
    }

    @Test
    void setMetaContext_wildcardOrUnknownSelectsNothing_unknownExportAndMalformedData() {
        byte[] truncated = metaQuery("disk", "base:allocation");
        List<Frames.OptionReply> replies = negotiate(
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_SET_META_CONTEXT, metaQuery("disk", "base:")),
                option(OPT_SET_META_CONTEXT, metaQuery("nope", "base:allocation")),
                option(OPT_SET_META_CONTEXT, java.util.Arrays.copyOf(truncated, truncated.length - 3)),
                option(OPT_GO, infoRequest("disk")));

        assertThat(replies)
                .extracting(Frames.OptionReply::type)
                .containsSubsequence(REP_ACK, REP_ACK, REP_ERR_UNKNOWN, REP_ERR_INVALID, REP_INFO);
        assertThat(sessions.get(0).baseAllocationContext()).isZero();
    }

    @Test
    void extendedHeaders_ackImpliesStructured_laterStructuredReplyRefused() {
        List<Frames.OptionReply> replies = negotiate(
                option(OPT_EXTENDED_HEADERS, new byte[0]),
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(OPT_EXTENDED_HEADERS, new byte[1]),
                option(OPT_GO, infoRequest("disk")));

        assertThat(replies)
                .extracting(Frames.OptionReply::type)
                .startsWith(REP_ACK, REP_ERR_EXT_HEADER_REQD, REP_ERR_INVALID);
        assertThat(sessions.get(0).extendedHeaders()).isTrue();
        assertThat(sessions.get(0).structuredReplies()).isTrue();
    }

    @Test
    void exportName_afterExtendedHeaders_closes() {
        negotiate(option(OPT_EXTENDED_HEADERS, new byte[0]), option(OPT_EXPORT_NAME, utf8("disk")));

        assertThat(sessions).isEmpty();
        assertThat(ch.isOpen()).isFalse();
    }
}
