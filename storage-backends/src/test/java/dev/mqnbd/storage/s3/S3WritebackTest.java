package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.TestDevice;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;

/** How writes become block objects: what is stored, deleted, coalesced, and when FLUSH and FUA may end. */
class S3WritebackTest extends S3TestBase {
    /* --------------- request counts --------------- */

    @Test
    void sequentialWrite_256MiB_in1MiBBlocks_costsAbout256Puts() throws Exception {
        String prefix = newPrefix("seq256");
        Opened o = open(spec(prefix, "create=256M"), "s3.cache", "16M");
        int chunk = 256 << 10;
        for (long offset = 0; offset < (256L << 20); offset += chunk) {
            byte[] data = TestDevice.random(offset, chunk);
            o.dev().write(offset, data);
        }
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        // One PUT per block, give or take a block the writeback caught half written.
        assertThat(o.stats().puts()).isBetween(256L, 280L);
        assertThat(o.stats().gets()).isZero();
        assertThat(o.stats().deletes()).isZero();
        assertThat(keys(prefix + "/blocks/")).hasSize(256);
        assertThat(object(blockKey(prefix, 77))).isEqualTo(expected(77L * M1, M1, chunk));
        o.queue().close();
        deleteAll(prefix + "/");
    }

    /** The bytes {@link #sequentialWrite_256MiB_in1MiBBlocks_costsAbout256Puts} wrote at {@code [offset, +length)}. */
    private static byte[] expected(long offset, int length, int chunk) {
        byte[] out = new byte[length];
        for (int done = 0; done < length; done += chunk) {
            System.arraycopy(TestDevice.random(offset + done, chunk), 0, out, done, chunk);
        }
        return out;
    }

    @Test
    void zeroes_256MiB_toNewExport_costNothing() throws Exception {
        String prefix = newPrefix("zero256");
        Opened o = open(spec(prefix, "create=256M"));
        byte[] zeroes = new byte[M1];
        for (long offset = 0; offset < (256L << 20); offset += M1) {
            o.dev().write(offset, zeroes);
        }
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(o.stats().puts()).isZero();
        assertThat(o.stats().deleteRequests()).isZero();
        assertThat(o.stats().gets()).isZero();
        assertThat(keys(prefix + "/blocks/")).isEmpty();
    }

    @Test
    void writeOfZeroes_overStoredBlocks_deletesThem() throws Exception {
        String prefix = newPrefix("zero-delete");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        o.dev().write(0, TestDevice.random(1, K64));
        o.dev().write(K64 + 100, TestDevice.random(2, 100));
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(keys(prefix + "/blocks/")).containsExactly(blockKey(prefix, 0), blockKey(prefix, 1));

        // A whole block of zeroes, and zeroes over the only non-zero bytes of a block.
        o.dev().write(0, new byte[K64]);
        o.dev().write(K64 + 100, new byte[100]);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(o.stats().puts()).isEqualTo(2);
        assertThat(o.stats().deletes()).isEqualTo(2);
        assertThat(keys(prefix + "/blocks/")).isEmpty();
        assertThat(o.dev().read(0, 2 * K64)).isEqualTo(new byte[2 * K64]);
    }

    /* --------------- trim and write zeroes --------------- */

