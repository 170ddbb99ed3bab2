package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.RecordingExtents;
import dev.mqnbd.storage.TestDevice;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.services.s3.model.S3Exception;

/** How reads reach the store: caching, read-ahead, de-duplicated GETs, block status and checksums. */
class S3ReadTest extends S3TestBase {
    /** Creates an export of 16 blocks of 64 KiB holding {@code data} and closes it; returns its prefix. */
    private String stored(String name, byte[] data) throws Exception {
        String prefix = newPrefix(name);
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        o.dev().write(0, data);
        o.queue().close();
        return prefix;
    }

    @Test
    void unsignedPayload_isAcceptedByTheStore_andReadsBackTheSame() throws Exception {
        // S3Proxy checks every request's SigV4 signature, so a wrongly signed upload would fail here.
        byte[] data = TestDevice.random(7, 1 << 20);
        String prefix = newPrefix("unsigned");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, false, S3Settings.UNSIGNED_PAYLOAD, "true");
        o.dev().write(0, data);
        o.queue().close();
        assertThat(o.stats().puts()).isEqualTo(16);

        Opened signed = open(spec(prefix, ""), true, 1, false);
        assertThat(signed.dev().read(0, 1 << 20)).isEqualTo(data);
    }

    /* --------------- read-ahead and cache --------------- */

    @Test
    void sequentialReads_fetchBlocksAhead() throws Exception {
        byte[] data = TestDevice.random(1, 1 << 20);
        String prefix = stored("read-ahead", data);
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "4");

        assertThat(o.dev().read(0, K64)).isEqualTo(java.util.Arrays.copyOf(data, K64));

        // Block 0 was read; blocks 1 to 4 are fetched in the background.
        await("read-ahead of blocks 1 to 4", 10, () -> o.stats().gets() == 5);
        for (int i = 1; i <= 4; i++) {
            assertThat(o.dev().read((long) i * K64, K64))
                    .isEqualTo(java.util.Arrays.copyOfRange(data, i * K64, (i + 1) * K64));
        }
        // Reading blocks 1 to 4 moved the window on: blocks 5 to 8 come next.
        await("read-ahead of blocks 5 to 8", 10, () -> o.stats().gets() == 9);
        assertThat(o.stats().readAheads()).isEqualTo(8);
    }

    @Test
    void readAheadBlocks_waitForTheirReader_whenTheCacheIsFullOfBlocksReadBefore() throws Exception {
        byte[] data = TestDevice.random(21, 1 << 20);
        String prefix = stored("ahead-full-cache", data);
        // A clean cache of four blocks, filled with blocks read three times each: newcomers read once rank
        // below them in the cache's admission policy.
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0", "s3.cache", "256K");
        BlockCache cache = o.export().cache;
        for (int round = 0; round < 3; round++) {
            for (int i = 3; i >= 0; i--) {
                o.dev().read((long) i * K64, K64);
            }
        }
        assertThat(o.stats().gets()).isEqualTo(4);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        for (int i = 8; i < 12; i++) {
            cache.fetchAhead(i, deadline);
        }
        assertThat(o.stats().gets()).isEqualTo(8);
        assertThat(cache.heldAhead()).isEqualTo(4);

        // Their reader comes after all four were fetched, and finds every one: no second GET.
        for (int i = 8; i < 12; i++) {
            assertThat(o.dev().read((long) i * K64, K64)).isEqualTo(Arrays.copyOfRange(data, i * K64, (i + 1) * K64));
        }
        assertThat(o.stats().gets()).isEqualTo(8);
        assertThat(o.stats().cacheMisses()).isEqualTo(4);
        // Read to their ends, they are released to the clean cache: nothing stays pinned.
        assertThat(cache.heldAhead()).isZero();
        assertThat(cache.liveIndexes(0, 16)).isEmpty();
    }

    @Test
    void readAheadBlocksNeverRead_areHeldUpToTheLimit_thenReleasedOldestFirst() throws Exception {
        byte[] data = TestDevice.random(22, 2 << 20);
        String prefix = newPrefix("ahead-limit");
        Opened writer = open(spec(prefix, "create=2M,block-size=64K"));
        writer.dev().write(0, data);
        writer.queue().close();
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "4", "s3.cache", "256K");
        BlockCache cache = o.export().cache;
        assertThat(cache.aheadLimit).isEqualTo(16);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        for (int i = 0; i < 20; i++) {
            cache.fetchAhead(i, deadline);
        }
        // At most the limit stays pinned: the four oldest went back to the clean cache.
        assertThat(cache.heldAhead()).isEqualTo(16);
        assertThat(cache.liveIndexes(0, 32)).containsExactly(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
        // A read of part of a held block keeps it held; a read to its end releases it.
        assertThat(o.dev().read(10L * K64, 100)).isEqualTo(Arrays.copyOfRange(data, 10 * K64, 10 * K64 + 100));
        assertThat(cache.heldAhead()).isEqualTo(16);
        assertThat(o.dev().read(10L * K64 + 100, K64 - 100))
                .isEqualTo(Arrays.copyOfRange(data, 10 * K64 + 100, 11 * K64));
        assertThat(cache.heldAhead()).isEqualTo(15);
        assertThat(o.stats().gets()).isEqualTo(20);
    }

    @Test
    void readAheadZero_fetchesOnlyWhatIsRead() throws Exception {
        String prefix = stored("no-read-ahead", TestDevice.random(2, 1 << 20));
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0");

        o.dev().read(0, K64);
        o.dev().read(K64, K64);
        Thread.sleep(200);

        assertThat(o.stats().gets()).isEqualTo(2);
    }

    @Test
    void cachedBlocks_areReadWithoutGets_andCacheOpFetches() throws Exception {
        byte[] data = TestDevice.random(3, 1 << 20);
        String prefix = stored("cache", data);
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0");

        assertThat(o.dev().noData(ReqOp.CACHE, 0, 4L * K64, 4 * K64)).isEqualTo(Status.OK);
        assertThat(o.stats().gets()).isEqualTo(4);
        assertThat(o.export().cachedBytes()).isEqualTo(4L * K64);

        assertThat(o.dev().read(4L * K64 + 3, 4 * K64 - 3))
                .isEqualTo(java.util.Arrays.copyOfRange(data, 4 * K64 + 3, 8 * K64));
        assertThat(o.dev().read(4L * K64, 10)).isEqualTo(java.util.Arrays.copyOfRange(data, 4 * K64, 4 * K64 + 10));
        assertThat(o.stats().gets()).isEqualTo(4);
    }

    @Test
    void evictedArrays_areReusedByGetsAndWholeWrites_withoutLeakingBytes() throws Exception {
        byte[] data = TestDevice.random(11, 1 << 20);
        String prefix = newPrefix("reuse");
        // 16 blocks of 64 KiB stored, and a short last block of 512 bytes after them.
        Opened writer = open(spec(prefix, "create=" + ((1 << 20) + 512) + ",block-size=64K"));
        writer.dev().write(0, data);
        writer.queue().close();
        // A clean cache of two blocks: reading 16 evicts 14, whose arrays the next GETs take.
        Opened o = open(spec(prefix, ""), false, 1, false, "s3.read-ahead", "0", "s3.cache", "128K");
        BlockBuffers buffers = o.export().cache.buffers;

        for (int i = 0; i < 16; i++) {
            assertThat(o.dev().read((long) i * K64, K64)).isEqualTo(Arrays.copyOfRange(data, i * K64, (i + 1) * K64));
        }
        // From the fourth GET on, each took the array of the block the previous one evicted.
        long afterReads = buffers.reused();
        assertThat(afterReads).isEqualTo(13);

        // A write of a whole block not in memory takes the one evicted array left in the pool and
        // overwrites every byte of it; a dirty block evicts nothing, so the next one takes a new array.
        int first = 2;
        while (o.export().cache.resident(first) || o.export().cache.resident(first + 1)) {
            first++;
        }
        byte[] whole = TestDevice.random(12, 2 * K64);
        o.dev().write((long) first * K64, Arrays.copyOfRange(whole, 0, K64));
        assertThat(buffers.reused()).isEqualTo(afterReads + 1);
        o.dev().write((long) (first + 1) * K64, Arrays.copyOfRange(whole, K64, 2 * K64));
        assertThat(buffers.reused()).isEqualTo(afterReads + 1);
        // A partial write of a block not in memory, and a whole write of the short last block: new arrays.
        int partial = first + 3;
        byte[] small = TestDevice.random(13, 100);
        o.dev().write((long) partial * K64 + 1000, small);
        byte[] last = TestDevice.random(14, 512);
        o.dev().write(16L * K64, last);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        byte[] expected = Arrays.copyOf(data, (1 << 20) + 512);
        System.arraycopy(whole, 0, expected, first * K64, whole.length);
        System.arraycopy(small, 0, expected, partial * K64 + 1000, small.length);
        System.arraycopy(last, 0, expected, 16 * K64, last.length);
        assertThat(o.dev().read(0, expected.length)).isEqualTo(expected);
        // No block object carries bytes of another block: each is its own part of the export, zero-padded.
        for (int i = 0; i <= 16; i++) {
            byte[] stored = object(blockKey(prefix, i));
            byte[] own = Arrays.copyOfRange(expected, i * K64, (i + 1) * K64);
            assertThat(stored).as("block object %d", i).isEqualTo(own);
        }
        Opened fresh = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0", "s3.cache", "128K");
        assertThat(fresh.dev().read(0, expected.length)).isEqualTo(expected);
    }

    @Test
    void concurrentReadsOfOneColdBlock_shareOneGet() throws Exception {
        byte[] data = TestDevice.random(4, 1 << 20);
        String prefix = stored("dedup", data);
        Opened o = open(spec(prefix, ""), true, 4, true, "s3.read-ahead", "0");
        o.faults().delay(FaultyStore.Op.GET, Duration.ofMillis(300));
        CountDownLatch go = new CountDownLatch(1);
        List<Future<byte[]>> reads = new ArrayList<>();
        try (ExecutorService threads = Executors.newFixedThreadPool(16)) {
            for (int i = 0; i < 16; i++) {
                int n = i;
                reads.add(threads.submit(() -> {
                    go.await();
                    return o.dev().read(n % 4, 5L * K64 + n * 100, 100);
                }));
            }
            go.countDown();
            for (int i = 0; i < 16; i++) {
                assertThat(reads.get(i).get())
                        .isEqualTo(java.util.Arrays.copyOfRange(data, 5 * K64 + i * 100, 5 * K64 + i * 100 + 100));
            }
        }
        assertThat(o.stats().gets()).isEqualTo(1);
    }

    @Test
    void blocksKnownAbsent_readAsZeroes_withoutGets() throws Exception {
        String prefix = newPrefix("absent");
        Opened o = open(spec(prefix, "create=1G"));

        assertThat(o.dev().read(123_456_789, 3 * M1)).isEqualTo(new byte[3 * M1]);
        assertThat(o.stats().gets()).isZero();
    }

    /* --------------- block status --------------- */

    @Test
    void blockStatus_reportsAbsentBlocksAsHoles() throws Exception {
        String prefix = newPrefix("status");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        o.dev().write(2L * K64 + 5, TestDevice.random(5, 10));
        o.dev().write(3L * K64, TestDevice.random(6, K64 + 1));
        o.dev().write(10L * K64, new byte[K64]);

        RecordingExtents extents = blockStatus(o, 100, (1 << 20) - 100);

        int hole = Extents.HOLE | Extents.ZERO;
        assertThat(extents.described())
                .containsExactly((2 * K64 - 100) + ":" + hole, (3 * K64) + ":0", (11 * K64) + ":" + hole);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        // The same once stored, from the listing of a fresh instance.
        Opened fresh = open(spec(prefix, ""), true, 1, false);
        assertThat(blockStatus(fresh, 0, 1 << 20).described())
                .containsExactly((2 * K64) + ":" + hole, (3 * K64) + ":0", (11 * K64) + ":" + hole);
        assertThat(fresh.stats().gets()).isZero();
    }

    private static RecordingExtents blockStatus(Opened o, long offset, long length) throws Exception {
        RecordingExtents extents = new RecordingExtents();
        CompletableFuture<Status> done = new CompletableFuture<>();
        Request<?> rq = o.queue().tryAllocate(0, r -> done.complete(r.status()));
        rq.prepare(ReqOp.BLOCK_STATUS, 0, offset, length, null).extents(extents);
        o.queue().submit(rq, true);
        assertThat(done.get(10, TimeUnit.SECONDS)).isEqualTo(Status.OK);
        return extents;
    }

    /* --------------- checksums --------------- */

    @Test
    void corruptBlockObject_failsTheRead_andIsLogged() throws Exception {
        byte[] data = TestDevice.random(7, 1 << 20);
        String prefix = stored("corrupt", data);
        String key = blockKey(prefix, 6);
        Map<String, String> meta = metadata(key);
        byte[] damaged = object(key);
        damaged[1000] ^= 1;
        // Same metadata (its CRC32C is the old bytes'), one bit changed.
        putObject(key, damaged, meta);
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0");

        assertThat(o.dev().tryRead(0, 6L * K64, 10)).isEqualTo(Status.IO_ERROR);

        assertThat(o.stats().checksumFailures()).isEqualTo(1);
        assertThat(logs.messages(Level.SEVERE))
                .anySatisfy(m -> assertThat(m)
                        .contains("block object s3://mqnbd-test/" + key + " is corrupt: CRC32C")
                        .contains("expected: " + meta.get("crc32c")));
        // The other blocks are fine.
        assertThat(o.dev().read(5L * K64, 10)).isEqualTo(java.util.Arrays.copyOfRange(data, 5 * K64, 5 * K64 + 10));
    }

    @Test
    void blockObjectOfWrongLength_failsTheRead() throws Exception {
        String prefix = stored("short", TestDevice.random(8, 1 << 20));
        putObject(blockKey(prefix, 1), new byte[100], Map.of("crc32c", Bytes.crc32c(new byte[100])));
        Opened o = open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0");

        assertThat(o.dev().tryRead(0, K64, 10)).isEqualTo(Status.IO_ERROR);
        assertThat(logs.messages(Level.SEVERE)).anySatisfy(m -> assertThat(m).contains("100 bytes (expected: 65536)"));
    }

    @Test
    void store_rejectsUploadWithWrongCrc32c() {
        String key = newPrefix("crc") + "/object";
        byte[] bytes = TestDevice.random(9, 1000);

        assertThatThrownBy(() -> proxy().s3()
                        .putObject(
                                b -> b.bucket(BUCKET)
                                        .key(key)
                                        .checksumCRC32C(SdkObjectStore.crc32c(TestDevice.random(10, 1000), null)),
                                RequestBody.fromBytes(bytes)))
                .isInstanceOf(S3Exception.class)
                .satisfies(e -> assertThat(((S3Exception) e).awsErrorDetails().errorCode())
                        .isEqualTo("BadDigest"));
        assertThat(object(key)).isNull();

        proxy().s3()
                .putObject(
                        b -> b.bucket(BUCKET).key(key).checksumCRC32C(SdkObjectStore.crc32c(bytes, null)),
                        RequestBody.fromBytes(bytes));
        assertThat(object(key)).isEqualTo(bytes);
    }
}
