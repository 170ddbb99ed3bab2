package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.TestDevice;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import org.junit.jupiter.api.Test;

/**
 * Large trims: recorded in a tombstone before they are answered, their objects deleted in the
 * background, newer writes kept, and unfinished deletes resumed by the next server.
 */
class S3TrimTest extends S3TestBase {
    /** Blocks written before the trims: well over {@link Trims#MIN_BLOCKS}. */
    private static final int BLOCKS = 200;

    /** Opens a 16 MiB export in 64 KiB blocks behind a {@link FaultyStore} and stores {@link #BLOCKS} blocks. */
    private Opened populated(String prefix) throws Exception {
        Opened o = open(spec(prefix, "create=16M,block-size=64K"), false, 1, true);
        o.dev().write(0, TestDevice.random(1, BLOCKS * K64));
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(keys(prefix + "/blocks/")).hasSize(BLOCKS);
        return o;
    }

    private static byte[] zeroes(int length) {
        return new byte[length];
    }

    @Test
    void largeTrim_answersBeforeItsDeletes_readsZeroesMeanwhile_thenDeletesEverything() throws Exception {
        String prefix = newPrefix("trim-large");
        Opened o = populated(prefix);
        o.faults().hold(FaultyStore.Op.DELETE);

        // Every DELETE is held until released (or its 20 s timeout): the trim must not wait for one.
        assertThat(o.dev().noData(ReqOp.DISCARD, 0, 0, 16L << 20)).isEqualTo(Status.OK);
        assertThat(keys(prefix + "/trims/")).hasSize(1);
        assertThat(keys(prefix + "/blocks/")).hasSize(BLOCKS);

        long getsBefore = o.stats().gets();
        assertThat(o.dev().read(5L * K64, 2 * K64)).isEqualTo(zeroes(2 * K64));
        assertThat(o.dev().read(100L * K64 + 7, 1000)).isEqualTo(zeroes(1000));
        assertThat(o.stats().gets()).isEqualTo(getsBefore);
        // Nothing is dirty: a FLUSH does not wait for the deletes either.
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.export().pendingTrimDeletes()).isPositive();