    @Test
    void trim_deletesWholeBlocks_andZeroesThePartialEnds() throws Exception {
        String prefix = newPrefix("trim");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] model = TestDevice.random(3, 4 * K64);
        o.dev().write(0, model);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(o.dev().noData(ReqOp.DISCARD, 0, K64 / 2, 3 * K64)).isEqualTo(Status.OK);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        Arrays.fill(model, K64 / 2, K64 / 2 + 3 * K64, (byte) 0);
        assertThat(keys(prefix + "/blocks/")).containsExactly(blockKey(prefix, 0), blockKey(prefix, 3));
        assertThat(object(blockKey(prefix, 0))).isEqualTo(Arrays.copyOfRange(model, 0, K64));
        assertThat(object(blockKey(prefix, 3))).isEqualTo(Arrays.copyOfRange(model, 3 * K64, 4 * K64));
        assertThat(o.stats().deletes()).isEqualTo(2);
        assertThat(o.dev().read(0, 4 * K64)).isEqualTo(model);
    }

    @Test
    void writeZeroes_fastZero_refusesPartialStoredBlocks_andChangesNothing() throws Exception {
        String prefix = newPrefix("fast-zero");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] data = TestDevice.random(4, 2 * K64);
        o.dev().write(0, data);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, ReqFlags.FAST_ZERO, 100, K64))
                .isEqualTo(Status.NOT_SUPPORTED);
        assertThat(o.dev().read(0, 2 * K64)).isEqualTo(data);

        // Whole blocks, and partial ends in blocks known not to exist, are fast.
        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, ReqFlags.FAST_ZERO, K64, K64))
                .isEqualTo(Status.OK);
        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, ReqFlags.FAST_ZERO, 5 * K64 + 1, 10))
                .isEqualTo(Status.OK);
        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, ReqFlags.FUA | ReqFlags.NO_UNMAP, 0, K64))
                .isEqualTo(Status.OK);
        assertThat(keys(prefix + "/blocks/")).isEmpty();
    }

    /* --------------- read-modify-write --------------- */

    @Test
    void partialWrites_concurrentToOneBlock_loseNothing() throws Exception {
        String prefix = newPrefix("rmw");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] model = TestDevice.random(5, K64);
        first.dev().write(0, model);
        first.queue().close();

        // A cold instance: the writers fill a partial block without a GET; the last slice, not written,
        // comes from the store when the FLUSH uploads the block, read once under the block's lock.
        Opened o = open(spec(prefix, ""), false, 4, true);
        o.faults().delay(FaultyStore.Op.GET, Duration.ofMillis(200));
        int slices = 64;
        int slice = K64 / slices;
        CountDownLatch go = new CountDownLatch(1);
        List<Future<Status>> results = new ArrayList<>();
        try (ExecutorService threads = Executors.newFixedThreadPool(slices)) {
            for (int i = 0; i < slices - 1; i++) {
                int n = i;
                byte[] bytes = TestDevice.random(100 + n, slice);
                System.arraycopy(bytes, 0, model, n * slice, slice);
                results.add(threads.submit(() -> {
                    go.await();
                    return o.dev().tryWrite(n % 4, 0, (long) n * slice, bytes);
                }));
            }
            go.countDown();
            for (Future<Status> r : results) {
                assertThat(r.get()).isEqualTo(Status.OK);
            }
        }
        assertThat(o.stats().gets()).isZero();
        assertThat(flush(o.dev(), 3)).isEqualTo(Status.OK);

        assertThat(o.stats().gets()).isEqualTo(1);
        assertThat(o.stats().mergeGets()).isEqualTo(1);
        assertThat(object(blockKey(prefix, 0))).isEqualTo(model);
        assertThat(open(spec(prefix, ""), true, 1, false).dev().read(0, K64)).isEqualTo(model);
    }

    @Test
    void partialWrite_needsNoGet_untilItsBlockIsUploaded() throws Exception {
        String prefix = newPrefix("no-get");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] model = TestDevice.random(6, 2 * K64);
        first.dev().write(0, model);
        first.queue().close();

        Opened o = open(spec(prefix, ""));
        byte[] whole = TestDevice.random(7, K64);
        o.dev().write(0, whole);
        byte[] part = TestDevice.random(8, 10);
        o.dev().write(K64 + 10, part);
        assertThat(o.stats().gets()).isZero();
        // Reading back what was written needs no GET either.
        assertThat(o.dev().read(K64 + 10, 10)).isEqualTo(part);
        assertThat(o.stats().gets()).isZero();

        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        System.arraycopy(whole, 0, model, 0, K64);
        System.arraycopy(part, 0, model, K64 + 10, 10);
        assertThat(o.stats().gets()).isEqualTo(1);
        assertThat(o.stats().puts()).isEqualTo(2);
        assertThat(object(blockKey(prefix, 1))).isEqualTo(Arrays.copyOfRange(model, K64, 2 * K64));
        assertThat(o.dev().read(0, 2 * K64)).isEqualTo(model);
    }

    @Test
    void sequential128KWrites_at64KOffset_overAPopulatedExport_costNoGet_andOnePutPerBlock() throws Exception {
        String prefix = newPrefix("straddle");
        Opened first = open(spec(prefix, "create=8M"));
        byte[] model = TestDevice.random(20, 8 * M1);
        first.dev().write(0, model);
        first.queue().close();

        // 128 KiB writes from 64K to 7M + 64K: blocks 1 to 6 are filled whole, block 0 and 7 only in part.
        Opened o = open(spec(prefix, ""));
        int chunk = 128 << 10;
        for (long offset = K64; offset < 7L * M1 + K64; offset += chunk) {
            byte[] data = TestDevice.random(offset, chunk);
            o.dev().write(offset, data);
            System.arraycopy(data, 0, model, (int) offset, chunk);
        }
        assertThat(o.stats().gets()).isZero();
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        // Only the two partial ends needed the store's bytes, at their upload.
        assertThat(o.stats().gets()).isEqualTo(2);
        assertThat(o.stats().mergeGets()).isEqualTo(2);
        assertThat(o.stats().puts()).isEqualTo(8);
        for (int block = 0; block < 8; block++) {
            assertThat(object(blockKey(prefix, block)))
                    .as("block %d", block)
                    .isEqualTo(Arrays.copyOfRange(model, block * M1, (block + 1) * M1));
        }
        assertThat(o.dev().read(0, 8 * M1)).isEqualTo(model);
    }

    @Test
    void partialBlock_readOfAPartNotWritten_mergesTheStoredBytes_withOneGet() throws Exception {
        String prefix = newPrefix("partial-read");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] model = TestDevice.random(21, K64);
        first.dev().write(0, model);
        first.queue().close();

        Opened o = open(spec(prefix, ""), "s3.read-ahead", "0");
        byte[] a = TestDevice.random(22, 4096);
        byte[] b = TestDevice.random(23, 100);
        o.dev().write(4096, a);
        o.dev().write(30000, b);
        System.arraycopy(a, 0, model, 4096, a.length);
        System.arraycopy(b, 0, model, 30000, b.length);
        assertThat(o.stats().gets()).isZero();

        // Straddles written and unwritten bytes: the stored ones fill the gaps, the written ones win.
        assertThat(o.dev().read(0, K64)).isEqualTo(model);
        assertThat(o.stats().gets()).isEqualTo(1);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.stats().gets()).isEqualTo(1);
        assertThat(o.stats().mergeGets()).isZero();
        assertThat(object(blockKey(prefix, 0))).isEqualTo(model);
    }

    @Test
    void partialBlock_whoseGetFails_failsTheFlush_keepsItsData_andIsStoredOnceTheStoreAnswers() throws Exception {
        String prefix = newPrefix("partial-get-fails");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] model = TestDevice.random(24, K64);
        first.dev().write(0, model);
        first.queue().close();

        Opened o = open(spec(prefix, ""), false, 1, true, "s3.timeout", "1s");
        byte[] part = TestDevice.random(25, 1000);
        o.dev().write(5000, part);
        System.arraycopy(part, 0, model, 5000, part.length);
        o.faults().failAlways(FaultyStore.Op.GET);

        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);
        assertThat(o.stats().puts()).isZero();
        assertThat(o.export().dirtyBlocks()).isEqualTo(1);
        // The written bytes are still there: a read of them needs no GET.
        assertThat(o.dev().read(5000, part.length)).isEqualTo(part);

        o.faults().clear();
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(object(blockKey(prefix, 0))).isEqualTo(model);
    }

    @Test
    void partialBlock_savedToARescueFile_holdsOnlyThePartsWritten() throws Exception {
        String prefix = newPrefix("partial-rescue");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        first.dev().write(0, TestDevice.random(26, K64));
        first.queue().close();

        Opened o = open(spec(prefix, ""), false, 1, true, "s3.timeout", "1s");
        byte[] part = TestDevice.random(27, 300);
        o.dev().write(K64 - 300, part);
        o.faults().failAlways(FaultyStore.Op.GET).failAlways(FaultyStore.Op.PUT);

        o.queue().close();

        String line = logs.messages(Level.SEVERE).stream()
                .filter(m -> m.contains("saved 1 dirty blocks"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no rescue logged: " + logs.messages(Level.SEVERE)));
        String index = Files.readString(Path.of(line.replaceFirst("(?s).*rescue file (\\S+\\.txt).*", "$1")));
        assertThat(index).contains("block 0 offset " + (K64 - 300) + " length 300 at 0: dd ");
        assertThat(rescued(line).get(0L)).isEqualTo(part);
    }

    /* --------------- durability --------------- */

    @Test
    void flush_onAnyContext_makesWritesOfEveryContextDurable() throws Exception {
        String prefix = newPrefix("flush");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 3, false);
        byte[] a = TestDevice.random(9, 3 * K64 + 5);
        byte[] b = TestDevice.random(10, 1000);
        o.dev().write(0, 0, 0, a);
        o.dev().write(1, 0, 8L * K64 + 77, b);

        assertThat(flush(o.dev(), 2)).isEqualTo(Status.OK);

        assertThat(o.export().dirtyBlocks()).isZero();
        Opened fresh = open(spec(prefix, ""), true, 1, false);
        assertThat(fresh.dev().read(0, a.length)).isEqualTo(a);
        assertThat(fresh.dev().read(8L * K64 + 77, b.length)).isEqualTo(b);
        assertThat(fresh.stats().gets()).isEqualTo(5);
    }

    @Test
    void fuaWrite_isStoredBeforeItEnds() throws Exception {
        String prefix = newPrefix("fua");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] data = TestDevice.random(11, K64 + 10);

        o.dev().write(0, ReqFlags.FUA, 2L * K64, data);

        assertThat(object(blockKey(prefix, 2))).isEqualTo(Arrays.copyOfRange(data, 0, K64));
        assertThat(Arrays.copyOfRange(object(blockKey(prefix, 3)), 0, 10))
                .isEqualTo(Arrays.copyOfRange(data, K64, K64 + 10));
        assertThat(metadata(blockKey(prefix, 2))).containsKey("crc32c");
    }

    @Test
    void flushes_ofOneBatch_shareOneBarrier() throws Exception {
        String prefix = newPrefix("batch");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        o.dev().write(0, TestDevice.random(13, 3 * K64));
        List<CompletableFuture<Status>> done = new ArrayList<>();
        List<Request<?>> batch = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            CompletableFuture<Status> f = new CompletableFuture<>();
            done.add(f);
            Request<?> rq = o.queue().tryAllocate(0, r -> f.complete(r.status()));
            rq.prepare(ReqOp.FLUSH, 0, 0, 0, null);
            batch.add(rq);
        }

        // One socket read with three FLUSH commands: the last one closes the batch.
        for (int i = 0; i < 3; i++) {
            o.queue().submit(batch.get(i), i == 2);
        }

        for (CompletableFuture<Status> f : done) {
            assertThat(f.get(10, TimeUnit.SECONDS)).isEqualTo(Status.OK);
        }
        assertThat(o.stats().flushBarriers()).isEqualTo(1);
        assertThat(keys(prefix + "/blocks/")).hasSize(3);
    }

    @Test
    void flush_withNothingDirty_endsAtOnce_withoutRequests() throws Exception {
        Opened o = open(spec(newPrefix("idle"), "create=1M,block-size=64K"));

        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.stats().puts() + o.stats().deleteRequests()).isZero();
    }

    /* --------------- back-pressure --------------- */

    @Test
    void dirtyBound_makesWritersWait_andIsKept() throws Exception {
        String prefix = newPrefix("bound");
        Opened o = open(spec(prefix, "create=4M,block-size=64K"), false, 1, true, "s3.max-dirty", "256K");
        o.faults().delay(FaultyStore.Op.PUT, Duration.ofMillis(100));
        byte[] model = TestDevice.random(12, 2 << 20);

        for (int offset = 0; offset < model.length; offset += K64) {
            o.dev().write(offset, Arrays.copyOfRange(model, offset, offset + K64));
            assertThat(o.export().dirtyBytes()).isLessThanOrEqualTo((256 << 10) + K64);
        }

        assertThat(o.stats().dirtyWaits()).isPositive();
        assertThat(o.stats().maxDirtyBytes()).isLessThanOrEqualTo((256 << 10) + K64);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.dev().read(0, model.length)).isEqualTo(model);
        assertThat(o.stats().puts()).isEqualTo(32);
    }

    @Test
    void streamingWriter_waitsForUploads_atTheWindow_andLosesNothing() throws Exception {
        String prefix = newPrefix("window");
        // Two uploads in flight: two blocks written whole may wait for one before the writer waits.
        Opened o = open(spec(prefix, "create=4M,block-size=64K"), false, 1, true, "s3.uploads", "2");
        o.faults().delay(FaultyStore.Op.PUT, Duration.ofMillis(50));
        DirtyBlocks dirty = o.export().cache.dirty;
        byte[] model = TestDevice.random(21, 2 << 20);

        for (int offset = 0; offset < model.length; offset += K64) {
            o.dev().write(offset, Arrays.copyOfRange(model, offset, offset + K64));
            assertThat(dirty.fullBacklog()).as("after the write at %d", offset).isLessThanOrEqualTo(2);
        }

        assertThat(o.stats().streamWaits()).isPositive();
        // The window and the uploads in flight, not the 32 blocks written (the dirty bound is far above).
        assertThat(o.stats().maxDirtyBytes()).isLessThanOrEqualTo(5L * K64);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.stats().puts()).isEqualTo(32);
        assertThat(open(spec(prefix, ""), true, 1, false).dev().read(0, model.length))
                .isEqualTo(model);
    }

    @Test
    void streamingWriter_toAStoreThatStopsAnswering_isAbsorbedByTheDirtyBound_notHeldAtTheWindow() throws Exception {
        String prefix = newPrefix("stall");
        Opened o = open(spec(prefix, "create=4M,block-size=64K"), false, 1, true, "s3.uploads", "2");
        o.faults().hold(FaultyStore.Op.PUT);
        byte[] model = TestDevice.random(22, 1 << 20);

        // Every PUT hangs: the writer waits at the window until the uploads count as stalled, then goes on.
        for (int offset = 0; offset < model.length; offset += K64) {
            o.dev().write(offset, Arrays.copyOfRange(model, offset, offset + K64));
        }

        assertThat(o.stats().streamWaits()).isPositive();
        assertThat(o.export().dirtyBytes()).isEqualTo(model.length);
        o.faults().release(FaultyStore.Op.PUT);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.export().dirtyBytes()).isZero();
        assertThat(open(spec(prefix, ""), true, 1, false).dev().read(0, model.length))
                .isEqualTo(model);
    }
}
