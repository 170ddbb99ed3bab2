package dev.mqnbd.filter;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The request log's file: shared by every filter that names it, every queued line written on release. */
class LogSinkTest {
    @TempDir
    Path dir;

    private static LogSink.Entry entry(String export, int i) {
        return new LogSink.Entry(
                1_700_000_000_000_000_000L + i,
                export,
                "127.0.0.1:" + (40000 + i),
                0,
                i,
                ReqOp.WRITE.ordinal(),
                4096L * i,
                4096,
                ReqFlags.FUA,
                Status.OK,
                87_000);
    }

    @Test
    void twoExportsOnOneFile_shareOneSink_andEveryLineIsWhole() throws Exception {
        Path file = dir.resolve("requests.log");
        LogSink a = LogSink.acquire(file);
        LogSink b = LogSink.acquire(dir.resolve("./requests.log"));
        assertThat(b).isSameAs(a);

        Thread other = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < 20_000; i++) {
                b.offer(entry("b", i));
            }
        });
        for (int i = 0; i < 20_000; i++) {
            a.offer(entry("a", i));
        }
        other.join();
        a.release();
        assertThat(Files.exists(file)).isTrue();
        b.release();

        List<String> lines = Files.readAllLines(file);
        long dropped = a.dropped();
        assertThat(lines.stream().filter(l -> l.contains(" op=")).count() + dropped)
                .isEqualTo(40_000);
        assertThat(lines)
                .allMatch(l -> l.matches("\\S+ (export=[ab] conn=127\\.0\\.0\\.1:\\d+ hctx=0 tag=\\d+ op=WRITE"
                        + " offset=\\d+ length=4096 flags=fua status=OK latency_us=87|dropped=\\d+ .*)"));
        assertThat(LogSink.acquire(file))
                .as("a new sink after the last release")
                .isNotSameAs(a)
                .satisfies(s -> {
                    try {
                        s.release();
                    } catch (InterruptedException e) {
                        throw new AssertionError(e);
                    }
                });
    }

    @Test
    void format_isOneLineOfKeyValues() {
        StringBuilder sb = new StringBuilder();
        LogSink.format(
                new LogSink.Entry(
                        0,
                        "vm",
                        null,
                        1,
                        2,
                        ReqOp.WRITE_ZEROES.ordinal(),
                        0,
                        512,
                        ReqFlags.NO_UNMAP | ReqFlags.FAST_ZERO,
                        Status.NOT_SUPPORTED,
                        1_500),
                sb);
        assertThat(sb.toString())
                .isEqualTo("1970-01-01T00:00:00Z export=vm conn=- hctx=1 tag=2 op=WRITE_ZEROES offset=0"
                        + " length=512 flags=no_unmap|fast_zero status=NOT_SUPPORTED latency_us=1");
    }
}
