package dev.mqnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.server.protocol.NbdTls;
import dev.mqnbd.server.protocol.NbdTlsMode;
import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.server.security.Cidr;
import dev.mqnbd.server.security.TlsCredentials;
import dev.mqnbd.server.testing.TestPki;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.ssl.ClientAuth;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The server's limits and TLS over real loopback sockets, with a minimal client written here. */
class NbdServerLimitsTest {
    private static final int EXPORT_SIZE = 1 << 20;

    @TempDir
    Path tmp;

    private NbdServer server;
    private final List<Socket> sockets = new ArrayList<>();

    @AfterEach
    void tearDown() throws IOException {
        for (Socket s : sockets) {
            s.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private NbdServer start(NbdServerConfig config, AccessList diskAccess) throws Exception {
        EventLoopGroup group = NbdServer.newEventLoopGroup(1);
        ExportRegistry registry = new ExportRegistry();
        registry.open(
                "disk",
                "memory:1M",
                "a disk",
                new DeviceOptions(false),
                new QueueSetup("disk", 1, 4, NbdServer.hctxExecutors(group), Duration.ZERO),
                1 << 20);
        registry.restrict("disk", diskAccess);
        server = NbdServer.start(group, registry, List.of(new InetSocketAddress("127.0.0.1", 0)), config);
        return server;
    }

    private Socket connect() throws IOException {
        Socket s = new Socket("127.0.0.1", server.port());
        s.setSoTimeout(20_000);
        sockets.add(s);
        return s;
    }

    /** Reads the 18-byte greeting; returns false if the server closed the connection instead. */
    private static boolean greeted(Socket s) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        try {
            assertThat(in.readLong()).isEqualTo(NbdConstants.NBDMAGIC);
            assertThat(in.readLong()).isEqualTo(NbdConstants.IHAVEOPT);
            in.readShort();
            return true;
        } catch (EOFException e) {
            return false;
        }
    }

    private static void option(DataOutputStream out, int option, byte[] data) throws IOException {
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    private static byte[] goData(String name) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(6 + n.length);
        b.putInt(n.length).put(n).putShort((short) 0);
        return b.array();
    }

    /** Reads option replies until one that is final (ACK or an error); returns its type. */
    private static int finalReply(DataInputStream in) throws IOException {
        for (; ; ) {
            assertThat(in.readLong()).isEqualTo(NbdConstants.OPTION_REPLY_MAGIC);
            in.readInt();
            int type = in.readInt();
            in.skipNBytes(in.readInt());
            if (type == NbdConstants.REP_ACK || (type & NbdConstants.REP_FLAG_ERROR) != 0) {
                return type;
            }
        }
    }

    /** Sends GO for {@code export} on a greeted connection (after the client flags); returns the final reply type. */
    private static int go(DataInputStream in, DataOutputStream out, String export) throws IOException {
        option(out, NbdConstants.OPT_GO, goData(export));
        return finalReply(in);
    }

    /** One simple READ of 512 bytes at 0; asserts the reply. */
    private static void read(DataInputStream in, DataOutputStream out) throws IOException {
        out.writeInt(NbdConstants.REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(0);
        out.writeLong(42);
        out.writeLong(0);
        out.writeInt(512);
        out.flush();
        assertThat(in.readInt()).isEqualTo(NbdConstants.SIMPLE_REPLY_MAGIC);
        assertThat(in.readInt()).isZero();
        assertThat(in.readLong()).isEqualTo(42);
        in.skipNBytes(512);
    }

    private static boolean closedByServer(Socket s) throws IOException {
        try {
            return s.getInputStream().read() < 0;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) {
            return true;
        }
    }

    @Test
    void maxConnections_evictsTheOldestHandshake_refusesOnlyWhenAllAreInTransmission() throws Exception {
        start(NbdServerConfig.builder().maxConnections(2).build(), AccessList.ANYONE);
        Socket first = connect();
        assertThat(greeted(first)).isTrue();
        DataInputStream in = new DataInputStream(first.getInputStream());
        DataOutputStream out = new DataOutputStream(first.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        assertThat(go(in, out, "disk")).isEqualTo(NbdConstants.REP_ACK);
        Socket stalled = connect();
        assertThat(greeted(stalled)).isTrue();

        // Over the cap: the stalled handshake makes room; the connection in transmission stays.
        Socket third = connect();
        assertThat(greeted(third)).as("third connection greeted").isTrue();
        assertThat(stalled.getInputStream().read())
                .as("evicted handshake closed")
                .isEqualTo(-1);
        read(in, out);

        DataInputStream in3 = new DataInputStream(third.getInputStream());
        DataOutputStream out3 = new DataOutputStream(third.getOutputStream());
        out3.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        assertThat(go(in3, out3, "disk")).isEqualTo(NbdConstants.REP_ACK);
        // Both in transmission: now a newcomer is refused before the greeting.
        assertThat(greeted(connect())).as("fourth connection greeted").isFalse();
        read(in, out);
        read(in3, out3);
    }

    @Test
    void maxConnectionsPerClient_evictsTheSameAddressOnly_refusesOverTransmission() throws Exception {
        start(NbdServerConfig.builder().maxConnectionsPerClient(1).build(), AccessList.ANYONE);

        Socket stalled = connect();
        assertThat(greeted(stalled)).isTrue();
        Socket working = connect();
        assertThat(greeted(working)).isTrue();
        assertThat(stalled.getInputStream().read()).isEqualTo(-1);
        DataInputStream in = new DataInputStream(working.getInputStream());
        DataOutputStream out = new DataOutputStream(working.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        assertThat(go(in, out, "disk")).isEqualTo(NbdConstants.REP_ACK);
        assertThat(greeted(connect())).isFalse();
        read(in, out);
    }

    @Test
    void handshakeTimeout_dropsSilentClient_keepsIdleTransmission() throws Exception {
        start(NbdServerConfig.builder().handshakeTimeout(Duration.ofMillis(300)).build(), AccessList.ANYONE);
        Socket silent = connect();
        Socket working = connect();
        assertThat(greeted(silent)).isTrue();
        assertThat(greeted(working)).isTrue();
        DataInputStream in = new DataInputStream(working.getInputStream());
        DataOutputStream out = new DataOutputStream(working.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        assertThat(go(in, out, "disk")).isEqualTo(NbdConstants.REP_ACK);

        long started = System.nanoTime();
        assertThat(closedByServer(silent)).isTrue();
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(15));
        Thread.sleep(600);
        read(in, out);
    }

    @Test
    void accessList_refusedAddress_seesUnknownExport() throws Exception {
        start(NbdServerConfig.builder().build(), AccessList.of(List.of(Cidr.parse("10.0.0.0/8")), List.of()));
        Socket s = connect();
        assertThat(greeted(s)).isTrue();
        DataInputStream in = new DataInputStream(s.getInputStream());
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE);

        assertThat(go(in, out, "disk")).isEqualTo(NbdConstants.REP_ERR_UNKNOWN);
        option(out, NbdConstants.OPT_LIST, new byte[0]);
        assertThat(finalReply(in)).as("LIST lists nothing").isEqualTo(NbdConstants.REP_ACK);
    }

    /** Starts TLS on {@code plain} (after STARTTLS's ACK), trusting {@code ca}, presenting {@code client} if not null. */
    private SSLSocket upgrade(Socket plain, TestPki.Ca ca, TestPki.Issued client, List<Object> issuersSeen)
            throws Exception {
        java.security.KeyStore trust = java.security.KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("ca", ca.certificate());
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);
        javax.net.ssl.KeyManager[] keyManagers = null;
        if (client != null) {
            java.security.KeyStore keys = java.security.KeyStore.getInstance("PKCS12");
            keys.load(null, null);
            keys.setKeyEntry(
                    "client", client.keys().getPrivate(), new char[0], new java.security.cert.X509Certificate[] {
                        client.certificate()
                    });
            javax.net.ssl.KeyManagerFactory kmf = javax.net.ssl.KeyManagerFactory.getInstance("SunX509");
            kmf.init(keys, new char[0]);
            javax.net.ssl.X509KeyManager real = (javax.net.ssl.X509KeyManager) kmf.getKeyManagers()[0];
            // Records which CAs the server named in its CertificateRequest.
            keyManagers = new javax.net.ssl.KeyManager[] {
                new javax.net.ssl.X509ExtendedKeyManager() {
                    @Override
                    public String chooseClientAlias(String[] keyType, java.security.Principal[] issuers, Socket s) {
                        issuersSeen.add(issuers == null ? List.of() : List.of(issuers));
                        return "client";
                    }

                    @Override
                    public String chooseServerAlias(String keyType, java.security.Principal[] issuers, Socket s) {
                        return null;
                    }

                    @Override
                    public String[] getClientAliases(String keyType, java.security.Principal[] issuers) {
                        return new String[] {"client"};
                    }

                    @Override
                    public String[] getServerAliases(String keyType, java.security.Principal[] issuers) {
                        return null;
                    }

                    @Override
                    public java.security.cert.X509Certificate[] getCertificateChain(String alias) {
                        return real.getCertificateChain(alias);
                    }

                    @Override
                    public java.security.PrivateKey getPrivateKey(String alias) {
                        return real.getPrivateKey(alias);
                    }
                }
            };
        }
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keyManagers, tmf.getTrustManagers(), null);
        SSLSocket secure = (SSLSocket) context.getSocketFactory().createSocket(plain, "localhost", server.port(), true);
        sockets.add(secure);
        return secure;
    }

    @Test
    void verifyPeer_rsaClientCertificate_noCaNamedInTheRequest_subjectReachesTheAcl() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), TestPki.KeyFormat.PKCS8);
        NbdTls tls =
                NbdTls.of(NbdTlsMode.REQUIRE, TlsCredentials.fromDirectory(dir).serverContext(ClientAuth.REQUIRE));
        start(
                NbdServerConfig.builder().tls(tls).build(),
                AccessList.of(List.of(), List.of(dev.mqnbd.server.security.SubjectPattern.parse("carol"))));
        Socket plain = connect();
        assertThat(greeted(plain)).isTrue();
        DataInputStream in = new DataInputStream(plain.getInputStream());
        DataOutputStream out = new DataOutputStream(plain.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        option(out, NbdConstants.OPT_STARTTLS, new byte[0]);
        assertThat(finalReply(in)).isEqualTo(NbdConstants.REP_ACK);
        List<Object> issuers = new ArrayList<>();

        SSLSocket secure = upgrade(plain, ca, ca.client("CN=carol,O=test", TestPki.KeyType.RSA_2048), issuers);
        secure.startHandshake();
        DataInputStream sin = new DataInputStream(secure.getInputStream());
        DataOutputStream sout = new DataOutputStream(secure.getOutputStream());

        assertThat(go(sin, sout, "disk")).isEqualTo(NbdConstants.REP_ACK);
        read(sin, sout);
        // GnuTLS 3.7 clients send no RSA certificate to a TLS 1.3 server that names its CAs (ClientCaTrust).
        assertThat(issuers)
                .isNotEmpty()
                .allSatisfy(named -> assertThat((List<?>) named).isEmpty());
    }

    @Test
    void tlsRequired_overTheNetwork_withJdkClient() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=test CA");
        Path dir = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), TestPki.KeyFormat.PKCS8);
        NbdTls tls =
                NbdTls.of(NbdTlsMode.REQUIRE, TlsCredentials.fromDirectory(dir).serverContext(ClientAuth.NONE));
        start(NbdServerConfig.builder().tls(tls).build(), AccessList.ANYONE);
        Socket plain = connect();
        assertThat(greeted(plain)).isTrue();
        DataInputStream in = new DataInputStream(plain.getInputStream());
        DataOutputStream out = new DataOutputStream(plain.getOutputStream());
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        assertThat(go(in, out, "disk")).isEqualTo(NbdConstants.REP_ERR_TLS_REQD);
        option(out, NbdConstants.OPT_STARTTLS, new byte[0]);
        assertThat(finalReply(in)).isEqualTo(NbdConstants.REP_ACK);

        SSLSocket secure = upgrade(plain, ca, null, null);
        secure.startHandshake();
        DataInputStream sin = new DataInputStream(secure.getInputStream());
        DataOutputStream sout = new DataOutputStream(secure.getOutputStream());

        assertThat(go(sin, sout, "disk")).isEqualTo(NbdConstants.REP_ACK);
        read(sin, sout);
        assertThat(secure.getSession().getProtocol()).isIn("TLSv1.3", "TLSv1.2");
    }
}
