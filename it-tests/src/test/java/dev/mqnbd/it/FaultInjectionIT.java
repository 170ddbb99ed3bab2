package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.filter.FaultInjectingOperations;
import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.filter.Filters;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.server.ExportRegistry;
import dev.mqnbd.server.NbdServer;
import dev.mqnbd.server.handler.Export;
import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import io.netty.channel.EventLoopGroup;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Faults injected under a real server ({@link FaultInjectingOperations} over the memory driver, served by
 * {@link NbdServer} in this JVM) and seen by a real client (libnbd's Python binding): an injected I/O
 * error is the NBD error of exactly the request it hit while the other requests of the connection succeed;
 * a dropped request is ended by the queue's timeout and its client gets EIO; delays and BUSY are invisible
 * but for time; and the connection and the export keep working afterwards, for new connections too.
 */
class FaultInjectionIT {
    private static final int MAX_PAYLOAD = 32 << 20;
    private static final long MiB = 1 << 20;
    /** The tag set's request timeout: what a dropped request waits before the timeout handler ends it. */
    private static final Duration TIMEOUT = Duration.ofSeconds(1);

    /** Debian's python3, which has libnbd's module. */
    private static final String PYTHON =
            Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";

    /** Prints "NAME ok" or "NAME ERRNO" for each step; steps that fail do not stop the script. */
    private static final String PRELUDE = """
            import errno, sys, time, nbd
            uri = sys.argv[1]
            def step(name, f):
                try:
                    r = f()
                    print(name, 'ok')
                    return r
                except nbd.Error as e:
                    print(name, errno.errorcode.get(e.errnum, e.errnum))
            def connect():
                h = nbd.NBD()
                h.connect_uri(uri)
                return h
            def blk(c):
                return bytes([c]) * 4096
            MiB = 1 << 20
            """;

    private static EventLoopGroup group;
    private static FaultInjectingOperations<?, ?, ?, ?> faulty;
    private static NbdServer server;
    private static String uri;

    @BeforeAll
    static void startServer() throws Exception {
        group = NbdServer.newEventLoopGroup(2);
        ExportRegistry registry = new ExportRegistry();
        QueueSetup setup = new QueueSetup("faulty", 2, 64, NbdServer.hctxExecutors(group), TIMEOUT);
        // The public way every export is stacked: the backend's device, the filter on top, then the queue.
        Device<?, ?, ?, ?> memory = Backends.device("memory:64M", DeviceOptions.DEFAULT, setup);
        registry.add(Export.of(
                "faulty", "memory with injected faults", withFaults(memory).build(setup), MAX_PAYLOAD));
        server = NbdServer.start(group, registry, List.of(new InetSocketAddress("127.0.0.1", 0)), MAX_PAYLOAD);
        uri = "nbd://127.0.0.1:" + server.port() + "/faulty";
    }

    private static <H, Q, T, R> Device<?, Q, T, R> withFaults(Device<H, Q, T, R> below) {
        FaultInjectingOperations<H, Q, T, R> filter = FaultInjectingOperations.wrap(below.driver(), below.limits());
        faulty = filter;
        return Filters.on(filter, below);
    }

    @AfterEach
    void mend() {
        faulty.clear();
        assertThat(faulty.endDropped(Status.IO_ERROR))
                .as("dropped requests left in flight")
                .isZero();
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        } else if (group != null) {
            group.shutdownGracefully();
        }
    }

    private static List<String> run(String script) {
        String out = Tool.run(Duration.ofMinutes(2), PYTHON, "-c", PRELUDE + script, uri)
                .assertSuccess()
                .stdout();
        return out.lines().toList();
    }

    @Test
    void injectedErrors_areTheNbdErrorsOfExactlyThoseRequests_theRestOfTheConnectionSucceeds() {
        FaultRule eio = faulty.add(FaultRule.on(ReqOp.WRITE).range(MiB, 2 * MiB).fail(Status.IO_ERROR));
        FaultRule enospc =
                faulty.add(FaultRule.on(ReqOp.WRITE).range(2 * MiB, 3 * MiB).fail(Status.NO_SPACE));
        FaultRule everyThirdRead = faulty.add(
                FaultRule.on(ReqOp.READ).range(4 * MiB, 5 * MiB).everyNth(3).fail(Status.IO_ERROR));

        List<String> out = run("""
                h = connect()
                step('write 0', lambda: h.pwrite(blk(1), 0))
                step('write 1M', lambda: h.pwrite(blk(2), MiB))
                step('write 2M', lambda: h.pwrite(blk(3), 2 * MiB))
                step('write 3M', lambda: h.pwrite(blk(4), 3 * MiB))
                for i in range(6):
                    step('read 4M+%d' % i, lambda: h.pread(4096, 4 * MiB + i * 4096))
                step('flush', h.flush)
                print('data', h.pread(4096, 0) == blk(1), h.pread(4096, MiB) == bytes(4096),
                      h.pread(4096, 2 * MiB) == bytes(4096), h.pread(4096, 3 * MiB) == blk(4))
                h.shutdown()
                """);

        assertThat(out)
                .containsExactly(
                        "write 0 ok",
                        "write 1M EIO",
                        "write 2M ENOSPC",
                        "write 3M ok",
                        "read 4M+0 ok",
                        "read 4M+1 ok",
                        "read 4M+2 EIO",
                        "read 4M+3 ok",
                        "read 4M+4 ok",
                        "read 4M+5 EIO",
                        "flush ok",
                        "data True True True True");
        assertThat(eio.injected()).isEqualTo(1);
        assertThat(enospc.injected()).isEqualTo(1);
        assertThat(everyThirdRead.injected()).isEqualTo(2);
    }

    @Test
    void seededRandomErrors_failExactlyTheWritesTheSeedPicks_andOnlyThoseLoseTheirData() {
        int writes = 300;
        long base = 8 * MiB;
        FaultRule rule = faulty.add(FaultRule.on(ReqOp.WRITE)
                .range(base, base + writes * 4096L)
                .probability(0.1, 20261121L)
                .fail(Status.IO_ERROR));

        List<String> out = run("""
                h = connect()
                base, n = 8 * MiB, %d
                failed = []
                for i in range(n):
                    try:
                        h.pwrite(blk(i %% 251 + 1), base + i * 4096)
                    except nbd.Error as e:
                        assert e.errnum == errno.EIO, e
                        failed.append(i)
                bad = [i for i in range(n) if h.pread(4096, base + i * 4096) != (bytes(4096) if i in failed else blk(i %% 251 + 1))]
                print('failed', ' '.join(map(str, failed)))
                print('bad', len(bad))
                h.shutdown()
                """.formatted(writes));

        // One connection is served by one hardware context, and its writes are synchronous: the rule's coin
        // sees the writes in order, so the seed alone says which fail.
        Random coin = new Random(20261121L);
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < writes; i++) {
            if (coin.nextDouble() < 0.1) {
                expected.add(Integer.toString(i));
            }
        }
        assertThat(out).containsExactly("failed " + String.join(" ", expected), "bad 0");
        assertThat(rule.injected()).isEqualTo(expected.size()).isPositive();
    }

    @Test
    void droppedRequests_theQueueTimeoutEndsThem_theClientGetsEio_andTheExportLivesOn() {
        FaultRule lostFlush = faulty.add(FaultRule.on(ReqOp.FLUSH).firstN(1).drop());
        FaultRule lostRead = faulty.add(
                FaultRule.on(ReqOp.READ).range(12 * MiB, 13 * MiB).firstN(1).drop());

        List<String> out = run("""
                h = connect()
                step('write', lambda: h.pwrite(blk(7), 12 * MiB))
                t = time.monotonic()
                step('flush', h.flush)
                waited = time.monotonic() - t
                step('read', lambda: h.pread(4096, 12 * MiB))
                print('waited', 'long' if waited >= 0.5 else 'short')
                step('flush again', h.flush)
                print('same connection', h.pread(4096, 12 * MiB) == blk(7))
                h2 = connect()
                print('new connection', h2.pread(4096, 12 * MiB) == blk(7))
                step('write on new', lambda: h2.pwrite(blk(8), 12 * MiB + 4096))
                h2.shutdown()
                h.shutdown()
                """);

        assertThat(out)
                .containsExactly(
                        "write ok",
                        "flush EIO",
                        "read EIO",
                        "waited long",
                        "flush again ok",
                        "same connection True",
                        "new connection True",
                        "write on new ok");
        assertThat(lostFlush.injected()).isEqualTo(1);
        assertThat(lostRead.injected()).isEqualTo(1);
        assertThat(faulty.droppedInFlight())
                .as("dropped requests still in flight")
                .isZero();
    }

    @Test
    void delayedAndBusyRequests_completeWithTheRightData() {
        FaultRule slow = faulty.add(
                FaultRule.on(ReqOp.READ).range(16 * MiB, 17 * MiB).everyNth(2).delay(Duration.ofMillis(200)));
        FaultRule busy = faulty.add(
                FaultRule.on(ReqOp.WRITE).range(16 * MiB, 17 * MiB).limit(20).busy());

        List<String> out = run("""
                h = connect()
                for i in range(32):
                    h.pwrite(blk(i + 10), 16 * MiB + i * 4096)
                bufs = [nbd.Buffer(4096) for i in range(32)]
                cookies = [h.aio_pread(bufs[i], 16 * MiB + i * 4096) for i in range(32)]
                order = []
                while len(order) < 32:
                    h.poll(-1)
                    for i, c in enumerate(cookies):
                        if i not in order and h.aio_command_completed(c):
                            order.append(i)
                print('data', all(bufs[i].to_bytearray() == blk(i + 10) for i in range(32)))
                print('first reply of an undelayed read', order[0] % 2 == 0)
                h.shutdown()
                """);

        assertThat(out).containsExactly("data True", "first reply of an undelayed read True");
        assertThat(slow.injected()).isEqualTo(16);
        assertThat(busy.injected()).isEqualTo(20);
    }
}
