package dev.mqnbd.server;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.HctxExecutor;
import dev.mqnbd.server.protocol.NbdConstants;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Completions that arrive on a thread other than the connection's event loop: the export's only hardware
 * context runs on a loop of its own group, so every reply goes through {@code ReplyDispatch}'s hand-off
 * (record in the slot, run the slot's task on the channel's loop). With a tag depth of 4 and 32 requests
 * pipelined per connection, tags are reused while earlier hand-offs may still be queued, which exercises
 * the claim path. Every reply must carry its own handle and status, every READ the bytes its WRITE put
 * there, and no buffer may leak (the leak extension fails the test otherwise).
 *
 * <p>The second case spreads one connection's large READs (and WRITEs, with {@code spreadWrites}) over
 * three hardware contexts on loops of their own ({@code spreadMin}): the same checks, and every context
 * must have served some of them.
 */
class CrossLoopCompletionTest {
    private static final short CMD_READ = 0;
    private static final short CMD_WRITE = 1;
    private static final short CMD_FLUSH = 3;
    private static final int SMALL = 4096;
    private static final int LARGE = 128 << 10;
    private static final int PER_CONNECTION = 32;
    private static final int CONNECTIONS = 3;

    private NbdServer server;
    private EventLoopGroup hctxGroup;
    private final ExecutorService clients = Executors.newFixedThreadPool(2 * CONNECTIONS);

    @AfterEach
    void tearDown() throws Exception {
        clients.shutdownNow();
        if (server != null) {
            server.close();
        }
        if (hctxGroup != null) {
            hctxGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        }
    }

    @Test
    void completionsOnAnotherLoop_answerEveryRequestOnItsConnection() throws Exception {
        EventLoopGroup channelLoops = NbdServer.newEventLoopGroup(2);
        hctxGroup = NbdServer.newEventLoopGroup(1);
        start(channelLoops, 1, NbdServerConfig.builder().build());
        roundTrips(SMALL);
    }

    @ParameterizedTest(name = "spreadWrites={0}")
    @ValueSource(booleans = {false, true})
    void largeRequestsOfOneConnection_spreadOverEveryContext_andAreAnsweredOnIt(boolean spreadWrites) throws Exception {
        EventLoopGroup channelLoops = NbdServer.newEventLoopGroup(1);
        hctxGroup = NbdServer.newEventLoopGroup(3);
        ExportRegistry registry = start(
                channelLoops,
                3,
                NbdServerConfig.builder()
                        .spreadMin(LARGE)
                        .spreadWrites(spreadWrites)
                        .build());
        roundTrips(LARGE);
        var queue = registry.get("disk").queue();
        // The one channel loop maps to context 0; contexts 1 and 2 see only what was spread to them (a turn
        // whose context has no free tag falls back to context 0).
        long total = 0;
        for (int i = 0; i < 3; i++) {
            total += queue.hctx(i).dispatched();
            if (i > 0) {
                assertThat(queue.hctx(i).dispatched())
                        .as("requests context %d served", i)
                        .isGreaterThan(0);
            }
        }
        assertThat(total).isEqualTo(CONNECTIONS * (2L * PER_CONNECTION + 1));
        if (!spreadWrites) {
            // Every WRITE and FLUSH stayed on context 0; only READs went elsewhere.
            assertThat(queue.hctx(0).dispatched()).isGreaterThanOrEqualTo(CONNECTIONS * (PER_CONNECTION + 1L));
            assertThat(queue.hctx(1).dispatched() + queue.hctx(2).dispatched())
                    .isLessThanOrEqualTo(CONNECTIONS * (long) PER_CONNECTION);
        }
    }

    private ExportRegistry start(EventLoopGroup channelLoops, int contexts, NbdServerConfig config) throws Exception {
        IntFunction<HctxExecutor> elsewhere = NbdServer.hctxExecutors(hctxGroup);
        ExportRegistry registry = new ExportRegistry();
        registry.open(
                "disk",
                "memory:16M",
                "a disk",
                new DeviceOptions(false),
                new QueueSetup("disk", contexts, 4, elsewhere, Duration.ZERO),
                1 << 20);
        server = NbdServer.start(channelLoops, registry, List.of(new InetSocketAddress("127.0.0.1", 0)), config);
        return registry;
    }

