package dev.mqnbd.storage.s3;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.mq.ThreadHctxExecutor;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import dev.mqnbd.storage.TestDevice;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.UnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.extension.ExtendWith;
import software.amazon.awssdk.core.ResponseBytes;
import software.amazon.awssdk.services.s3.model.GetObjectResponse;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;
import software.amazon.awssdk.services.s3.model.S3Object;

/**
 * What the S3 backend's tests share: the running S3Proxy, a fresh prefix per export, opening exports
 * through {@link S3Backend} (optionally behind a {@link FaultyStore}) on executors of their own, closing
 * them after the test, the log, and raw access to the objects.
 */
@ExtendWith(S3ProxyExtension.class)
abstract class S3TestBase {
    static final String BUCKET = S3ProxyServer.BUCKET;
    static final int QUEUE_DEPTH = 16;
    static final int K64 = 64 << 10;
    static final int M1 = 1 << 20;

    /** Where exports opened here save blocks they cannot store: under the build's target directory. */
    static final Path RESCUE_DIR = Path.of("target", "s3-rescue").toAbsolutePath();

    private static final AtomicInteger PREFIXES = new AtomicInteger();

    private final List<BlockQueue<?, ?, ?, ?>> queues = new ArrayList<>();
    private final List<ThreadHctxExecutor> executors = new ArrayList<>();
    final LogCapture logs = new LogCapture();

    /** An open export: the device to drive, its export, and its fault injector (if asked for). */
    record Opened(TestDevice dev, S3Export export, FaultyStore faults) {
        BlockQueue<?, ?, ?, ?> queue() {
            return dev.queue();
        }

        S3Stats stats() {
            return export.stats();
        }
    }

    @AfterEach
    final void closeExports() throws Exception {
        try {
            for (BlockQueue<?, ?, ?, ?> q : queues.reversed()) {
                q.close();
            }
            for (ThreadHctxExecutor e : executors) {
                e.close();
            }
        } finally {
            logs.close();
        }
    }

    static S3ProxyServer proxy() {
        return S3ProxyExtension.server();
    }

    /** Returns a prefix no other export of the run uses. */
    static String newPrefix(String name) {
        return "tests/" + name + "-" + PREFIXES.incrementAndGet();
    }

    /** Returns the spec (after {@code s3:}) of the export under {@code prefix}, with {@code options} appended. */
    static String spec(String prefix, String options) {
        return "//" + BUCKET + "/" + prefix + (options.isEmpty() ? "" : "," + options);
    }

    /** Returns options pointing at the proxy, plus {@code settings} given as key, value, key, value... */
    static DeviceOptions options(boolean readOnly, String... settings) {
        Map<String, String> all = new HashMap<>(proxy().settings());
        all.put(S3Settings.RESCUE_DIR, RESCUE_DIR.toString());
        for (int i = 0; i < settings.length; i += 2) {
            all.put(settings[i], settings[i + 1]);
        }
        return new DeviceOptions(readOnly, all);
    }

    /** Returns a queue setup whose executors are threads of their own, stopped after the test. */
    final QueueSetup setup(int hwQueues) {
        ThreadHctxExecutor[] ex = new ThreadHctxExecutor[hwQueues];
        for (int i = 0; i < hwQueues; i++) {
            ex[i] = new ThreadHctxExecutor("hctx-" + i);
            executors.add(ex[i]);
        }
        return new QueueSetup("test", hwQueues, QUEUE_DEPTH, i -> ex[i], Duration.ZERO);
    }

    /** Opens {@code spec} read-write on one context; closed after the test. */
    final Opened open(String spec, String... settings) throws Exception {
        return open(spec, false, 1, false, settings);
    }

