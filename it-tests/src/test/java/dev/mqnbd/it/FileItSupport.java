package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the file-export ITs share: libnbd Python scripts for concurrent FUA writers and their check, the
 * file system's own view of a file's holes, and the totals line a file export logs when it stops.
 */
final class FileItSupport {
    /** Block {@code i} of seed {@code s} is sha256("s:i") repeated to 4 KiB: checkable without keeping it. */
    private static final String BLOCKS = """
            import hashlib, sys, threading, nbd
            BS = 4096
            def block(seed, i):
                return hashlib.sha256((seed + ':' + str(i)).encode()).digest() * (BS // 32)
            """;

    /**
     * argv: URI CONNECTIONS WRITES_PER_CONNECTION DEPTH SEED. Each connection writes its own blocks with
     * FUA, DEPTH in flight; prints "acked I I I ..." for every write the server acknowledged, even when the
     * server dies half way.
     */
    private static final String FUA_WRITERS = BLOCKS + """
            uri, conns, per, depth, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
            acked = [[] for _ in range(conns)]
            errors = []
            def worker(c):
                try:
                    h = nbd.NBD()
                    h.connect_uri(uri)
                    pending = {}
                    nxt = 0
                    while nxt < per or pending:
                        while nxt < per and len(pending) < depth:
                            i = c * per + nxt
                            buf = nbd.Buffer.from_bytearray(bytearray(block(seed, i)))
                            pending[h.aio_pwrite(buf, i * BS, flags=nbd.CMD_FLAG_FUA)] = (i, buf)
                            nxt += 1
                        h.poll(-1)
                        for cookie in list(pending):
                            if h.aio_command_completed(cookie):
                                acked[c].append(pending.pop(cookie)[0])
                except Exception as e:
                    errors.append(repr(e))
            threads = [threading.Thread(target=worker, args=(c,)) for c in range(conns)]
            for t in threads: t.start()
            for t in threads: t.join()
            print('acked ' + ' '.join(str(i) for a in acked for i in a))
            print('errors %d' % len(errors))
            """;

    /** argv: URI SEED ACKED_FILE. Reads back every acknowledged block; prints "checked N bad M". */
    private static final String VERIFY = BLOCKS + """
            uri, seed, path = sys.argv[1], sys.argv[2], sys.argv[3]
            acked = [int(x) for x in open(path).read().split()]
            h = nbd.NBD()
            h.connect_uri(uri)
            bad = [i for i in acked if h.pread(BS, i * BS) != block(seed, i)]
            print('checked %d bad %d first %s' % (len(acked), len(bad), bad[:5]))
            """;

    /** argv: FILE. Prints "OFFSET LENGTH data|hole" runs from SEEK_DATA / SEEK_HOLE. */
    private static final String SEEK_MAP = """
            import os, sys
            fd = os.open(sys.argv[1], os.O_RDONLY)
            size = os.fstat(fd).st_size
            pos = 0
            while pos < size:
                try:
                    data = os.lseek(fd, pos, os.SEEK_DATA)
                except OSError:
                    data = size
                if data > pos:
                    print(pos, data - pos, 'hole'); pos = data; continue
                hole = os.lseek(fd, pos, os.SEEK_HOLE)
                print(pos, hole - pos, 'data'); pos = hole
            """;

    /** Debian's python3, which has libnbd's module; the JDK looks commands up on the test JVM's PATH. */
    private static final String PYTHON =
            Files.isExecutable(Path.of("/usr/bin/python3")) ? "/usr/bin/python3" : "python3";

    private static final Pattern TOTALS =
            Pattern.compile("file export \\S+: (\\d+) writes \\((\\d+) with FUA\\).*?, (\\d+) fdatasync calls");

    private FileItSupport() {}

    /** Totals from the line a file export logs on stop. */
    record Totals(long writes, long fuaWrites, long fdatasyncs) {}

    /** Runs the FUA writers; returns the indices of the blocks the server acknowledged. */
    static List<Integer> fuaWriters(String uri, int connections, int perConnection, int depth, String seed) {
        String out = Tool.run(
                        Duration.ofMinutes(3),
                        PYTHON,
                        "-c",
                        FUA_WRITERS,
                        uri,
                        Integer.toString(connections),
                        Integer.toString(perConnection),
                        Integer.toString(depth),
                        seed)
                .assertSuccess()
                .stdout();
        List<Integer> acked = new ArrayList<>();
        for (String line : out.split("\n")) {
            if (line.startsWith("acked")) {
                for (String i : line.substring(5).strip().split(" ")) {
                    if (!i.isEmpty()) {
                        acked.add(Integer.parseInt(i));
                    }
                }
            }
        }
        return acked;
    }

    /** Asserts that every block in {@code acked} reads back as written. */
    static void assertBlocks(String uri, String seed, List<Integer> acked, Path scratch) throws Exception {
        Path list = Files.createTempFile(scratch, "acked", ".txt");
        Files.writeString(
                list, String.join(" ", acked.stream().map(String::valueOf).toList()));
        String out = Tool.run(Duration.ofMinutes(3), PYTHON, "-c", VERIFY, uri, seed, list.toString())
                .assertSuccess()
                .stdout();
        assertThat(out.strip()).startsWith("checked " + acked.size() + " bad 0 ");
    }

    /** Returns the file's runs as the file system reports them, adjacent runs of one kind merged. */
    static List<String> seekMap(Path file) {
        String out = Tool.run(PYTHON, "-c", SEEK_MAP, file.toString())
                .assertSuccess()
                .stdout();
        List<long[]> runs = new ArrayList<>();
        for (String line : out.strip().split("\n")) {
            String[] f = line.split(" ");
            runs.add(new long[] {Long.parseLong(f[0]), Long.parseLong(f[1]), f[2].equals("hole") ? 1 : 0});
        }
        return merge(runs);
    }

    /** Merges adjacent runs of one kind; returns "OFFSET LENGTH data|hole" strings. */
    static List<String> merge(List<long[]> runs) {
        List<long[]> merged = new ArrayList<>();
        for (long[] r : runs) {
            long[] last = merged.isEmpty() ? null : merged.get(merged.size() - 1);
            if (last != null && last[2] == r[2] && last[0] + last[1] == r[0]) {
                last[1] += r[1];
            } else {
                merged.add(r.clone());
            }
        }
        return merged.stream()
                .map(r -> r[0] + " " + r[1] + " " + (r[2] == 1 ? "hole" : "data"))
                .toList();
    }

    /** Returns the kilobytes {@code du} says the file occupies on disk. */
    static long duKiB(Path file) {
        String out = Tool.run("du", "-k", file.toString()).assertSuccess().stdout();
        return Long.parseLong(out.split("\\s+")[0]);
    }

    /** Finds the totals line a file export logged when it stopped. */
    static Totals totals(String log) {
        Matcher m = TOTALS.matcher(log);
        assertThat(m.find()).as("totals line in the log:%n%s", log).isTrue();
        return new Totals(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3)));
    }
}
