package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The filters as users stack them: the {@code mqnbd} jar in its own process with {@code --filter
 * NAME=KIND[,key=value...]}, driven by real clients (nbdcopy, nbdinfo, nbdsh, qemu-img, fio's nbd
 * engine). Covers cow (memory and file overlays over a read-only base), rate (requests and bytes per
 * second, shared by connections), error (the seed's picks), delay, log, the order of stacked filters,
 * and the command line's errors.
 */
@Timeout(300)
class FiltersIT {
    private static final long MiB = 1 << 20;
    /** The base image: data in [0, 4M) and [8M, 12M), holes elsewhere. */
    private static final int BASE_SIZE = 16 << 20;

    private static final Duration STOP = Duration.ofSeconds(30);
    private static final Duration CLIENT_LIMIT = Duration.ofMinutes(2);
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
            def connect(u=None):
                h = nbd.NBD()
                h.connect_uri(u or uri)
                return h
            def blk(c, n=4096):
                return bytes([c]) * n
            MiB = 1 << 20
            """;

    private static final Pattern LOG_LINE =
            Pattern.compile("^(\\S+) export=\\S+ conn=(\\S+) hctx=(\\d+) tag=(\\d+) op=(\\S+)"
                    + " offset=(\\d+) length=(\\d+) flags=(\\S+) status=(\\S+) latency_us=(\\d+)$");

    @TempDir
    Path tmp;

    /* --------------- cow --------------- */

    /**
     * nbdcopy, qemu-img and nbdsh write through a cow overlay over a read-only (0444) sparse base: the export
     * reads back what they wrote over the base's bytes, the base file never changes (and is opened O_RDONLY),
     * nbdinfo --map shows the overlay's zeroed ranges and the base's holes as hole,zero and data elsewhere,
     * and a file overlay is held only by the server's descriptor while serving (its path unlinked at once).
     */
    @ParameterizedTest(name = "overlay={0}")
    @ValueSource(strings = {"memory", "file"})
    void cow_clientsWriteThroughOverlay_readBackWritten_baseUnchanged_mapMerged(String where) throws Exception {
        Path base = sparseBase();
        String before = TestFiles.sha256(base, BASE_SIZE);
        Path overlay = tmp.resolve("vm.overlay");
        String kind = where.equals("memory") ? "memory" : "file:" + overlay;
        String filter = where.equals("memory") ? "vm=cow" : "vm=cow,overlay=" + kind;
        byte[] expected = Files.readAllBytes(base);

        try (ServerProcess server = serve("--export", "vm=file:" + base, "--filter", filter)) {
            String uri = uri(server, "vm");
            assertThat(stackLine(server, "vm"))
                    .isEqualTo("export \"vm\": cow(overlay=" + kind + ") -> file:" + base + ", size 16M, read-write");
            assertOpenedReadOnly(server, base);
            if (where.equals("file")) {
                // Unlinked once open: only the server's descriptor holds it, so nothing outlives the server.
                assertThat(overlay).as("the overlay's path while serving").doesNotExist();
                assertThat(openFiles(server)).as("the server's descriptors").contains(overlay + " (deleted)");
            }

            // nbdcopy: 1 MiB of new data at 0, over the base's data.
            Path one = tmp.resolve("one.bin");
            TestFiles.writeRandom(one, (int) MiB, 11);
            Tool.run(CLIENT_LIMIT, "nbdcopy", one.toString(), uri).assertSuccess();
            System.arraycopy(Files.readAllBytes(one), 0, expected, 0, (int) MiB);

            // qemu-img: 2 MiB at 5M, in a base hole: 1 MiB of data, then a hole that it writes as zeroes.
            Path two = tmp.resolve("two.bin");
            TestFiles.writeRandom(two, (int) MiB, 22);
            try (RandomAccessFile f = new RandomAccessFile(two.toFile(), "rw")) {
                f.setLength(2 * MiB);
            }
            Tool.run(
                            CLIENT_LIMIT,
                            "qemu-img",
                            "convert",
                            "-n",
                            "-f",
                            "raw",
                            two.toString(),
                            "--target-image-opts",
                            "driver=raw,offset=" + 5 * MiB + ",size=" + 2 * MiB + ",file.driver=nbd,file.host=127.0.0.1"
                                    + ",file.port=" + server.port() + ",file.export=vm")
                    .assertSuccess();
            System.arraycopy(Files.readAllBytes(two), 0, expected, (int) (5 * MiB), (int) (2 * MiB));

            // nbdsh: zero 1 MiB at 9M, over the base's data.
            Tool.run(CLIENT_LIMIT, "nbdsh", "-u", uri, "-c", "h.zero(" + MiB + ", " + 9 * MiB + ")")
                    .assertSuccess();
            Arrays.fill(expected, (int) (9 * MiB), (int) (10 * MiB), (byte) 0);

            Path back = tmp.resolve("back.img");
            Tool.run(CLIENT_LIMIT, "nbdcopy", uri, back.toString()).assertSuccess();
            byte[] read = Files.readAllBytes(back);
            assertThat(read.length).isEqualTo(BASE_SIZE);
            assertThat(Arrays.mismatch(read, expected))
                    .as("first byte where the export differs from what was" + " written over the base (-1: none)")
                    .isEqualTo(-1);

            assertThat(map(uri))
                    .containsExactly(
                            "0 " + 4 * MiB + " data", // overlay [0, 1M) then base data
                            4 * MiB + " " + MiB + " hole,zero", // base hole
                            5 * MiB + " " + MiB + " data", // overlay data in the base's hole
                            6 * MiB + " " + 2 * MiB + " hole,zero", // overlay zeroes, then the base's hole
                            8 * MiB + " " + MiB + " data", // base data
                            9 * MiB + " " + MiB + " hole,zero", // overlay zeroes over base data
                            10 * MiB + " " + 2 * MiB + " data", // base data
                            12 * MiB + " " + 4 * MiB + " hole,zero"); // base hole
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
        assertThat(TestFiles.sha256(base, BASE_SIZE)).as("the base's SHA-256").isEqualTo(before);
        assertThat(base).hasSize(BASE_SIZE);
        assertThat(overlay).as("the overlay file after SIGTERM").doesNotExist();
    }

    /** With --read-only, a cow export is read-only too: writes fail with EPERM, reads come from the base. */
    @Test
    void cow_readOnlyServer_refusesWrites_readsBase() throws Exception {
        Path base = sparseBase();
        String before = TestFiles.sha256(base, BASE_SIZE);
        try (ServerProcess server = serve(
                "--read-only",
                "--export",
                "vm=file:" + base,
                "--filter",
                "vm=cow,overlay=file:" + tmp.resolve("ro.overlay"))) {
            String uri = uri(server, "vm");
            assertThat(stackLine(server, "vm")).endsWith(", size 16M, read-only");
            assertOpenedReadOnly(server, base);
            String info = Tool.run(CLIENT_LIMIT, "nbdinfo", "--json", uri)
                    .assertSuccess()
                    .stdout();
            assertThat(info).contains("\"is_read_only\": true");

            List<String> out = python(uri, """
                    h = connect()
                    h.set_strict_mode(0)
                    step('write', lambda: h.pwrite(blk(9), 0))
                    step('trim', lambda: h.trim(4096, 8 * MiB))
                    print('read', h.pread(8, 8 * MiB).hex())
                    print('hole', h.pread(4096, 5 * MiB) == bytes(4096))
                    h.shutdown()
                    """);

            byte[] first = Arrays.copyOfRange(Files.readAllBytes(base), (int) (8 * MiB), (int) (8 * MiB) + 8);
            assertThat(out)
                    .containsExactly(
                            "write EPERM",
                            "trim EPERM",
                            "read " + java.util.HexFormat.of().formatHex(first),
                            "hole True");
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
        assertThat(TestFiles.sha256(base, BASE_SIZE)).isEqualTo(before);
        assertThat(tmp.resolve("ro.overlay")).doesNotExist();
    }

    /* --------------- rate --------------- */

    /**
     * fio's nbd engine, 4 KiB random reads for 10 s, with one connection and with four (one per job): the
     * export's request limit holds within 25%, shared by the connections.
     */
    @ParameterizedTest(name = "{0} connection(s)")
    @ValueSource(ints = {1, 4})
    void rate_iops_heldForOneAndFourConnections(int connections) throws Exception {
        int limit = 2000;
        try (ServerProcess server = serve("--export", "r=memory:256M", "--filter", "r=rate,iops=" + limit)) {
            FioResult fio = fio(uri(server, "r"), "4k", connections);

            System.out.printf(
                    "rate iops=%d, %d conn: measured %.0f IOPS over %.1f s%n",
                    limit, connections, fio.iops(), fio.runtimeMillis() / 1000.0);
            assertThat(fio.connections()).as("NBD connections fio made").isEqualTo(connections);
            assertThat(fio.iops()).isBetween(limit * 0.75, limit * 1.25);
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
    }

    /** fio, 64 KiB random reads for 10 s with two connections: the export's bandwidth limit holds within 25%. */
    @Test
    void rate_bandwidth_held() throws Exception {
        long limit = 16 * MiB;
        try (ServerProcess server = serve("--export", "b=memory:256M", "--filter", "b=rate,bandwidth=16M/s")) {
            FioResult fio = fio(uri(server, "b"), "64k", 2);

            System.out.printf(
                    "rate bandwidth=16M/s, 2 conn: measured %.2f MiB/s (%.0f IOPS of 64 KiB) over %.1f s%n",
                    fio.bytesPerSecond() / MiB, fio.iops(), fio.runtimeMillis() / 1000.0);
            assertThat(fio.bytesPerSecond()).isBetween(limit * 0.75, limit * 1.25);
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
    }

    /* --------------- error --------------- */

    /**
     * One connection, one write at a time: {@code error,rate=0.3,ops=write,seed=42} fails exactly the writes
     * whose draw from {@code new Random(42)} is below 0.3 (FaultRule draws once per write), with EIO; reads
     * are never failed, and only the failed writes lost their data. {@code status=ENOSPC} gives ENOSPC.
     */
    @Test
    void error_seededRate_failsExactlyTheWritesTheSeedPicks_statusChosen() throws Exception {
        int writes = 200;
        try (ServerProcess server = serve(
                "--export",
                "e=memory:64M",
                "--export",
                "n=memory:64M",
                "--filter",
                "e=error,rate=0.3,ops=write,seed=42",
                "--filter",
                "n=error,rate=50%,ops=write,status=ENOSPC,seed=7")) {
            assertThat(stackLine(server, "e"))
                    .isEqualTo("export \"e\": error(rate=0.3,ops=write,seed=42) -> memory:64M, size 64M, read-write");
            String script = """
                    h = connect()
                    failed = []
                    errs = set()
                    for i in range(%d):
                        try:
                            h.pwrite(blk(i %% 251 + 1), i * 4096)
                        except nbd.Error as e:
                            errs.add(errno.errorcode.get(e.errnum, e.errnum))
                            failed.append(i)
                    bad = [i for i in range(%d) if h.pread(4096, i * 4096) != (bytes(4096) if i in failed else blk(i %% 251 + 1))]
                    print('failed', ' '.join(map(str, failed)))
                    print('errors', ' '.join(sorted(errs)))
                    print('bad', len(bad))
                    h.shutdown()
                    """.formatted(writes, writes);

            List<String> eio = python(uri(server, "e"), script);
            List<String> enospc = python(uri(server, "n"), script);

            List<Integer> expectedEio = picks(42, 0.3, writes);
            List<Integer> expectedEnospc = picks(7, 0.5, writes);
            System.out.println("error rate=0.3 seed=42: " + expectedEio.size() + " of " + writes + " writes failed");
            assertThat(expectedEio).isNotEmpty();
            assertThat(eio).containsExactly("failed " + join(expectedEio), "errors EIO", "bad 0");
            assertThat(enospc).containsExactly("failed " + join(expectedEnospc), "errors ENOSPC", "bad 0");
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
    }

    /** The candidates FaultRule picks: the k-th write fails iff the k-th nextDouble() of new Random(seed) is < p. */
    private static List<Integer> picks(long seed, double p, int n) {
        Random coin = new Random(seed);
        List<Integer> picked = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (coin.nextDouble() < p) {
                picked.add(i);
            }
        }
        return picked;
    }

    private static String join(List<Integer> values) {
        return String.join(" ", values.stream().map(String::valueOf).toList());
    }

    /* --------------- delay --------------- */

    /** {@code delay,read=200ms}: each read takes at least 200 ms, writes are not delayed. */
    @Test
    void delay_read200ms_eachReadTakesAtLeast200ms_writesUndelayed() throws Exception {
        try (ServerProcess server = serve("--export", "d=memory:16M", "--filter", "d=delay,read=200ms")) {
            List<String> out = python(uri(server, "d"), """
                    h = connect()
                    h.pwrite(blk(1), 0)
                    for i in range(5):
                        t = time.monotonic()
                        h.pread(4096, i * 4096)
                        print('read', round((time.monotonic() - t) * 1000, 1))
                    for i in range(5):
                        t = time.monotonic()
                        h.pwrite(blk(2), i * 4096)
                        print('write', round((time.monotonic() - t) * 1000, 1))
                    h.shutdown()
                    """);

            double[] reads = millis(out, "read");
            double[] writes = millis(out, "write");
            System.out.println("delay read=200ms: reads took " + Arrays.toString(reads) + " ms, writes "
                    + Arrays.toString(writes) + " ms");
            assertThat(reads).hasSize(5);
            assertThat(writes).hasSize(5);
            for (double r : reads) {
                assertThat(r).as("a read's milliseconds").isBetween(200.0, 2000.0);
            }
            Arrays.sort(writes);
            assertThat(writes[2]).as("the median write's milliseconds").isLessThan(50.0);
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
    }

    private static double[] millis(List<String> out, String what) {
        return out.stream()
                .filter(l -> l.startsWith(what + " "))
                .mapToDouble(l -> Double.parseDouble(l.substring(what.length() + 1)))
                .toArray();
    }

    /* --------------- log --------------- */

    /**
     * {@code log,file=PATH}: write, read, flush, trim, a FUA write and a zeroing from nbdsh give one line each, in
     * order, with their operation, offset, length, flags and status, by SIGTERM at the latest.
     */
    @Test
    void log_knownRequests_oneLineEachInOrder() throws Exception {
        Path log = tmp.resolve("requests.log");
        try (ServerProcess server = serve("--export", "l=memory:16M", "--filter", "l=log,file=" + log)) {
            assertThat(stackLine(server, "l"))
                    .isEqualTo("export \"l\": log(file=" + log + ") -> memory:16M, size 16M," + " read-write");
            List<String> out = python(uri(server, "l"), """
                    h = connect()
                    step('write', lambda: h.pwrite(blk(1), 8192))
                    print('read', h.pread(4096, 8192) == blk(1))
                    step('flush', h.flush)
                    step('trim', lambda: h.trim(4096, 8192))
                    step('fua write', lambda: h.pwrite(blk(2, 512), 65536, nbd.CMD_FLAG_FUA))
                    step('zero', lambda: h.zero(4096, MiB))
                    h.shutdown()
                    """);
            assertThat(out).containsExactly("write ok", "read True", "flush ok", "trim ok", "fua write ok", "zero ok");
            assertThat(server.stop(STOP)).isIn(0, 143);
        }

        List<String> lines = Files.readAllLines(log);
        assertThat(requests(lines))
                .containsExactly(
                        "WRITE 8192 4096 - OK",
                        "READ 8192 4096 - OK",
                        "FLUSH 0 0 - OK",
                        "DISCARD 8192 4096 - OK",
                        "WRITE 65536 512 fua OK",
                        "WRITE_ZEROES " + MiB + " 4096 - OK");
        Instant previous = Instant.EPOCH;
        for (String line : lines) {
            Matcher m = LOG_LINE.matcher(line);
            assertThat(m.matches()).as("log line %s", line).isTrue();
            Instant at = Instant.parse(m.group(1));
            assertThat(at).as("times in order").isAfterOrEqualTo(previous).isBefore(Instant.now());
            previous = at;
        }
    }

    /** Returns each log line as "OP OFFSET LENGTH FLAGS STATUS"; fails on a line of another shape. */
    private static List<String> requests(List<String> lines) {
        List<String> result = new ArrayList<>();
        for (String line : lines) {
            Matcher m = LOG_LINE.matcher(line);
            assertThat(m.matches()).as("log line %s", line).isTrue();
            result.add(m.group(5) + " " + m.group(6) + " " + m.group(7) + " " + m.group(8) + " " + m.group(9));
        }
        return result;
    }

    /* --------------- order --------------- */

    /**
     * The same filters stacked in both orders over the same read-only base, one export each: log above cow
     * logs every request, log below cow only the reads of the base (writes never reach it); error above
     * cow fails writes and every read, error below cow only the reads of the base. The startup log shows each
     * stack in the order given.
     */
    @Test
    void order_logAndErrorAboveOrBelowCow_seeWhatReachesThem() throws Exception {
        Path base = sparseBase();
        String before = TestFiles.sha256(base, BASE_SIZE);
        Path above = tmp.resolve("above.log");
        Path below = tmp.resolve("below.log");
        String file = "file:" + base;
        try (ServerProcess server = serve(
                "--export",
                "a=" + file,
                "--export",
                "b=" + file,
                "--export",
                "c=" + file,
                "--export",
                "d=" + file,
                "--filter",
                "a=log,file=" + above,
                "--filter",
                "a=cow",
                "--filter",
                "b=cow",
                "--filter",
                "b=log,file=" + below,
                "--filter",
                "c=error,rate=1",
                "--filter",
                "c=cow",
                "--filter",
                "d=cow",
                "--filter",
                "d=error,rate=1")) {
            String tail = " -> " + file + ", size 16M, read-write";
            assertThat(stackLine(server, "a"))
                    .isEqualTo("export \"a\": log(file=" + above + ") -> cow(overlay=memory)" + tail);
            assertThat(stackLine(server, "b"))
                    .isEqualTo("export \"b\": cow(overlay=memory) -> log(file=" + below + ")" + tail);
            assertThat(stackLine(server, "c")).isEqualTo("export \"c\": error(rate=1) -> cow(overlay=memory)" + tail);
            assertThat(stackLine(server, "d")).isEqualTo("export \"d\": cow(overlay=memory) -> error(rate=1)" + tail);

            String script = """
                    h = connect()
                    step('write', lambda: h.pwrite(blk(7), 0))
                    r = step('read written', lambda: h.pread(4096, 0))
                    print('written back', r == blk(7))
                    step('read base', lambda: h.pread(4096, MiB))
                    step('flush', h.flush)
                    h.shutdown()
                    """;
            List<String> a = python(uri(server, "a"), script);
            List<String> b = python(uri(server, "b"), script);
            List<String> c = python(uri(server, "c"), script);
            List<String> d = python(uri(server, "d"), script);

            List<String> allOk =
                    List.of("write ok", "read written ok", "written back True", "read base ok", "flush ok");
            assertThat(a).containsExactlyElementsOf(allOk);
            assertThat(b).containsExactlyElementsOf(allOk);
            assertThat(c)
                    .containsExactly(
                            "write EIO", "read written EIO", "written back False", "read base EIO", "flush ok");
            assertThat(d)
                    .containsExactly("write ok", "read written ok", "written back True", "read base EIO", "flush ok");
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
        assertThat(requests(Files.readAllLines(above)))
                .containsExactly(
                        "WRITE 0 4096 - OK", "READ 0 4096 - OK", "READ " + MiB + " 4096 - OK", "FLUSH 0 0 - OK");
        assertThat(requests(Files.readAllLines(below))).containsExactly("READ " + MiB + " 4096 - OK");
        assertThat(TestFiles.sha256(base, BASE_SIZE)).isEqualTo(before);
    }

    /**
     * {@code *=} applies a filter to every export, in command-line order with the named ones: here error on
     * both exports, above a cow that only {@code a} has.
     */
    @Test
    void everyExport_filterAppliesToEach_inCommandLineOrder() throws Exception {
        try (ServerProcess server = serve(
                "--export",
                "a=memory:16M",
                "--export",
                "b=memory:16M",
                "--filter",
                "*=error,rate=1,ops=write",
                "--filter",
                "a=cow")) {
            assertThat(stackLine(server, "a"))
                    .isEqualTo(
                            "export \"a\": error(rate=1,ops=write) -> cow(overlay=memory) -> memory:16M, size 16M, read-write");
            assertThat(stackLine(server, "b"))
                    .isEqualTo("export \"b\": error(rate=1,ops=write) -> memory:16M, size 16M, read-write");
            String script = """
                    h = connect()
                    step('write', lambda: h.pwrite(blk(3), 0))
                    print('read', h.pread(4096, 0) == bytes(4096))
                    h.shutdown()
                    """;
            assertThat(python(uri(server, "a"), script)).containsExactly("write EIO", "read True");
            assertThat(python(uri(server, "b"), script)).containsExactly("write EIO", "read True");
            assertThat(server.stop(STOP)).isIn(0, 143);
        }
    }

    /* --------------- command line --------------- */

    /** An unknown kind, an unknown key and an unknown export: one clear line, then the help hint; exit status 2. */
    @Test
    void cli_badFilter_oneLineErrorAndExitTwo() {
        assertUsageError(
                "vm=bogus",
                "mqnbd: --filter vm=bogus: filter: unknown kind \"bogus\" (expected: one of cow, rate, error, delay, log)");
        assertUsageError(
                "vm=cow,size=1G", "mqnbd: --filter vm=cow,size=1G: unknown key \"size\" (expected: cow takes overlay)");
        assertUsageError(
                "nope=cow",
                "mqnbd: --filter nope=cow: no export is named \"nope\" (expected: an export's name, or * for every export)");
        assertUsageError(
                "vm=rate,iops=0",
                "mqnbd: --export vm=memory:1M: filter rate: iops=0 (expected: a positive whole number)");
    }

    /** serve --help lists every filter kind with its keys and an example, on lines of their own. */
    @Test
    void cli_help_listsEveryFilterKind() {
        String out = Tool.run(
                        CLIENT_LIMIT, ServerProcess.command("serve", "--help").toArray(String[]::new))
                .assertSuccess()
                .stdout();

        assertThat(out)
                .contains(
                        "--filter=NAME=KIND[,key=value...]",
                        "overlay=memory|file:PATH",
                        "iops=N",
                        "rate=P",
                        "read=DURATION",
                        "file=PATH",
                        "e.g. --filter vm=delay,read=5ms,write=20ms");
        assertThat(out).doesNotContain("%n");
        for (String kind : List.of("cow", "rate", "error", "delay", "log")) {
            assertThat(out).containsPattern("(?m)^\\s+" + kind + ": \\S");
        }
    }

    private void assertUsageError(String filter, String message) {
        Tool.Result result = Tool.run(
                CLIENT_LIMIT,
                ServerProcess.command("serve", "--port", "0", "--export", "vm=memory:1M", "--filter", filter)
                        .toArray(String[]::new));

        assertThat(result.exitCode())
                .as("exit status for --filter %s: %s", filter, result.stderr())
                .isEqualTo(2);
        assertThat(result.stderr().lines().toList()).containsExactly(message, "Try 'mqnbd serve --help'.");
        assertThat(result.stdout()).isEmpty();
    }

    /**
     * A file overlay path that already exists (someone else's file) is refused with one line, and
     * left as it was. Exit status 1, as for a missing base image: the command line is well-formed, the file
     * system is not as it must be.
     */
    @Test
    void cli_existingOverlayFile_refused_fileLeftAlone() throws Exception {
        Path existing = tmp.resolve("left.overlay");
        Files.writeString(existing, "not an overlay");

        Tool.Result result = Tool.run(
                CLIENT_LIMIT,
                ServerProcess.command(
                                "serve",
                                "--port",
                                "0",
                                "--export",
                                "vm=memory:1M",
                                "--filter",
                                "vm=cow,overlay=file:" + existing)
                        .toArray(String[]::new));

        assertThat(result.exitCode()).as(result.stderr()).isEqualTo(1);
        assertThat(result.stderr().lines().toList())
                .containsExactly("mqnbd: filter cow: overlay file " + existing
                        + " exists (expected: a path to create; the overlay is scratch, unlinked once open)");
        assertThat(existing).hasContent("not an overlay");
    }

    /* --------------- helpers --------------- */

    private static ServerProcess serve(String... args) throws IOException, InterruptedException {
        List<String> all = new ArrayList<>(List.of("serve", "--port", "0"));
        all.addAll(List.of(args));
        return ServerProcess.start(all.toArray(String[]::new));
    }

    private static String uri(ServerProcess server, String export) {
        return "nbd://127.0.0.1:" + server.port() + "/" + export;
    }

    /** Returns the startup line that shows export {@code name}'s stack, from {@code export "NAME": } on. */
    private static String stackLine(ServerProcess server, String name) {
        String prefix = "export \"" + name + "\": ";
        return server.log()
                .lines()
                .filter(l -> l.contains(prefix))
                .map(l -> l.substring(l.indexOf(prefix)))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no stack line for " + name + ":\n" + server.log()));
    }

    /** Runs {@code script} after {@link #PRELUDE} with libnbd's Python binding; returns its output lines. */
    private static List<String> python(String uri, String script) {
        return Tool.run(CLIENT_LIMIT, PYTHON, "-c", PRELUDE + script, uri)
                .assertSuccess()
                .stdout()
                .lines()
                .toList();
    }

    /**
     * A 16 MiB read-only (0444) image: random data in [0, 4M) and [8M, 12M), holes in [4M, 8M) and
     * [12M, 16M).
     */
    private Path sparseBase() throws IOException {
        Path base = tmp.resolve("base.img");
        SplittableRandom random = new SplittableRandom(20261204L);
        byte[] chunk = new byte[(int) (4 * MiB)];
        try (RandomAccessFile f = new RandomAccessFile(base.toFile(), "rw")) {
            for (long at : new long[] {0, 8 * MiB}) {
                random.nextBytes(chunk);
                f.seek(at);
                f.write(chunk);
            }
            f.setLength(BASE_SIZE);
        }
        Files.setPosixFilePermissions(base, PosixFilePermissions.fromString("r--r--r--"));
        return base;
    }

    /**
     * Asserts that the server holds {@code file} open read-only only: {@code /proc/PID/fdinfo} shows the
     * open flags, so this holds even for root, whom the file's mode does not stop.
     */
    private static void assertOpenedReadOnly(ServerProcess server, Path file) throws IOException {
        long pid = server.process().pid();
        int opened = 0;
        try (Stream<Path> fds = Files.list(Path.of("/proc/" + pid + "/fd"))) {
            for (Path fd : fds.toList()) {
                Path target;
                try {
                    target = Files.readSymbolicLink(fd);
                } catch (IOException e) {
                    continue; // closed meanwhile
                }
                if (!target.equals(file)) {
                    continue;
                }
                String info = Files.readString(Path.of("/proc/" + pid + "/fdinfo/" + fd.getFileName()));
                Matcher m = Pattern.compile("(?m)^flags:\\s+([0-7]+)$").matcher(info);
                assertThat(m.find()).as(info).isTrue();
                assertThat(Integer.parseInt(m.group(1), 8) & 3)
                        .as("O_ACCMODE of fd %s (0: O_RDONLY)", fd)
                        .isZero();
                opened++;
            }
        }
        assertThat(opened).as("descriptors of %s held by the server", file).isPositive();
    }

    /** Returns what the server's file descriptors point to, as /proc shows it. */
    private static List<String> openFiles(ServerProcess server) throws IOException {
        List<String> targets = new ArrayList<>();
        try (Stream<Path> fds = Files.list(Path.of("/proc/" + server.process().pid() + "/fd"))) {
            for (Path fd : fds.toList()) {
                try {
                    targets.add(Files.readSymbolicLink(fd).toString());
                } catch (IOException e) {
                    // closed meanwhile
                }
            }
        }
        return targets;
    }

    /** nbdinfo --map, adjacent runs of the same type joined: "OFFSET LENGTH TYPE" per run. */
    private static List<String> map(String uri) {
        String out =
                Tool.run(CLIENT_LIMIT, "nbdinfo", "--map", uri).assertSuccess().stdout();
        List<long[]> runs = new ArrayList<>();
        List<String> types = new ArrayList<>();
        for (String line : out.lines().toList()) {
            String[] f = line.strip().split("\\s+", 4);
            long offset = Long.parseLong(f[0]);
            long length = Long.parseLong(f[1]);
            String type = f[3];
            int last = runs.size() - 1;
            if (last >= 0 && types.get(last).equals(type) && runs.get(last)[0] + runs.get(last)[1] == offset) {
                runs.get(last)[1] += length;
            } else {
                runs.add(new long[] {offset, length});
                types.add(type);
            }
        }
        List<String> result = new ArrayList<>();
        for (int i = 0; i < runs.size(); i++) {
            result.add(runs.get(i)[0] + " " + runs.get(i)[1] + " " + types.get(i));
        }
        return result;
    }

    /** What fio measured, summed over its jobs. */
    record FioResult(double iops, double bytesPerSecond, long runtimeMillis, int connections) {}

    private static final Pattern FIO_READ = Pattern.compile("\"read\" : \\{([^{}]*)");

    /**
     * Runs fio's nbd engine against {@code uri}: random reads of {@code bs} for 10 s by {@code jobs} jobs,
     * each with its own connection and 16 requests in flight, reported as one group.
     */
    private static FioResult fio(String uri, String bs, int jobs) {
        String out = Tool.run(
                        Duration.ofSeconds(90),
                        Fio.nbd(
                                "rate",
                                uri,
                                "--rw=randread",
                                "--bs=" + bs,
                                "--iodepth=16",
                                "--numjobs=" + jobs,
                                "--group_reporting",
                                "--time_based",
                                "--runtime=10",
                                "--output-format=json"))
                .assertSuccess()
                .stdout();
        int connections = (int)
                out.lines().filter(l -> l.contains("connected to NBD server")).count();
        Matcher m = FIO_READ.matcher(out);
        assertThat(m.find()).as("fio's JSON has a read section:\n%s", out).isTrue();
        String read = m.group(1);
        return new FioResult(
                number(read, "iops"), number(read, "bw_bytes"), (long) number(read, "runtime"), connections);
    }

    private static double number(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\" : ([0-9.]+)").matcher(json);
        assertThat(m.find()).as("%s in %s", key, json).isTrue();
        return Double.parseDouble(m.group(1));
    }
}
