package dev.mqnbd.server.protocol;

import static dev.mqnbd.server.protocol.Frames.concat;
import static dev.mqnbd.server.protocol.Frames.hex;
import static dev.mqnbd.server.protocol.Frames.infoRequest;
import static dev.mqnbd.server.protocol.Frames.option;
import static dev.mqnbd.server.protocol.Frames.utf8;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_ABORT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXPORT_NAME;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_EXTENDED_HEADERS;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_GO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_LIST_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_SET_META_CONTEXT;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STARTTLS;
import static dev.mqnbd.server.protocol.NbdConstants.OPT_STRUCTURED_REPLY;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ACK;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_INVALID;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_TLS_REQD;
import static dev.mqnbd.server.protocol.NbdConstants.REP_ERR_UNSUP;
import static dev.mqnbd.server.protocol.NbdConstants.REP_INFO;
import static dev.mqnbd.server.protocol.NbdConstants.REP_SERVER;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.tuple;

import dev.mqnbd.server.protocol.Frames.OptionReply;
import dev.mqnbd.server.testing.TestPki;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.ChannelHandler;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import io.netty.util.ReferenceCountUtil;
import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.SSLException;
import javax.security.auth.x500.X500Principal;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code NBD_OPT_STARTTLS} and the TLS modes (proto.md "TLS support"): a real TLS handshake between the
 * server's handshake handler and a client {@link SslHandler}, each on an {@link EmbeddedChannel}, with the
 * bytes carried across by hand.
 */
class NbdStartTlsTest {
    private static final byte[] FLAGS = hex("00000003"); // C_FIXED_NEWSTYLE | C_NO_ZEROES
    private static final NbdExportInfo DISK = new NbdExportInfo(
            "disk",
            "secret description",
            0x100000,
            NbdConstants.FLAG_HAS_FLAGS | NbdConstants.FLAG_SEND_FLUSH,
            1,
            4096,
            1 << 20);
    private static final NbdExportInfo SCRATCH =
            new NbdExportInfo("scratch", "", 0x200000, NbdConstants.FLAG_HAS_FLAGS, 1, 4096, 1 << 20);
    private static final byte[] STARTTLS = option(OPT_STARTTLS, new byte[0]);
    private static final byte[] LIST = option(OPT_LIST, new byte[0]);

    private static TestPki.Ca ca;
    private static TestPki.Issued alice;
    private static SslContext serverContext;
    private static SslContext verifyingServerContext;
    private static SslContext askingServerContext;

    /** Every peer that the exports were asked about. */
    private final List<NbdPeer> peers = new CopyOnWriteArrayList<>();

    private final NbdExports exports = new NbdExports() {
        @Override
        public NbdExportInfo find(String name) {
            return switch (name) {
                case "disk" -> DISK;
                case "scratch" -> SCRATCH;
                default -> null;
            };
        }

        @Override
        public List<NbdExportInfo> list() {
            return List.of(DISK, SCRATCH);
        }

        @Override
        public boolean allows(NbdExportInfo export, NbdPeer peer) {
            peers.add(peer);
            return true;
        }
    };

    private final List<NbdSession> sessions = new ArrayList<>();
    private EmbeddedChannel server;
    private EmbeddedChannel client;

    @BeforeAll
    static void certificates() throws SSLException {
        ca = TestPki.newCa("CN=mqnbd test CA");
        TestPki.Issued serverCert = ca.server("CN=localhost");
        alice = ca.client("CN=alice,O=mqnbd test");
        serverContext = SslContextBuilder.forServer(serverCert.keys().getPrivate(), serverCert.certificate())
                .sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2")
                .build();
        verifyingServerContext = SslContextBuilder.forServer(serverCert.keys().getPrivate(), serverCert.certificate())
                .sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2")
                .trustManager(ca.certificate())
                .clientAuth(ClientAuth.REQUIRE)
                .build();
        askingServerContext = SslContextBuilder.forServer(serverCert.keys().getPrivate(), serverCert.certificate())
                .sslProvider(SslProvider.JDK)
                .protocols("TLSv1.3", "TLSv1.2")
                .trustManager(ca.certificate())
                .clientAuth(ClientAuth.OPTIONAL)
                .build();
    }

