package dev.mqnbd.server;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.server.embed.EmbeddedServer;
import dev.mqnbd.server.embed.Mqnbd;
import io.netty.channel.DefaultEventLoopGroup;
import io.netty.channel.EventLoopGroup;
import java.io.DataInputStream;
import java.net.Socket;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Choosing the transport: names, the default, and a server on each transport that loads here. */
class TransportTest {
    @Test
    void parse_namesAndAliases_anyCase() {
        assertThat(Transport.parse("epoll")).isEqualTo(Transport.EPOLL);
        assertThat(Transport.parse("IO_URING")).isEqualTo(Transport.IO_URING);
        assertThat(Transport.parse("io-uring")).isEqualTo(Transport.IO_URING);
        assertThat(Transport.parse("Nio")).isEqualTo(Transport.NIO);
        assertThat(Transport.parse("auto")).isEqualTo(Transport.best());
    }

    @Test
    void parse_unknown_namesTheChoices() {
        assertThatThrownBy(() -> Transport.parse("kqueue"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("unknown transport \"kqueue\" (expected: auto, epoll, io_uring or nio)");
    }

    @Test
    void best_isEpollOnLinux() throws Exception {
        // The project's tests run on Linux with the native epoll library on the class path.
        assertThat(Transport.best()).isEqualTo(Transport.EPOLL);
        Transport.NIO.checkAvailable();
    }

    @Test
    void of_tellsEachGroupsTransport() throws Exception {
        for (Transport transport : Transport.values()) {
            EventLoopGroup group = NbdServer.newEventLoopGroup(1, transport);
            try {
                assertThat(Transport.of(group)).as("group of %s", transport).isEqualTo(transport);
            } finally {
                group.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
            }
        }
        EventLoopGroup other = new DefaultEventLoopGroup(1);
        try {
            assertThat(Transport.of(other)).isEqualTo(Transport.best());
        } finally {
            other.shutdownGracefully(0, 0, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    @Test
    void eachTransport_servesTheGreeting() throws Exception {
        for (Transport transport : Transport.values()) {
            try (EmbeddedServer server = Mqnbd.newServer()
                            .eventLoops(1)
                            .transport(transport)
                            .export("disk", "memory:1M")
                            .start();
                    Socket socket = new Socket("127.0.0.1", server.port())) {
                byte[] magic = new byte[8];
                new DataInputStream(socket.getInputStream()).readFully(magic);
                assertThat(new String(magic, java.nio.charset.StandardCharsets.US_ASCII))
                        .as("greeting over %s", transport)
                        .isEqualTo("NBDMAGIC");
            }
        }
    }
}