    private void roundTrips(int block) throws Exception {
        List<Future<?>> runs = new ArrayList<>();
        for (int c = 0; c < CONNECTIONS; c++) {
            int connection = c;
            runs.add(clients.submit(() -> {
                roundTrip(connection, block);
                return null;
            }));
        }
        for (Future<?> run : runs) {
            run.get(60, TimeUnit.SECONDS);
        }
    }

    /** Pipelines 32 WRITEs and a FLUSH, then 32 READs, from one thread while another reads the replies. */
    private void roundTrip(int connection, int block) throws Exception {
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            s.setSoTimeout(30_000);
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            handshake(in, out);
            long base = (long) connection * PER_CONNECTION * block;
            CountDownLatch written = new CountDownLatch(1);
            Future<?> sender = clients.submit(() -> {
                for (int i = 0; i < PER_CONNECTION; i++) {
                    request(out, CMD_WRITE, i, base + (long) i * block, pattern(connection, i, block));
                }
                request(out, CMD_FLUSH, PER_CONNECTION, 0, null);
                out.flush();
                // A READ must not overlap a WRITE still in flight (NBD does not order them): wait for the replies.
                assertThat(written.await(30, TimeUnit.SECONDS)).isTrue();
                for (int i = 0; i < PER_CONNECTION; i++) {
                    readRequest(out, PER_CONNECTION + 1 + i, base + (long) i * block, block);
                }
                out.flush();
                return null;
            });
            // Writes and the flush may be answered in any order.
            boolean[] seen = new boolean[PER_CONNECTION + 1];
            for (int n = 0; n <= PER_CONNECTION; n++) {
                assertThat(in.readInt()).isEqualTo(NbdConstants.SIMPLE_REPLY_MAGIC);
                assertThat(in.readInt()).as("error").isZero();
                int handle = (int) in.readLong();
                assertThat(handle).isBetween(0, PER_CONNECTION);
                assertThat(seen[handle]).as("handle %d answered twice", handle).isFalse();
                seen[handle] = true;
            }
            written.countDown();
            boolean[] read = new boolean[PER_CONNECTION];
            for (int n = 0; n < PER_CONNECTION; n++) {
                assertThat(in.readInt()).isEqualTo(NbdConstants.SIMPLE_REPLY_MAGIC);
                assertThat(in.readInt()).as("error").isZero();
                int i = (int) in.readLong() - PER_CONNECTION - 1;
                assertThat(i).isBetween(0, PER_CONNECTION - 1);
                assertThat(read[i]).isFalse();
                read[i] = true;
                byte[] data = in.readNBytes(block);
                assertThat(Arrays.equals(data, pattern(connection, i, block)))
                        .as("connection %d block %d", connection, i)
                        .isTrue();
            }
            sender.get(30, TimeUnit.SECONDS);
        }
    }

    private static byte[] pattern(int connection, int i, int block) {
        byte[] data = new byte[block];
        for (int k = 0; k < block; k++) {
            data[k] = (byte) (connection * 31 + i * 7 + k);
        }
        return data;
    }

    private static void handshake(DataInputStream in, DataOutputStream out) throws IOException {
        in.readLong(); // NBDMAGIC
        in.readLong(); // IHAVEOPT
        in.readShort(); // handshake flags
        out.writeInt(NbdConstants.CLIENT_FLAG_FIXED_NEWSTYLE | NbdConstants.CLIENT_FLAG_NO_ZEROES);
        byte[] name = "disk".getBytes(StandardCharsets.UTF_8);
        out.writeLong(NbdConstants.IHAVEOPT);
        out.writeInt(NbdConstants.OPT_EXPORT_NAME);
        out.writeInt(name.length);
        out.write(name);
        out.flush();
        assertThat(in.readLong()).isEqualTo(16L << 20);
        in.readShort(); // transmission flags
    }

    private static void request(DataOutputStream out, short type, long handle, long offset, byte[] data)
            throws IOException {
        out.writeInt(NbdConstants.REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(type);
        out.writeLong(handle);
        out.writeLong(offset);
        out.writeInt(data == null ? 0 : data.length);
        if (data != null) {
            out.write(data);
        }
    }

    private static void readRequest(DataOutputStream out, long handle, long offset, int block) throws IOException {
        out.writeInt(NbdConstants.REQUEST_MAGIC);
        out.writeShort(0);
        out.writeShort(CMD_READ);
        out.writeLong(handle);
        out.writeLong(offset);
        out.writeInt(block);
    }
}