    @AfterEach
    void tearDown() {
        if (client != null) {
            client.finishAndReleaseAll();
        }
        if (server != null) {
            server.finishAndReleaseAll();
        }
    }

    private void startServer(NbdTlsMode mode, SslContext context) {
        NbdTransmissionStarter starter = (ctx, export, session) -> {
            sessions.add(session);
            ctx.pipeline().addAfter(ctx.name(), "decoder", new NbdRequestDecoder(1 << 20));
        };
        server = new EmbeddedChannel(new NbdHandshakeHandler(
                exports, starter, NbdHandshakeHandler.DEFAULT_MAXIMUM_OPTION_LENGTH, NbdTls.of(mode, context)));
        ByteBuf greeting = server.readOutbound();
        greeting.release();
    }

    /** Sends plaintext bytes and returns the option replies that come back in the clear. */
    private List<OptionReply> plain(byte[]... bytes) {
        server.writeInbound(Unpooled.wrappedBuffer(concat(bytes)));
        return Frames.optionReplies(Frames.readAllOutbound(server));
    }

    /** Sends flags and STARTTLS in the clear, expects the ACK, then runs the TLS handshake. */
    private void startTls(SslContext clientContext) {
        assertThat(plain(FLAGS, STARTTLS))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(OPT_STARTTLS, REP_ACK));
        client = newClient(clientContext);
        shuttle();
    }

    /** What went wrong on the client's side of the TLS handshake. */
    private final List<Throwable> clientErrors = new CopyOnWriteArrayList<>();

    /** A client channel: TLS that checks the server's name, as real clients do, and a recorder of errors. */
    private EmbeddedChannel newClient(SslContext context) {
        return new EmbeddedChannel(
                context.newHandler(UnpooledByteBufAllocator.DEFAULT, "localhost", 10809),
                new io.netty.channel.ChannelInboundHandlerAdapter() {
                    @Override
                    public void exceptionCaught(io.netty.channel.ChannelHandlerContext ctx, Throwable cause) {
                        clientErrors.add(cause);
                    }
                });
    }

    /** Carries bytes both ways until neither side has anything to send. */
    private void shuttle() {
        for (int round = 0; round < 50; round++) {
            boolean moved = move(client, server) | move(server, client);
            if (!moved) {
                return;
            }
        }
        throw new AssertionError("the TLS conversation did not settle");
    }

    private static boolean move(EmbeddedChannel from, EmbeddedChannel to) {
        boolean moved = false;
        for (Object msg; (msg = from.readOutbound()) != null; ) {
            moved = true;
            if (to.isOpen()) {
                to.writeInbound(msg);
            } else {
                ReferenceCountUtil.release(msg);
            }
        }
        return moved;
    }

    /** Sends option bytes inside TLS; returns the replies, decrypted. */
    private List<OptionReply> secure(byte[]... bytes) {
        client.writeOutbound(Unpooled.wrappedBuffer(concat(bytes)));
        shuttle();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object msg; (msg = client.readInbound()) != null; ) {
            ByteBuf buf = (ByteBuf) msg;
            out.writeBytes(ByteBufUtil.getBytes(buf));
            buf.release();
        }
        return Frames.optionReplies(out.toByteArray());
    }

    private List<String> handlerNames() {
        return server.pipeline().names().stream()
                .filter(n -> !n.startsWith("DefaultChannelPipeline"))
                .toList();
    }

    /* --------------- STARTTLS when TLS is off, or misused --------------- */

    @Test
    void starttls_tlsOff_errUnsup_connectionStays() {
        server = new EmbeddedChannel(new NbdHandshakeHandler(exports, (ctx, e, s) -> {}));
        ((ByteBuf) server.readOutbound()).release();

        assertThat(plain(FLAGS, STARTTLS, LIST))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(
                        tuple(OPT_STARTTLS, REP_ERR_UNSUP),
                        tuple(OPT_LIST, REP_SERVER),
                        tuple(OPT_LIST, REP_SERVER),
                        tuple(OPT_LIST, REP_ACK));
        assertThat(server.pipeline().get(SslHandler.class)).isNull();
    }

    @ParameterizedTest
    @EnumSource(
            value = NbdTlsMode.class,
            names = {"ON", "REQUIRE"})
    void starttls_withData_errInvalid_staysInTheClear(NbdTlsMode mode) {
        startServer(mode, serverContext);

        List<OptionReply> replies = plain(FLAGS, option(OPT_STARTTLS, utf8("x")), STARTTLS);

        assertThat(replies)
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(OPT_STARTTLS, REP_ERR_INVALID), tuple(OPT_STARTTLS, REP_ACK));
        assertThat(server.pipeline().get(SslHandler.class)).isNotNull();
    }

    @Test
    void starttls_twice_errInvalidInsideTls() {
        startServer(NbdTlsMode.ON, serverContext);
        startTls(ca.clientContext(null));

        assertThat(secure(STARTTLS, LIST))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(
                        tuple(OPT_STARTTLS, REP_ERR_INVALID),
                        tuple(OPT_LIST, REP_SERVER),
                        tuple(OPT_LIST, REP_SERVER),
                        tuple(OPT_LIST, REP_ACK));
    }

    /* --------------- TLS required: nothing before STARTTLS --------------- */

    @ParameterizedTest
    @ValueSource(
            ints = {
                OPT_LIST,
                OPT_INFO,
                OPT_GO,
                OPT_STRUCTURED_REPLY,
                OPT_LIST_META_CONTEXT,
                OPT_SET_META_CONTEXT,
                OPT_EXTENDED_HEADERS,
                4,
                12,
                42,
                -1
            })
    void tlsRequired_everyOptionButStarttlsAndAbort_errTlsReqd_revealsNothing(int opt) {
        startServer(NbdTlsMode.REQUIRE, serverContext);
        byte[] data = opt == OPT_INFO || opt == OPT_GO
                ? infoRequest("disk", 0, 1, 2, 3)
                : opt == OPT_LIST || opt == OPT_STRUCTURED_REPLY || opt == OPT_EXTENDED_HEADERS
                        ? new byte[0]
                        : utf8("disk");

        server.writeInbound(Unpooled.wrappedBuffer(concat(FLAGS, option(opt, data), LIST)));
        byte[] out = Frames.readAllOutbound(server);

        assertThat(Frames.optionReplies(out))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(opt, REP_ERR_TLS_REQD), tuple(OPT_LIST, REP_ERR_TLS_REQD));
        String text = new String(out, java.nio.charset.StandardCharsets.ISO_8859_1);
        assertThat(text).doesNotContain("disk", "scratch", "secret");
        assertThat(peers).as("exports consulted before TLS").isEmpty();
        assertThat(sessions).isEmpty();
        assertThat(server.isOpen()).isTrue();
    }

    @Test
    void tlsRequired_oversizedOption_errTlsReqdAfterDraining() {
        NbdTransmissionStarter starter = (ctx, e, s) -> {};
        server = new EmbeddedChannel(
                new NbdHandshakeHandler(exports, starter, 16, NbdTls.of(NbdTlsMode.REQUIRE, serverContext)));
        ((ByteBuf) server.readOutbound()).release();

        assertThat(plain(FLAGS, option(OPT_INFO, infoRequest("disk-with-a-long-name", 0, 1, 2, 3)), LIST))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(OPT_INFO, REP_ERR_TLS_REQD), tuple(OPT_LIST, REP_ERR_TLS_REQD));
    }

    @Test
    void tlsRequired_exportName_closesWithoutReply() {
        startServer(NbdTlsMode.REQUIRE, serverContext);

        server.writeInbound(Unpooled.wrappedBuffer(concat(FLAGS, option(OPT_EXPORT_NAME, utf8("disk")))));

        assertThat(Frames.readAllOutbound(server)).isEmpty();
        assertThat(server.isOpen()).isFalse();
        assertThat(sessions).isEmpty();
    }

    @Test
    void tlsRequired_abort_acked() {
        startServer(NbdTlsMode.REQUIRE, serverContext);

        assertThat(plain(FLAGS, option(OPT_ABORT, new byte[0])))
                .extracting(OptionReply::option, OptionReply::type)
                .containsExactly(tuple(OPT_ABORT, REP_ACK));
        assertThat(server.isOpen()).isFalse();
    }

    @Test
    void tlsRequired_afterStarttls_listInfoGoWork_transmissionBehindTls() {
        startServer(NbdTlsMode.REQUIRE, serverContext);
        startTls(ca.clientContext(alice));
        assertThat(handlerNames()).first().asString().endsWith("-tls");

        List<OptionReply> listed = secure(LIST);
        List<OptionReply> go = secure(option(OPT_GO, infoRequest("disk", NbdConstants.INFO_NAME)));

        assertThat(listed).extracting(OptionReply::type).containsExactly(REP_SERVER, REP_SERVER, REP_ACK);
        assertThat(go).extracting(OptionReply::type).containsExactly(REP_INFO, REP_INFO, REP_INFO, REP_ACK);
        assertThat(sessions).singleElement();
        assertThat(server.pipeline().first()).isInstanceOf(SslHandler.class);
        assertThat(server.pipeline().get(NbdHandshakeHandler.class)).isNull();
        assertThat(server.pipeline().get(NbdRequestDecoder.class)).isNotNull();
        // This context asks for no client certificate: alice's is never sent.
        assertThat(peers).isNotEmpty().allSatisfy(p -> {
            assertThat(p.tls()).isTrue();
            assertThat(p.subject()).isNull();
        });
    }

    @Test
    void tlsRequired_clientWithoutCertificate_peerHasNoSubject() {
        startServer(NbdTlsMode.REQUIRE, serverContext);
        startTls(ca.clientContext(null));

        assertThat(secure(option(OPT_INFO, infoRequest("disk"))))
                .extracting(OptionReply::type)
                .containsExactly(REP_INFO, REP_INFO, REP_ACK);
        assertThat(peers).singleElement().satisfies(p -> {
            assertThat(p.tls()).isTrue();
            assertThat(p.subject()).isNull();
        });
    }

    /* --------------- state after STARTTLS --------------- */

    @Test
    void tlsOn_plaintextNegotiationWorks_andIsForgottenAfterStarttls() {
        startServer(NbdTlsMode.ON, serverContext);
        assertThat(plain(FLAGS, option(OPT_STRUCTURED_REPLY, new byte[0]), LIST))
                .extracting(OptionReply::type)
                .containsExactly(REP_ACK, REP_SERVER, REP_SERVER, REP_ACK);
        assertThat(peers).allSatisfy(p -> assertThat(p.tls()).isFalse());

        server.writeInbound(Unpooled.wrappedBuffer(STARTTLS));
        assertThat(Frames.optionReplies(Frames.readAllOutbound(server)))
                .extracting(OptionReply::type)
                .containsExactly(REP_ACK);
        client = newClient(ca.clientContext(null));
        shuttle();
        secure(option(OPT_GO, infoRequest("disk")));

        // proto.md "NBD_OPT_STARTTLS": structured replies negotiated in the clear do not survive TLS.
        assertThat(sessions).singleElement().satisfies(s -> {
            assertThat(s.structuredReplies()).isFalse();
            assertThat(s.noZeroes()).isTrue();
        });
    }

    @Test
    void starttls_clientHelloPipelinedBehindIt_reachesTheSslHandler() {
        for (int split : new int[] {0, 1, 8, 20, 21, 40, -1}) {
            peers.clear();
            sessions.clear();
            startServer(NbdTlsMode.REQUIRE, serverContext);
            client = new EmbeddedChannel();
            // The client starts TLS without waiting for the ACK: its ClientHello follows STARTTLS at once.
            client.writeOutbound(Unpooled.wrappedBuffer(concat(FLAGS, STARTTLS)));
            client.pipeline().addFirst(ca.clientContext(alice).newHandler(client.alloc(), "localhost", 10809));
            ByteArrayOutputStream sent = new ByteArrayOutputStream();
            for (Object msg; (msg = client.readOutbound()) != null; ) {
                sent.writeBytes(ByteBufUtil.getBytes((ByteBuf) msg));
                ((ByteBuf) msg).release();
            }
            byte[] stream = sent.toByteArray();
            int cut = split < 0 ? stream.length - 1 : FLAGS.length + STARTTLS.length + split;
            server.writeInbound(Unpooled.wrappedBuffer(Arrays.copyOfRange(stream, 0, cut)));
            server.writeInbound(Unpooled.wrappedBuffer(Arrays.copyOfRange(stream, cut, stream.length)));
            // The ACK comes first, in the clear; the rest is TLS.
            ByteBuf ack = server.readOutbound();
            assertThat(Frames.optionReplies(ByteBufUtil.getBytes(ack)))
                    .extracting(OptionReply::type)
                    .containsExactly(REP_ACK);
            ack.release();
            shuttle();

            assertThat(secure(LIST))
                    .as("split at %d", split)
                    .extracting(OptionReply::type)
                    .containsExactly(REP_SERVER, REP_SERVER, REP_ACK);
            tearDown();
        }
        server = null;
        client = null;
    }

    @Test
    void verifyPeer_clientWithoutCertificate_handshakeFailsAndCloses() {
        startServer(NbdTlsMode.REQUIRE, verifyingServerContext);
        startTls(ca.clientContext(null));
        // TLS 1.3: the client may think it is done before the server has judged its (missing) certificate.
        if (client.isOpen()) {
            client.writeOutbound(Unpooled.wrappedBuffer(LIST));
            shuttle();
        }

        assertThat(server.isOpen()).isFalse();
        assertThat(peers).isEmpty();
        assertThat(clientErrors).isNotEmpty();
    }

    @Test
    void verifyPeer_certificateFromAnotherCa_handshakeFailsAndCloses() {
        TestPki.Ca rogue = TestPki.newCa("CN=rogue CA");
        TestPki.Issued mallory = rogue.client("CN=alice,O=mqnbd test");
        startServer(NbdTlsMode.REQUIRE, verifyingServerContext);
        SslContext clientContext;
        try {
            clientContext = SslContextBuilder.forClient()
                    .sslProvider(SslProvider.JDK)
                    .trustManager(ca.certificate())
                    .keyManager(mallory.keys().getPrivate(), mallory.certificate())
                    .build();
        } catch (SSLException e) {
            throw new AssertionError(e);
        }
        startTls(clientContext);
        if (client.isOpen()) {
            client.writeOutbound(Unpooled.wrappedBuffer(LIST));
            shuttle();
        }

        assertThat(server.isOpen()).isFalse();
        assertThat(peers).isEmpty();
        assertThat(clientErrors).isNotEmpty();
    }

    @Test
    void verifyPeer_validCertificate_subjectSeen() {
        startServer(NbdTlsMode.REQUIRE, verifyingServerContext);
        startTls(ca.clientContext(alice));

        assertThat(secure(LIST)).extracting(OptionReply::type).containsExactly(REP_SERVER, REP_SERVER, REP_ACK);
        assertThat(peers).first().extracting(NbdPeer::subject).isEqualTo(new X500Principal("CN=alice,O=mqnbd test"));
    }

    @Test
    void optionalClientAuth_certificateFromAnotherCa_isIgnoredNotTrusted() throws SSLException {
        TestPki.Issued mallory = TestPki.newCa("CN=rogue CA").client("CN=alice,O=mqnbd test");
        startServer(NbdTlsMode.REQUIRE, askingServerContext);
        startTls(SslContextBuilder.forClient()
                .sslProvider(SslProvider.JDK)
                .trustManager(ca.certificate())
                .keyManager(mallory.keys().getPrivate(), mallory.certificate())
                .build());

        secure(LIST);

        // The JDK drops a certificate it cannot verify when it only asked for one: no subject, so no
        // access by subject, even though the forged subject is alice's.
        assertThat(peers).isNotEmpty().allSatisfy(p -> assertThat(p.subject()).isNull());
    }

    @Test
    void optionalClientAuth_validCertificate_subjectSeen() {
        startServer(NbdTlsMode.ON, askingServerContext);
        startTls(ca.clientContext(alice));
        secure(LIST);
        assertThat(peers)
                .isNotEmpty()
                .allSatisfy(p -> assertThat(p.subject()).isEqualTo(new X500Principal("CN=alice,O=mqnbd test")));
    }

    @Test
    void handlersRemoved_afterTlsAndGo_pipelineIsTlsThenTransmission() {
        startServer(NbdTlsMode.ON, serverContext);
        startTls(ca.clientContext(null));
        secure(option(OPT_GO, infoRequest("scratch")));

        List<Class<?>> types = new ArrayList<>();
        for (var entry : server.pipeline()) {
            types.add(entry.getValue().getClass());
        }
        assertThat(types).containsExactly(SslHandler.class, NbdRequestDecoder.class);
        assertThat(sessions).singleElement();
        ChannelHandler first = server.pipeline().first();
        assertThat(first).isInstanceOf(SslHandler.class);
    }
}
