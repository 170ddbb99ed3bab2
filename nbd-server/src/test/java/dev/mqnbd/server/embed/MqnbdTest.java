package dev.mqnbd.server.embed;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The embeddable server: start, URIs, the export seen from the test's side, fault injection, misuse. */
class MqnbdTest {
    private static final int MIB = 1 << 20;

    @TempDir
    Path tmp;

    @Test
    void start_defaults_servesOneGiBDefaultExportOnLoopbackFreePort() throws Exception {
        try (EmbeddedServer server = Mqnbd.newServer().eventLoops(1).start()) {
            assertThat(server.exportNames()).containsExactly("");
            assertThat(server.port()).isPositive();
            assertThat(server.uri()).hasToString("nbd://127.0.0.1:" + server.port() + "/");
            assertThat(server.export("").size()).isEqualTo(1L << 30);
            assertThat(greeting(server.port())).isEqualTo("NBDMAGIC");
        }
    }

    @Test
    void uri_namesEachExport_andRefusesUnknownOnes() throws Exception {
        try (EmbeddedServer server = Mqnbd.newServer()
                .eventLoops(1)
                .export("disk", "memory:1M")
                .export("scratch", "memory:2M")
                .start()) {
            assertThat(server.uri("scratch")).hasToString("nbd://127.0.0.1:" + server.port() + "/scratch");
            assertThat(server.exportNames()).containsExactly("disk", "scratch");
            assertThatThrownBy(() -> server.uri("nosuch"))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("no export is named \"nosuch\"");
        }
    }

    @Test
    void export_writeReadSha256_seeTheSameBytes() throws Exception {
        byte[] data = new byte[3 * 4096 + MIB];
        new Random(7).nextBytes(data);
        try (EmbeddedServer server =
                Mqnbd.newServer().eventLoops(1).export("disk", "memory:4M").start()) {
            EmbeddedExport disk = server.export("disk");
            disk.write(8192, data);
            assertThat(disk.read(8192, data.length)).isEqualTo(data);
            assertThat(disk.read(0, 4096)).containsOnly(0);

            byte[] whole = new byte[4 * MIB];
            System.arraycopy(data, 0, whole, 8192, data.length);
            assertThat(disk.sha256()).isEqualTo(sha256(whole));
            assertThat(disk.sha256(8192, data.length)).isEqualTo(sha256(data));
            // A memory export takes any alignment.
            assertThat(disk.blockSize()).isEqualTo(1);
            assertThat(disk.read(8192 + 100, 16)).isEqualTo(Arrays.copyOfRange(data, 100, 116));
            assertThatThrownBy(() -> disk.read(4 * MIB - 512, 1024))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("within");
        }
    }

    @Test
    void faultInjection_rulesAddedWhileServing_failRequests_untilRemoved() throws Exception {
        try (EmbeddedServer server = Mqnbd.newServer()
                .eventLoops(1)
                .export("disk", "memory:1M")
                .faultInjection("disk")
                .export("plain", "memory:1M")
                .start()) {
            EmbeddedExport disk = server.export("disk");
            assertThat(disk.stack()).startsWith("faults -> memory:1M");
            FaultRule eio =
                    disk.faults().add(FaultRule.on(ReqOp.READ).range(0, 4096).fail(Status.IO_ERROR));
            assertThatThrownBy(() -> disk.read(0, 4096))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("IO_ERROR");
            assertThat(disk.read(4096, 4096)).containsOnly(0);
            assertThat(eio.injected()).isEqualTo(1);

            disk.faults().remove(eio);
            assertThat(disk.read(0, 4096)).containsOnly(0);
            assertThatThrownBy(() -> server.export("plain").faults())
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("no fault-injection layer");
        }
    }

    @Test
    void filter_errorFilter_isTheExportsFaultLayer() throws Exception {
        try (EmbeddedServer server = Mqnbd.newServer()
                .eventLoops(1)
                .export("disk", "memory:1M")
                .filter("disk", "error,rate=1,ops=write,status=ENOSPC")
                .start()) {
            EmbeddedExport disk = server.export("disk");
            assertThatThrownBy(() -> disk.write(0, new byte[4096]))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("NO_SPACE");
            assertThat(disk.faults().rules()).hasSize(1);
        }
    }

    @Test
    void unixSocket_only_givesNbdUnixUri_andRemovesTheSocketOnClose() throws Exception {
        Path socket = tmp.resolve("nbd.sock");
        EmbeddedServer server = Mqnbd.newServer()
                .eventLoops(1)
                .export("disk", "memory:1M")
                .unixSocket(socket)
                .start();
        try (server) {
            assertThat(server.port()).isEqualTo(-1);
            assertThat(server.socket()).contains(socket);
            assertThat(server.uri("disk")).hasToString("nbd+unix:///disk?socket=" + socket);
            try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
                channel.connect(UnixDomainSocketAddress.of(socket));
                ByteBuffer magic = ByteBuffer.allocate(8);
                while (magic.hasRemaining() && channel.read(magic) >= 0) {}
                assertThat(new String(magic.array(), StandardCharsets.US_ASCII)).isEqualTo("NBDMAGIC");
            }
        }
        assertThat(Files.exists(socket)).isFalse();
    }

    @Test
    void readOnly_writesFail() throws Exception {
        try (EmbeddedServer server = Mqnbd.newServer()
                .eventLoops(1)
                .export("disk", "memory:1M")
                .readOnly(true)
                .start()) {
            assertThat(server.export("disk").readOnly()).isTrue();
            assertThatThrownBy(() -> server.export("disk").write(0, new byte[512]))
                    .isInstanceOf(IOException.class);
        }
    }

    @Test
    void close_twice_isHarmless_andTheExportIsClosed() throws Exception {
        EmbeddedServer server =
                Mqnbd.newServer().eventLoops(1).export("disk", "memory:1M").start();
        EmbeddedExport disk = server.export("disk");
        server.close();
        server.close();
        assertThatThrownBy(() -> disk.read(0, 512)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void setters_refuseMisuseAtOnce() {
        Mqnbd builder = Mqnbd.newServer().export("disk", "memory:1M");
        assertThatThrownBy(() -> builder.export("disk", "memory:2M"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("given twice");
        assertThatThrownBy(() -> builder.export("x", "floppy:1M"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown backend \"floppy\"");
        assertThatThrownBy(() -> builder.filter("nosuch", "cow"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("no export is named \"nosuch\"");
        assertThatThrownBy(() -> builder.filter("disk", "sparkle"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("unknown kind \"sparkle\"");
        assertThatThrownBy(() -> builder.faultInjection("nosuch")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> builder.port(65536)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> builder.queueDepth(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> builder.eventLoops(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> builder.listen("no-such-host.invalid")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void start_malformedSpec_failsNamingTheExport_andLeavesNothingListening() {
        Mqnbd builder = Mqnbd.newServer().eventLoops(1).export("disk", "memory:banana");
        assertThatThrownBy(builder::start)
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("export disk=memory:banana: ");
    }

    private static String greeting(int port) throws IOException {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(20_000);
            byte[] magic = new byte[8];
            new DataInputStream(s.getInputStream()).readFully(magic);
            return new String(magic, StandardCharsets.US_ASCII);
        }
    }

    private static String sha256(byte[] bytes) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }
}
