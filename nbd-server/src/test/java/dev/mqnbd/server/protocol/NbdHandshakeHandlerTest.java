package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.concat;
import static dev.mqnbd.server.protocol.Frames.hex;
import static dev.mqnbd.server.protocol.Frames.infoRequest;
import static dev.mqnbd.server.protocol.Frames.option;
import static dev.mqnbd.server.protocol.Frames.utf8;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_ABORT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXPORT_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_GO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ACK;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_INVALID;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_TOO_BIG;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_UNKNOWN;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_UNSUP;
import static dev.mqnbd.server.protocol.NbdConstants.REP_SERVER;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.tuple;

import dev.mqnbd.server.protocol.Frames.Feed;
import dev.mqnbd.server.protocol.Frames.OptionReply;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class NbdHandshakeHandlerTest {
    // proto.md "Newstyle negotiation": NBDMAGIC | IHAVEOPT | u16 FIXED_NEWSTYLE|NO_ZEROES
    private static final byte[] GREETING = hex("4e42444d41474943 | 49484156454f5054 | 0003");
    // Client flags: C_FIXED_NEWSTYLE | C_NO_ZEROES, C_FIXED_NEWSTYLE only, none.
    private static final byte[] FLAGS_NO_ZEROES = hex("00000003");
    private static final byte[] FLAGS_FIXED = hex("00000001");
    private static final byte[] FLAGS_NONE = hex("00000000");

    // "disk": 1 MiB, HAS_FLAGS|SEND_FLUSH|SEND_FUA (0x0d), block sizes 1 / 4096 / 32 MiB. "" finds it too.
    private static final NbdExportInfo DISK = new NbdExportInfo(
            "disk",
            "the disk",
            0x100000,
            NbdConstants.FLAG_HAS_FLAGS | NbdConstants.FLAG_SEND_FLUSH | NbdConstants.FLAG_SEND_FUA,
            1,
            4096,
            32 << 20);
    // "scratch": 2 MiB, READ_ONLY and SEND_DF (which must be masked: no structured replies were negotiated).
    private static final NbdExportInfo SCRATCH = new NbdExportInfo(
            "scratch", "", 0x200000, NbdConstants.FLAG_READ_ONLY | NbdConstants.FLAG_SEND_DF, 512, 4096, 1 << 20);
    private static final NbdExports EXPORTS = new NbdExports() {
        @Override
        public NbdExportInfo find(String name) {
            return switch (name) {
                case "", "disk" -> DISK;
                case "scratch" -> SCRATCH;
                default -> null;
            };
        }

        @Override
        public List<NbdExportInfo> list() {
            return List.of(DISK, SCRATCH);
        }
    };

    // GO "disk" asking for NAME: u32 4 | "disk" | u16 1 | u16 NBD_INFO_NAME
    private static final byte[] GO_DISK =
            hex("49484156454f5054 | 00000007 | 0000000c | 00000004 6469736b | 0001 | 0001");
    // The GO replies: NBD_INFO_EXPORT, NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE, ACK.
    private static final byte[] GO_DISK_REPLIES = hex("""
            0003e889045565a9 | 00000007 | 00000003 | 0000000c | 0000 | 0000000000100000 | 000d
            0003e889045565a9 | 00000007 | 00000003 | 00000006 | 0001 | 6469736b
            0003e889045565a9 | 00000007 | 00000003 | 0000000e | 0003 | 00000001 | 00001000 | 02000000
            0003e889045565a9 | 00000007 | 00000001 | 00000000
            """);
    // EXPORT_NAME "disk"; its reply is u64 size | u16 flags, then 124 zeroes unless NO_ZEROES.
    private static final byte[] EXPORT_NAME_DISK = hex("49484156454f5054 | 00000001 | 00000004 | 6469736b");
    private static final byte[] EXPORT_NAME_DISK_REPLY = hex("0000000000100000 | 000d");
    private static final byte[] ABORT = hex("49484156454f5054 | 00000002 | 00000000");
    private static final byte[] ABORT_ACK = hex("0003e889045565a9 | 00000002 | 00000001 | 00000000");
    private static final byte[] LIST = hex("49484156454f5054 | 00000003 | 00000000");
    private static final byte[] LIST_REPLIES = hex("""
            0003e889045565a9 | 00000003 | 00000002 | 00000010 | 00000004 | 6469736b | 746865206469736b
            0003e889045565a9 | 00000003 | 00000002 | 0000000b | 00000007 | 73637261746368
            0003e889045565a9 | 00000003 | 00000001 | 00000000
            """);
    // READ cookie 0x0102030405060708, offset 0x1000, length 0x200: pipelined right behind GO/EXPORT_NAME.
    private static final byte[] READ_FRAME =
            hex("25609513 | 0000 | 0000 | 0102030405060708 | 0000000000001000 | 00000200");

    /** One connection: the handler under test, a starter that adds a request decoder, and what it saw. */
    private static final class Connection {
        final EmbeddedChannel ch;
        final List<NbdExportInfo> startedExports = new ArrayList<>();
        final List<NbdSession> sessions = new ArrayList<>();
        final List<ByteBuf> written = new ArrayList<>();

        Connection(int maximumOptionLength) {
            NbdTransmissionStarter starter = (ctx, export, session) -> {
                startedExports.add(export);
                sessions.add(session);
                ctx.pipeline().addAfter(ctx.name(), "nbd-decoder", new NbdRequestDecoder(1 << 20));
            };
            ch = new EmbeddedChannel(new NbdHandshakeHandler(EXPORTS, starter, maximumOptionLength));
            assertThat(Frames.readAllOutbound(ch)).isEqualTo(GREETING);
        }

        void feed(Feed feed) {
            written.addAll(Frames.write(ch, feed));
        }

        /** What the server sent after the greeting. */
        byte[] out() {
            return Frames.readAllOutbound(ch);
        }

        boolean handshaking() {
            return ch.pipeline().get(NbdHandshakeHandler.class) != null;
        }

        void finish() {
            assertThat(ch.finish()).isFalse();
            Frames.assertAllReleased(written);
        }
    }

    /** Runs {@code check} on a fresh connection fed {@code stream} whole, byte by byte and split everywhere. */
    private static void forEachFeed(byte[] stream, Consumer<Connection> check) {
        forEachFeed(stream, true, NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH, check);
    }

    private static void forEachFeed(
            byte[] stream, boolean everySplit, int maximumOptionLength, Consumer<Connection> check) {
        for (Feed feed : Frames.feeds(stream, everySplit)) {
            Connection c = new Connection(maximumOptionLength);
            c.feed(feed);
            try {
                check.accept(c);
            } catch (AssertionError e) {
                c.ch.finishAndReleaseAll();
                throw new AssertionError("fed " + feed + ": " + e.getMessage(), e);
            }
            c.finish();
        }
    }

    /* --------------- greeting and client flags --------------- */

    @Test
    void greeting_sentOnce_alsoWhenAddedToActiveChannel() {
        Connection c = new Connection(16);
        assertThat(c.out()).isEmpty();
        c.finish();

        EmbeddedChannel ch = new EmbeddedChannel();
        ch.pipeline().addLast(new NbdHandshakeHandler(EXPORTS, (ctx, e, s) -> {}));
        assertThat(Frames.readAllOutbound(ch)).isEqualTo(GREETING);
        assertThat(ch.finish()).isFalse();
    }

    @ParameterizedTest
    @ValueSource(strings = {"00000004", "80000000", "00000007", "ffffffff"})
    void clientFlags_unknown_closes(String flags) {
        forEachFeed(concat(hex(flags), LIST), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    @Test
    void clientFlags_plainNewstyle_exportNameWithZeroes() {
        forEachFeed(concat(FLAGS_NONE, EXPORT_NAME_DISK), c -> {
            assertThat(c.out()).isEqualTo(concat(EXPORT_NAME_DISK_REPLY, new byte[124]));
            assertThat(c.sessions).singleElement().satisfies(s -> {
                assertThat(s.fixedNewstyle()).isFalse();
                assertThat(s.go()).isFalse();
            });
            assertThat(c.handshaking()).isFalse();
        });
    }

    @Test
    void clientFlags_plainNewstyle_otherOption_closes() {
        forEachFeed(concat(FLAGS_NONE, LIST), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    @Test
    void optionMagic_wrong_closes() {
        byte[] bad = LIST.clone();
        bad[7] ^= 1;
        forEachFeed(concat(FLAGS_FIXED, bad, LIST), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    /* --------------- EXPORT_NAME --------------- */

    @Test
    void exportName_noZeroes_noPadding_startsTransmission_passesPipelinedRequest() {
        forEachFeed(concat(FLAGS_NO_ZEROES, EXPORT_NAME_DISK, READ_FRAME), c -> {
            assertThat(c.out()).isEqualTo(EXPORT_NAME_DISK_REPLY);
            assertThat(c.startedExports).containsExactly(DISK);
            assertThat(c.sessions).singleElement().satisfies(s -> {
                assertThat(s.noZeroes()).isTrue();
                assertThat(s.go()).isFalse();
                assertThat(s.transmissionFlags()).isEqualTo(0x0d);
            });
            assertThat(c.handshaking()).isFalse();
            assertPipelinedRead(c);
        });
    }

    @Test
    void exportName_withoutNoZeroes_padded() {
        forEachFeed(concat(FLAGS_FIXED, EXPORT_NAME_DISK), c -> {
            assertThat(c.out()).isEqualTo(concat(EXPORT_NAME_DISK_REPLY, new byte[124]));
            assertThat(c.sessions)
                    .singleElement()
                    .extracting(NbdSession::noZeroes)
                    .isEqualTo(false);
        });
    }

    @Test
    void exportName_unknown_closes() {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_EXPORT_NAME, utf8("nope")), READ_FRAME), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
            assertThat(c.startedExports).isEmpty();
            assertThat(c.ch.<Object>readInbound()).isNull();
        });
    }

    @Test
    void exportName_defaultExport() {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_EXPORT_NAME, new byte[0])), c -> {
            assertThat(c.out()).isEqualTo(EXPORT_NAME_DISK_REPLY);
            assertThat(c.startedExports).containsExactly(DISK);
        });
    }

    @Test
    void exportName_longerThanStringLimit_closes() {
        byte[] header = hex("49484156454f5054 | 00000001 | 00001001");
        forEachFeed(concat(FLAGS_NO_ZEROES, header), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    private static void assertPipelinedRead(Connection c) {
        NbdRequest rq = c.ch.readInbound();
        assertThat(rq).isNotNull();
        try {
            assertThat(rq.command()).isEqualTo(NbdCommand.READ);
            assertThat(rq.cookie()).isEqualTo(0x0102030405060708L);
            assertThat(rq.offset()).isEqualTo(0x1000);
            assertThat(rq.length()).isEqualTo(0x200);
        } finally {
            rq.release();
        }
        assertThat(c.ch.<Object>readInbound()).isNull();
    }

    /* --------------- ABORT and LIST --------------- */

    @Test
    void abort_acksThenCloses() {
        forEachFeed(concat(FLAGS_NO_ZEROES, ABORT, LIST), c -> {
            assertThat(c.out()).isEqualTo(ABORT_ACK);
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    @Test
    void abort_withData_ignoresData() {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_ABORT, utf8("bye"))), c -> {
            assertThat(c.out()).isEqualTo(ABORT_ACK);
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    @Test
    void list_serverPerExportThenAck() {
        forEachFeed(concat(FLAGS_NO_ZEROES, LIST, ABORT), c -> {
            assertThat(c.out()).isEqualTo(concat(LIST_REPLIES, ABORT_ACK));
        });
    }

    @Test
    void list_withData_errInvalid_connectionStays() {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_LIST, utf8("x")), LIST), c -> {
            byte[] out = c.out();
            List<OptionReply> replies = Frames.optionReplies(out);
            assertThat(replies.get(0).option()).isEqualTo(OPT_LIST);
            assertThat(replies.get(0).type()).isEqualTo(REP_ERR_INVALID);
            assertThat(replies.get(0).text()).isEqualTo("option length: 1 (expected: 0)");
            assertThat(Arrays.copyOfRange(out, out.length - LIST_REPLIES.length, out.length))
                    .isEqualTo(LIST_REPLIES);
            assertThat(replies).hasSize(4);
            assertThat(c.ch.isOpen()).isTrue();
        });
    }

    /* --------------- INFO and GO --------------- */

    @Test
    void go_repliesInfoThenAck_startsTransmission_passesPipelinedRequest() {
        forEachFeed(concat(FLAGS_FIXED, GO_DISK, READ_FRAME), c -> {
            assertThat(c.out()).isEqualTo(GO_DISK_REPLIES);
            assertThat(c.startedExports).containsExactly(DISK);
            assertThat(c.sessions).singleElement().satisfies(s -> {
                assertThat(s.go()).isTrue();
                assertThat(s.clientFlags()).isEqualTo(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE);
                assertThat(s.structuredReplies()).isFalse();
                assertThat(s.extendedHeaders()).isFalse();
            });
            assertThat(c.handshaking()).isFalse();
            assertThat(c.ch.pipeline().names()).doesNotContainSequence("NbdHandshakeHandler#0");
            assertPipelinedRead(c);
        });
    }

    @Test
    void info_sameRepliesAsGo_staysInNegotiation() {
        byte[] info = option(OPT_INFO, infoRequest("disk", NbdConstants.INFO_NAME));
        forEachFeed(concat(FLAGS_NO_ZEROES, info, GO_DISK), c -> {
            List<OptionReply> replies = Frames.optionReplies(c.out());
            assertThat(replies).hasSize(8);
            List<OptionReply> fromInfo = replies.subList(0, 4);
            List<OptionReply> fromGo = replies.subList(4, 8);
            assertThat(fromInfo).extracting(OptionReply::option).containsOnly(OPT_INFO);
            for (int i = 0; i < 4; i++) {
                // proto.md: an INFO followed by an identical GO MUST give the same information.
                assertThat(fromInfo.get(i).type()).isEqualTo(fromGo.get(i).type());
                assertThat(fromInfo.get(i).data()).isEqualTo(fromGo.get(i).data());
            }
            assertThat(c.sessions).hasSize(1);
        });
    }

    @Test
    void info_descriptionRequested_unknownIgnored_duplicatesOnce_flagsMasked() {
        byte[] info = option(
                OPT_INFO,
                infoRequest(
                        "scratch",
                        42,
                        NbdConstants.INFO_DESCRIPTION,
                        NbdConstants.INFO_BLOCK_SIZE,
                        NbdConstants.INFO_EXPORT,
                        NbdConstants.INFO_DESCRIPTION));
        forEachFeed(concat(FLAGS_NO_ZEROES, info), c -> {
            assertThat(c.out()).isEqualTo(hex("""
                    0003e889045565a9 | 00000006 | 00000003 | 0000000c | 0000 | 0000000000200000 | 0003
                    0003e889045565a9 | 00000006 | 00000003 | 00000002 | 0002
                    0003e889045565a9 | 00000006 | 00000003 | 0000000e | 0003 | 00000200 | 00001000 | 00100000
                    0003e889045565a9 | 00000006 | 00000001 | 00000000
                    """));
            assertThat(c.handshaking()).isTrue();
            assertThat(c.startedExports).isEmpty();
        });
    }

    @Test
    void go_defaultExport_nameIsCanonical() {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_GO, infoRequest("", NbdConstants.INFO_NAME))), c -> {
            List<OptionReply> replies = Frames.optionReplies(c.out());
            assertThat(replies).extracting(OptionReply::type).containsExactly(3, 3, 3, REP_ACK);
            assertThat(replies.get(1).data()).isEqualTo(hex("0001 | 6469736b"));
            assertThat(c.startedExports).containsExactly(DISK);
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {OPT_INFO, OPT_GO})
    void infoOrGo_unknownExport_errUnknown_connectionStays(int opt) {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(opt, infoRequest("nope")), GO_DISK), c -> {
            byte[] out = c.out();
            List<OptionReply> replies = Frames.optionReplies(out);
            assertThat(replies.get(0).option()).isEqualTo(opt);
            assertThat(replies.get(0).type()).isEqualTo(REP_ERR_UNKNOWN);
            assertThat(Arrays.copyOfRange(out, out.length - GO_DISK_REPLIES.length, out.length))
                    .isEqualTo(GO_DISK_REPLIES);
            assertThat(c.startedExports).containsExactly(DISK);
        });
    }

    static Stream<Arguments> malformedInfo() {
        return Stream.of(OPT_INFO, OPT_GO)
                .flatMap(opt -> Stream.of(
                        Arguments.of(opt, "too short for the name length and count", hex("000000")),
                        Arguments.of(opt, "too short for the count", hex("00000000 | 00")),
                        Arguments.of(opt, "name longer than the data", hex("00000010 | 6469736b | 0000")),
                        Arguments.of(opt, "name eats the count", hex("00000006 | 6469736b | 0000")),
                        Arguments.of(opt, "name length above u31", hex("ffffffff | 6469736b | 0000")),
                        Arguments.of(opt, "fewer requests than counted", hex("00000004 | 6469736b | 0002 | 0001")),
                        Arguments.of(opt, "more requests than counted", hex("00000004 | 6469736b | 0000 | 0001")),
                        Arguments.of(opt, "odd trailing byte", hex("00000004 | 6469736b | 0001 | 0001 | 00"))));
    }

    @ParameterizedTest(name = "{0}: {1}")
    @MethodSource("malformedInfo")
    void infoOrGo_inconsistentLengths_errInvalid_connectionStays(int opt, String what, byte[] data) {
        forEachFeed(concat(FLAGS_NO_ZEROES, option(opt, data), LIST), c -> {
            byte[] out = c.out();
            List<OptionReply> replies = Frames.optionReplies(out);
            assertThat(replies.get(0).option()).isEqualTo(opt);
            assertThat(replies.get(0).type()).isEqualTo(REP_ERR_INVALID);
            assertThat(Arrays.copyOfRange(out, out.length - LIST_REPLIES.length, out.length))
                    .isEqualTo(LIST_REPLIES);
            assertThat(c.startedExports).isEmpty();
            assertThat(c.ch.isOpen()).isTrue();
        });
    }

    /* --------------- unsupported and oversized options --------------- */

    @ParameterizedTest
    @ValueSource(ints = {4, 5, 12, 42, 0, -1})
    void unsupportedOption_errUnsup_nextOptionAnswered(int opt) {
        byte[] data = new byte[0];
        forEachFeed(concat(FLAGS_NO_ZEROES, option(opt, data), LIST), c -> {
            List<OptionReply> replies = Frames.optionReplies(c.out());
            assertThat(replies)
                    .extracting(OptionReply::option, OptionReply::type)
                    .containsExactly(
                            tuple(opt, REP_ERR_UNSUP),
                            tuple(OPT_LIST, REP_SERVER),
                            tuple(OPT_LIST, REP_SERVER),
                            tuple(OPT_LIST, REP_ACK));
            assertThat(replies.get(0).text()).isEqualTo("option: " + opt + " (not supported)");
            assertThat(c.ch.isOpen()).isTrue();
        });
    }

    @Test
    void option_aboveMaximum_drainedAndErrTooBig_nextOptionAnswered() {
        byte[] big = option(OPT_LIST, new byte[NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH + 1]);
        forEachFeed(concat(FLAGS_NO_ZEROES, big, LIST), false, NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH, c -> {
            byte[] out = c.out();
            List<OptionReply> replies = Frames.optionReplies(out);
            assertThat(replies.get(0).option()).isEqualTo(OPT_LIST);
            assertThat(replies.get(0).type()).isEqualTo(REP_ERR_TOO_BIG);
            assertThat(Arrays.copyOfRange(out, out.length - LIST_REPLIES.length, out.length))
                    .isEqualTo(LIST_REPLIES);
        });
        // A small maximum, so the drain can be checked at every split.
        forEachFeed(concat(FLAGS_NO_ZEROES, option(OPT_GO, infoRequest("disk")), GO_DISK, LIST), true, 9, c -> {
            List<OptionReply> replies = Frames.optionReplies(c.out());
            assertThat(replies)
                    .extracting(OptionReply::option, OptionReply::type)
                    .containsExactly(
                            tuple(OPT_GO, REP_ERR_TOO_BIG),
                            tuple(OPT_GO, REP_ERR_TOO_BIG),
                            tuple(OPT_LIST, REP_SERVER),
                            tuple(OPT_LIST, REP_SERVER),
                            tuple(OPT_LIST, REP_ACK));
            assertThat(replies.get(0).text()).isEqualTo("option length: 10 (expected: <= 9)");
            assertThat(c.ch.isOpen()).isTrue();
            assertThat(c.startedExports).isEmpty();
        });
    }

    @Test
    void option_absurdLength_closes() {
        byte[] header = hex("49484156454f5054 | 00000003 | 00100001");
        forEachFeed(concat(FLAGS_NO_ZEROES, header, new byte[64]), c -> {
            assertThat(c.out()).isEmpty();
            assertThat(c.ch.isOpen()).isFalse();
        });
    }

    /* --------------- leaks and removal --------------- */

    @Test
    void starter_throws_closes() {
        EmbeddedChannel ch = new EmbeddedChannel(new NbdHandshakeHandler(EXPORTS, (ctx, e, s) -> {
            throw new IllegalStateException("no queue");
        }));
        assertThat(Frames.readAllOutbound(ch)).isEqualTo(GREETING);
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(concat(FLAGS_NO_ZEROES, GO_DISK, LIST))))
                .hasRootCauseInstanceOf(IllegalStateException.class);
        assertThat(Frames.readAllOutbound(ch)).isEqualTo(GO_DISK_REPLIES);
        assertThat(ch.isOpen()).isFalse();
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void close_midOption_releasesEverything() {
        byte[] stream = concat(FLAGS_NO_ZEROES, GO_DISK);
        for (int cut = 1; cut < stream.length; cut++) {
            Connection c = new Connection(NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH);
            c.feed(new Feed("first " + cut, List.of(Arrays.copyOf(stream, cut))));
            assertThat(c.out()).isEmpty();
            c.ch.close();
            c.finish();
        }
    }

    @Test
    void removed_afterGo_leavesNothingBehind() {
        Connection c = new Connection(NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH);
        ByteBuf in = Unpooled.wrappedBuffer(concat(FLAGS_NO_ZEROES, GO_DISK, READ_FRAME));
        c.ch.writeInbound(in);
        assertThat(c.out()).isEqualTo(GO_DISK_REPLIES);
        assertThat(c.handshaking()).isFalse();
        assertThat(c.ch.pipeline().get(NbdRequestDecoder.class)).isNotNull();
        assertPipelinedRead(c);
        assertThat(in.refCnt()).isZero();
        c.finish();
    }
}
