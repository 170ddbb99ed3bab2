package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.concat;
import static dev.mqnbd.server.protocol.Frames.hex;
import static dev.mqnbd.server.protocol.Frames.infoRequest;
import static dev.mqnbd.server.protocol.Frames.option;
import static dev.mqnbd.server.protocol.Frames.utf8;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXPORT_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_GO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_SET_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STRUCTURED_REPLY;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ACK;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_UNKNOWN;
import static dev.mqnbd.server.protocol.NbdConstants.REP_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.REP_SERVER;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;

import dev.mqnbd.server.protocol.Frames.OptionReply;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Per-export access in the handshake: an export {@link NbdExports#allows} refuses is indistinguishable from a
 * missing one.
 */
class NbdAccessTest {
    private static final byte[] FLAGS = hex("00000003");
    private static final NbdExportInfo OPEN =
            new NbdExportInfo("open", "open to all", 1 << 20, NbdConstants.FLAG_HAS_FLAGS, 1, 4096, 1 << 20);
    private static final NbdExportInfo SECRET =
            new NbdExportInfo("secret", "the secret one", 2 << 20, NbdConstants.FLAG_HAS_FLAGS, 1, 4096, 1 << 20);

    private final Set<String> refused = new java.util.HashSet<>(Set.of("secret"));
    private final List<NbdPeer> peers = new ArrayList<>();
    private final NbdExports exports = new NbdExports() {
        @Override
        public NbdExportInfo find(String name) {
            return switch (name) {
                case "open" -> OPEN;
                case "secret" -> SECRET;
                default -> null;
            };
        }

        @Override
        public List<NbdExportInfo> list() {
            return List.of(OPEN, SECRET);
        }

        @Override
        public boolean allows(NbdExportInfo export, NbdPeer peer) {
            peers.add(peer);
            return !refused.contains(export.name());
        }
    };
    private final List<NbdExportInfo> started = new ArrayList<>();
    private EmbeddedChannel ch;

    @AfterEach
    void tearDown() {
        if (ch != null) {
            ch.finishAndReleaseAll();
        }
    }

    private byte[] run(byte[]... options) {
        ch = new EmbeddedChannel(new NbdHandshakeHandler(exports, (ctx, export, session) -> started.add(export)));
        ((ByteBuf) ch.readOutbound()).release();
        ch.writeInbound(Unpooled.wrappedBuffer(concat(FLAGS, concat(options))));
        return Frames.readAllOutbound(ch);
    }

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
    void list_omitsRefusedExports() {
        List<OptionReply> replies = Frames.optionReplies(run(option(OPT_LIST, new byte[0])));

        assertThat(replies).extracting(OptionReply::type).containsExactly(REP_SERVER, REP_ACK);
        assertThat(replies.getFirst().text()).contains("open").doesNotContain("secret");
        assertThat(peers).extracting(NbdPeer::tls).containsOnly(false);
    }

    @Test
    void list_nothingAllowed_onlyAck() {
        refused.add("open");

        assertThat(Frames.optionReplies(run(option(OPT_LIST, new byte[0]))))
                .extracting(OptionReply::type)
                .containsExactly(REP_ACK);
    }

    @ParameterizedTest
    @ValueSource(ints = {OPT_INFO, OPT_GO})
    void infoOrGo_refusedExport_answersExactlyAsAMissingOne(int opt) {
        byte[] refusedReply = run(option(opt, infoRequest("secret", NbdConstants.INFO_DESCRIPTION)));
        tearDown();
        refused.clear();
        byte[] missingReply = run(option(opt, infoRequest("nosuch", NbdConstants.INFO_DESCRIPTION)));

        assertThat(Frames.optionReplies(refusedReply))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(opt, REP_ERR_UNKNOWN));
        // The same bytes, but for the name the client itself sent.
        String refusedText = Frames.optionReplies(refusedReply).getFirst().text();
        String missingText = Frames.optionReplies(missingReply).getFirst().text();
        assertThat(refusedText.replace("secret", "nosuch")).isEqualTo(missingText);
        assertThat(refusedReply.length - "secret".length()).isEqualTo(missingReply.length - "nosuch".length());
        assertThat(started).isEmpty();
        assertThat(ch.isOpen()).isTrue();
    }

    @Test
    void go_allowedExport_startsTransmission() {
        List<OptionReply> replies = Frames.optionReplies(run(option(OPT_GO, infoRequest("open"))));

        assertThat(replies).extracting(OptionReply::type).containsExactly(REP_INFO, REP_INFO, REP_ACK);
        assertThat(started).containsExactly(OPEN);
    }

    @Test
    void exportName_refusedExport_closes() {
        byte[] out = run(option(OPT_EXPORT_NAME, utf8("secret")));

        assertThat(out).isEmpty();
        assertThat(ch.isOpen()).isFalse();
        assertThat(started).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(ints = {OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT})
    void metaContext_refusedExport_errUnknown(int opt) {
        List<OptionReply> replies = Frames.optionReplies(run(
                option(OPT_STRUCTURED_REPLY, new byte[0]),
                option(opt, metaQuery("secret", "base:allocation")),
                option(opt, metaQuery("open", "base:allocation"))));

        assertThat(replies)
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(
                        tuple(OPT_STRUCTURED_REPLY, REP_ACK),
                        tuple(opt, REP_ERR_UNKNOWN),
                        tuple(opt, NbdConstants.REP_META_CONTEXT),
                        tuple(opt, REP_ACK));
    }

    @Test
    void peer_carriesTheChannelsRemoteAddress() {
        run(option(OPT_INFO, infoRequest("open")));

        assertThat(peers).singleElement().satisfies(p -> {
            assertThat(p.address()).isEqualTo(ch.remoteAddress());
            assertThat(p.tls()).isFalse();
            assertThat(p.subject()).isNull();
        });
    }
}
