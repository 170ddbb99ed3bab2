package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.testing.TestPki;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server's limits with real clients and raw sockets: the handshake deadline, the connection caps, the
 * maximum payload, and requests beyond the queue depth.
 */
class LimitsIT {
    private static final long NBDMAGIC = 0x4e42444d41474943L;
    private static final long IHAVEOPT = 0x49484156454F5054L;

    @TempDir
    Path tmp;

    private final List<Socket> sockets = new ArrayList<>();
    private final List<Process> processes = new ArrayList<>();

    @AfterEach
    void tearDown() throws Exception {
        for (Socket s : sockets) {
            s.close();
        }
        for (Process p : processes) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    /** A client that stays connected: nbdsh connects, writes, says so, waits to be told to go on, reads back. */
    private final class Holder {
        final Process process;
        final Path ready;
        final Path go;
        final CompletableFuture<String> out;
        final CompletableFuture<String> err;

        Holder(String uri, String name) throws IOException {
            ready = tmp.resolve(name + ".ready");
            go = tmp.resolve(name + ".go");
            String script = String.join(
                    "\n",
                    "import os, time",
                    "h.connect_uri('" + uri + "')",
                    "h.pwrite(b'\\x5a' * 4096, 8192)",
                    "open('" + ready + "', 'w').close()",
                    "deadline = time.time() + 120",
                    "while not os.path.exists('" + go + "') and time.time() < deadline:",
                    "    time.sleep(0.05)",
                    "assert h.pread(4096, 8192) == b'\\x5a' * 4096",
                    "h.shutdown()",
                    "print('ok')");
            ProcessBuilder builder = new ProcessBuilder("nbdsh", "-c", script);
            builder.environment().merge("PATH", "/usr/bin:/bin", (old, debian) -> debian + ":" + old);
            process = builder.start();
            processes.add(process);
            process.getOutputStream().close();
            // Own threads: Tool.drain runs on the common pool, which has one thread on two cores, and this client
            // outlives the tools run meanwhile.
            out = drain(process.getInputStream());
            err = drain(process.getErrorStream());
        }

        private static CompletableFuture<String> drain(InputStream in) {
            CompletableFuture<String> text = new CompletableFuture<>();
            Thread.ofPlatform().daemon().name("nbdsh-output").start(() -> {
                try (in) {
                    text.complete(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8));
                } catch (IOException e) {
                    text.complete("(unreadable: " + e + ")");
                }
            });
            return text;
        }

        /** Waits until the client has connected and written. */
        Holder awaitConnected() throws Exception {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (!Files.exists(ready)) {
                if (!process.isAlive() || System.nanoTime() - deadline > 0) {
                    throw new AssertionError("nbdsh did not connect:\n" + out.join() + err.join());
                }
                Thread.sleep(20);
            }
            return this;
        }

        /** Lets the client read back and disconnect; asserts it succeeded. */
        void finish() throws Exception {
            Files.createFile(go);
            assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(process.exitValue())
                    .as("nbdsh: %s %s", out.join(), err.join())
                    .isZero();
            assertThat(out.join().strip()).isEqualTo("ok");
        }
    }

    private Socket connect(int port) throws IOException {
        Socket s = new Socket("127.0.0.1", port);
        s.setSoTimeout(60_000);
        sockets.add(s);
        return s;
    }