    /**
     * Opens {@code spec}; closed after the test (unless the test closes it first).
     *
     * @param faulty whether to put a {@link FaultyStore} between the export and the store
     */
    final Opened open(String spec, boolean readOnly, int hwQueues, boolean faulty, String... settings)
            throws Exception {
        FaultyStore[] faults = new FaultyStore[1];
        UnaryOperator<ObjectStore> decorate = faulty ? s -> faults[0] = new FaultyStore(s) : UnaryOperator.identity();
        BlockQueue<S3HwData, S3Export, S3Export, S3RequestData> queue =
                S3Backend.open(spec, options(readOnly, settings), setup(hwQueues), decorate);
        queues.add(queue);
        return new Opened(new TestDevice(queue), queue.queueData(), faults[0]);
    }

    /** Returns the bytes of object {@code key}, or {@code null} when it does not exist. */
    static byte[] object(String key) {
        try {
            ResponseBytes<GetObjectResponse> r =
                    proxy().s3().getObjectAsBytes(b -> b.bucket(BUCKET).key(key));
            return r.asByteArray();
        } catch (NoSuchKeyException e) {
            return null;
        }
    }

    /** Returns the user metadata of object {@code key}. */
    static Map<String, String> metadata(String key) {
        return proxy().s3().headObject(b -> b.bucket(BUCKET).key(key)).metadata();
    }

    /** Stores {@code bytes} as {@code key} directly, with {@code metadata}. */
    static void putObject(String key, byte[] bytes, Map<String, String> metadata) {
        proxy().s3()
                .putObject(
                        b -> b.bucket(BUCKET).key(key).metadata(metadata),
                        software.amazon.awssdk.core.sync.RequestBody.fromBytes(bytes));
    }

    /** Returns the keys under {@code prefix}. */
    static List<String> keys(String prefix) {
        return proxy().s3().listObjectsV2Paginator(b -> b.bucket(BUCKET).prefix(prefix)).contents().stream()
                .map(S3Object::key)
                .toList();
    }

    /** Deletes every object under {@code prefix}, to keep the in-memory store small after big tests. */
    static void deleteAll(String prefix) {
        for (String key : keys(prefix)) {
            proxy().s3().deleteObject(b -> b.bucket(BUCKET).key(key));
        }
    }

    /** Submits a FLUSH on context {@code hctx} and returns its status. */
    static Status flush(TestDevice dev, int hctx) {
        return dev.submit(hctx, ReqOp.FLUSH, 0, 0, 0, null);
    }

    static Status flush(TestDevice dev) {
        return flush(dev, 0);
    }

    /** Returns the key of block {@code index} of the export under {@code prefix}. */
    static String blockKey(String prefix, long index) {
        return new ObjectNames(BUCKET, prefix).block(index);
    }

    /**
     * Returns the blocks of the rescue file that {@code logLine} names, by block index, as the rescue's
     * index file and its {@code .blocks} file say.
     */
    static Map<Long, byte[]> rescued(String logLine) throws IOException {
        Matcher file = Pattern.compile("rescue file (\\S+\\.txt)").matcher(logLine);
        if (!file.find()) {
            throw new AssertionError("no rescue file named in: " + logLine);
        }
        Path index = Path.of(file.group(1));
        byte[] blocks = Files.readAllBytes(Path.of(index.toString().replaceFirst("\\.txt$", ".blocks")));
        Pattern line = Pattern.compile("^block (\\d+) offset \\d+ length (\\d+) at (\\d+): dd ");
        Map<Long, byte[]> result = new LinkedHashMap<>();
        for (String l : Files.readAllLines(index)) {
            Matcher m = line.matcher(l);
            if (m.find()) {
                int length = Integer.parseInt(m.group(2));
                int at = Integer.parseInt(m.group(3));
                byte[] data = new byte[length];
                System.arraycopy(blocks, at, data, 0, length);
                result.put(Long.parseLong(m.group(1)), data);
            }
        }
        return result;
    }

    /** Waits until {@code condition} holds, failing after {@code seconds}; for background work, not timings. */
    static void await(String what, int seconds, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out after " + seconds + " s waiting for " + what);
            }
            Thread.sleep(20);
        }
    }
}