        o.faults().release(FaultyStore.Op.DELETE);
        await(
                "background deletes",
                30,
                () -> keys(prefix + "/blocks/").isEmpty()
                        && keys(prefix + "/trims/").isEmpty());
        assertThat(o.export().pendingTrimDeletes()).isZero();
        // One batch, or two when the deleter began while the trim was still marking its blocks.
        assertThat(o.stats().deleteRequests()).isBetween(1L, 2L);
        assertThat(o.dev().read(0, 4 * K64)).isEqualTo(zeroes(4 * K64));
    }

    @Test
    void smallTrim_keepsTheWritebackPath_withoutATombstone() throws Exception {
        String prefix = newPrefix("trim-small");
        Opened o = populated(prefix);

        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, 0, 0, 10L * K64)).isEqualTo(Status.OK);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(keys(prefix + "/trims/")).isEmpty();
        assertThat(keys(prefix + "/blocks/")).hasSize(BLOCKS - 10).doesNotContain(blockKey(prefix, 9));
        assertThat(o.dev().read(0, 10 * K64)).isEqualTo(zeroes(10 * K64));
    }

    @Test
    void writeDuringTheBackgroundDelete_waitsForIt_andSurvives() throws Exception {
        String prefix = newPrefix("trim-write-inflight");
        Opened o = populated(prefix);
        o.faults().hold(FaultyStore.Op.DELETE);
        assertThat(o.dev().noData(ReqOp.DISCARD, 0, 0, (long) BLOCKS * K64)).isEqualTo(Status.OK);
        await("the background DELETE to start", 10, () -> o.faults().calls(FaultyStore.Op.DELETE) > 0);

        byte[] whole = TestDevice.random(7, K64);
        byte[] part = TestDevice.random(8, 100);
        o.dev().write(7L * K64, whole);
        o.dev().write(150L * K64 + 10, part);
        CompletableFuture<Status> flushed = CompletableFuture.supplyAsync(() -> flush(o.dev()));
        // Give the writeback time to try its PUTs while the DELETE that covers them is held.
        Thread.sleep(300);
        o.faults().release(FaultyStore.Op.DELETE);
        assertThat(flushed.get(30, TimeUnit.SECONDS)).isEqualTo(Status.OK);

        await("background deletes", 30, () -> keys(prefix + "/trims/").isEmpty());
        assertThat(keys(prefix + "/blocks/")).containsExactly(blockKey(prefix, 7), blockKey(prefix, 150));
        assertThat(object(blockKey(prefix, 7))).isEqualTo(whole);
        byte[] expected150 = zeroes(K64);
        System.arraycopy(part, 0, expected150, 10, part.length);
        assertThat(object(blockKey(prefix, 150))).isEqualTo(expected150);
    }

    @Test
    void writeBeforeTheBackgroundDelete_claimsIt_andTheTombstoneKeepsIt() throws Exception {
        String prefix = newPrefix("trim-write-pending");
        Opened o = populated(prefix);
        o.faults().failAlways(FaultyStore.Op.DELETE);
        assertThat(o.dev().noData(ReqOp.DISCARD, 0, 0, (long) BLOCKS * K64)).isEqualTo(Status.OK);

        byte[] data = TestDevice.random(33, K64);
        o.dev().write(33L * K64, data);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        List<String> trims = keys(prefix + "/trims/");
        assertThat(trims).hasSize(1);
        assertThat(new String(object(trims.getFirst()), StandardCharsets.UTF_8)).contains("\"kept\": \"33\"");

        o.faults().clear();
        await("background deletes", 30, () -> keys(prefix + "/trims/").isEmpty());
        assertThat(keys(prefix + "/blocks/")).containsExactly(blockKey(prefix, 33));
        assertThat(object(blockKey(prefix, 33))).isEqualTo(data);
    }

    @Test
    void reopen_readsTombstonedBlocksAsZeroes_andResumesTheDeletes_keepingNewerWrites() throws Exception {
        String prefix = newPrefix("trim-reopen");
        Opened o = populated(prefix);
        o.faults().failAlways(FaultyStore.Op.DELETE);
        assertThat(o.dev().noData(ReqOp.WRITE_ZEROES, 0, 0, 16L << 20)).isEqualTo(Status.OK);
        byte[] data = TestDevice.random(9, K64);
        o.dev().write(9L * K64, data);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        o.queue().close();
        // Nothing was deleted: the stale objects and the record of the trim are left for the next server.
        assertThat(keys(prefix + "/blocks/")).hasSize(BLOCKS);
        assertThat(keys(prefix + "/trims/")).hasSize(1);

        Opened reader = open(spec(prefix, ""), true, 1, false);
        assertThat(reader.dev().read(0, 9 * K64)).isEqualTo(zeroes(9 * K64));
        assertThat(reader.dev().read(9L * K64, K64)).isEqualTo(data);
        assertThat(reader.dev().read(150L * K64, K64)).isEqualTo(zeroes(K64));
        assertThat(reader.stats().gets()).isEqualTo(1);
        assertThat(reader.export().pendingTrimDeletes()).isEqualTo(BLOCKS - 1);
        reader.queue().close();
        assertThat(keys(prefix + "/blocks/")).hasSize(BLOCKS);

        Opened again = open(spec(prefix, ""));
        await("resumed deletes", 30, () -> keys(prefix + "/trims/").isEmpty());
        assertThat(keys(prefix + "/blocks/")).containsExactly(blockKey(prefix, 9));
        assertThat(again.dev().read(0, 10 * K64)).isEqualTo(concat(zeroes(9 * K64), data));
        assertThat(again.export().pendingTrimDeletes()).isZero();
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = new byte[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void tombstone_roundTrip_keepsRanges() throws Exception {
        Tombstone t = new Tombstone(7, 10, 300, Instant.parse("2026-12-05T09:00:00Z"));
        LongStream.of(12, 40, 41, 42, 43, 299).forEach(t::keep);
        assertThat(Tombstone.ranges(new TreeSet<>(List.of(12L, 40L, 41L, 42L, 43L, 299L))))
                .isEqualTo("12,40-43,299");
        MemoryStore store = new MemoryStore();
        ObjectNames names = new ObjectNames("b", "p");
        t.persist(store, names, t.changes(), Duration.ofSeconds(1));
        Tombstone back = Tombstone.parse(
                "x", store.get(names.trim(7), Duration.ofSeconds(1)).data(), 300);
        assertThat(back.seq).isEqualTo(7);
        assertThat(back.first).isEqualTo(10);
        assertThat(back.end).isEqualTo(300);
        assertThat(LongStream.range(0, 300).filter(back::keeps).boxed().toList())
                .containsExactly(12L, 40L, 41L, 42L, 43L, 299L);
    }
}