    /** Reads the 18-byte greeting; returns false if the server closed the connection without one. */
    private static boolean greeted(Socket s) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        try {
            assertThat(in.readLong()).isEqualTo(NBDMAGIC);
            assertThat(in.readLong()).isEqualTo(IHAVEOPT);
            in.readUnsignedShort();
            return true;
        } catch (EOFException e) {
            return false;
        }
    }

    /** Blocks until the server closes {@code s}; returns how long that took, or fails after a minute. */
    private static Duration awaitClosedByServer(Socket s) throws IOException {
        long start = System.nanoTime();
        InputStream in = s.getInputStream();
        try {
            while (in.read() >= 0) {
                // Option replies the client asked for; the close comes after them.
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError("the server kept the connection open for a minute", e);
        } catch (IOException e) {
            // A reset is a close too.
        }
        return Duration.ofNanos(System.nanoTime() - start);
    }

    private static void option(Socket s, int option, byte[] data) throws IOException {
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    @Test
    void handshakeTimeout_dropsStalledClients_neverIdleTransmission() throws Exception {
        TestPki.Ca ca = TestPki.newCa("CN=LimitsIT CA");
        Path tls = ca.writeServerDirectory(tmp.resolve("tls"), ca.server("CN=localhost"), TestPki.KeyFormat.PKCS8);
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--handshake-timeout",
                "2s",
                "--tls=on",
                "--tls-certificates",
                tls.toString(),
                "--export",
                "=memory:16M")) {
            Holder idle = new Holder("nbd://127.0.0.1:" + server.port() + "/", "idle").awaitConnected();
            long idleSince = System.nanoTime();

            // Silent after the greeting.
            Socket silent = connect(server.port());
            assertThat(greeted(silent)).isTrue();
            // Haggles a little (flags, LIST), then stalls.
            Socket haggler = connect(server.port());
            assertThat(greeted(haggler)).isTrue();
            new DataOutputStream(haggler.getOutputStream()).writeInt(3);
            option(haggler, 3, new byte[0]);
            // Asks for TLS, then never sends a ClientHello.
            Socket tlsStaller = connect(server.port());
            assertThat(greeted(tlsStaller)).isTrue();
            new DataOutputStream(tlsStaller.getOutputStream()).writeInt(3);
            option(tlsStaller, 5, new byte[0]);

            for (Socket s : List.of(silent, haggler, tlsStaller)) {
                Duration closedAfter = awaitClosedByServer(s);
                // Generous: the deadline is 2 s from the connection; the machine may be busy.
                assertThat(closedAfter).isLessThan(Duration.ofSeconds(30));
            }
            server.awaitLog("no export chosen within 2 s (handshake timeout)", Duration.ofSeconds(10));
            assertThat(server.log()).contains("no export chosen within 2 s (handshake timeout)");

            // The idle client has now sat in transmission for more than twice the deadline.
            long waited = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - idleSince);
            if (waited < 5000) {
                Thread.sleep(5000 - waited);
            }
            idle.finish();
        }
    }

    @Test
    void maxConnections_evictsTheOldestHandshake_refusesOnlyWhenAllAreInTransmission() throws Exception {
        try (ServerProcess server =
                ServerProcess.start("serve", "--port", "0", "--max-connections", "2", "--export", "=memory:16M")) {
            String uri = "nbd://127.0.0.1:" + server.port() + "/";
            Holder established = new Holder(uri, "established").awaitConnected();
            Socket stalled = connect(server.port());
            assertThat(greeted(stalled)).isTrue();

            // At the cap, a newcomer takes the place of the connection still in the handshake.
            Socket third = connect(server.port());
            assertThat(greeted(third)).as("the third connection got a greeting").isTrue();
            assertThat(awaitClosedByServer(stalled)).isLessThan(Duration.ofSeconds(30));
            // The server logs the eviction as it closes; the log reader may see the line a moment later.
            server.awaitLog("still in the handshake, to make room for", Duration.ofSeconds(10));
            assertThat(server.log()).contains("still in the handshake, to make room for", "(--max-connections)");
            third.close();

            // With both connections in transmission, the one too many is refused before the greeting.
            Holder second = awaitAdmitted(uri, "second");
            Socket refused = connect(server.port());
            assertThat(greeted(refused))
                    .as("a connection over a cap of connections in transmission")
                    .isFalse();
            Tool.run("nbdinfo", uri).assertFailure();
            assertThat(server.log())
                    .contains(
                            "refused connection from 127.0.0.1:",
                            "2 connections in transmission (the most allowed; see --max-connections)");

            established.finish();
            second.finish();
            // The slots free as the server sees the connections close.
            boolean served = false;
            for (int i = 0; i < 100 && !served; i++) {
                served = Tool.run("nbdinfo", uri).exitCode() == 0;
                if (!served) {
                    Thread.sleep(100);
                }
            }
            assertThat(served).isTrue();
        }
    }

    /** Connects a holder, retrying while the server has not yet seen an earlier connection close. */
    private Holder awaitAdmitted(String uri, String name) throws Exception {
        for (int i = 0; ; i++) {
            try {
                return new Holder(uri, name).awaitConnected();
            } catch (Exception | AssertionError e) {
                if (i == 50) {
                    throw e;
                }
                Thread.sleep(100);
            }
        }
    }

    @Test
    void maxConnectionsPerClient_refusesTheSameAddress_notAnother() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--listen",
                "127.0.0.1",
                "--listen",
                "::1",
                "--max-connections-per-client",
                "1",
                "--export",
                "=memory:16M")) {
            String v4 = "nbd://127.0.0.1:" + server.port("127.0.0.1") + "/";
            String v6 = "nbd://[::1]:" + server.port("[0:0:0:0:0:0:0:1]") + "/";
            Holder established = new Holder(v4, "v4").awaitConnected();

            Tool.run("nbdinfo", v4).assertFailure();
            Tool.run("nbdinfo", v6).assertSuccess();
            assertThat(server.log())
                    .contains("1 connections from 127.0.0.1 in transmission (the most allowed; "
                            + "see --max-connections-per-client)");

            established.finish();
        }
    }

    @Test
    void queueDepth_moreRequestsInFlightThanTags_allCompleteInOrderOfData() throws Exception {
        try (ServerProcess server = ServerProcess.start(
                "serve",
                "--port",
                "0",
                "--event-loops",
                "1",
                "--hw-queues",
                "1",
                "--queue-depth",
                "2",
                "--export",
                "=memory:16M")) {
            String script = String.join(
                    "\n",
                    "import nbd",
                    "h.connect_uri('nbd://127.0.0.1:" + server.port() + "/')",
                    "n = 256",
                    "writes = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray([i % 251 + 1]) * 4096), i * 4096)"
                            + " for i in range(n)]",
                    "peak = h.aio_in_flight()",
                    "while h.aio_in_flight() > 0:",
                    "    h.poll(-1)",
                    "assert all(h.aio_command_completed(c) for c in writes)",
                    "bufs = [nbd.Buffer(4096) for i in range(n)]",
                    "reads = [h.aio_pread(bufs[i], i * 4096) for i in range(n)]",
                    "while h.aio_in_flight() > 0:",
                    "    h.poll(-1)",
                    "assert all(h.aio_command_completed(c) for c in reads)",
                    "bad = [i for i in range(n) if bufs[i].to_bytearray() != bytearray([i % 251 + 1]) * 4096]",
                    "assert not bad, bad[:5]",
                    "h.shutdown()",
                    "print('ok', peak)");

            String out = Tool.run("nbdsh", "-c", script).assertSuccess().stdout();

            // libnbd had far more requests out than the server has tags: the rest waited in the socket.
            assertThat(out.strip()).startsWith("ok ");
            assertThat(Integer.parseInt(out.strip().substring(3))).isGreaterThan(2);
        }
    }

    @Test
    void maxPayload_isAdvertised() throws Exception {
        try (ServerProcess server =
                ServerProcess.start("serve", "--port", "0", "--max-payload", "64K", "--export", "=memory:16M")) {
            String out = Tool.run("nbdinfo", "--json", "nbd://127.0.0.1:" + server.port() + "/")
                    .assertSuccess()
                    .stdout();

            assertThat(out).contains("\"block_size_maximum\": 65536");
        }
    }
}
