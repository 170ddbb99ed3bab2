package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.TestDevice;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;

/**
 * A store that fails, hangs or loses replies: requests end with EIO in time (TestDevice fails any request
 * that takes 10 s), transient failures cost no error, and nothing acknowledged is lost.
 */
class S3FaultTest extends S3TestBase {
    private static final String TIMEOUT = "s3.timeout";

    /** A 1 MiB export of 64 KiB blocks behind a fault injector, with a 1 s request timeout. */
    private Opened faulty(String prefix, String... settings) throws Exception {
        String[] all = Arrays.copyOf(settings, settings.length + 2);
        all[settings.length] = TIMEOUT;
        all[settings.length + 1] = "1s";
        return open(spec(prefix, "create=1M,block-size=64K"), false, 2, true, all);
    }

    /** Reads the export under {@code prefix} from a fresh read-only instance, straight from the store. */
    private byte[] stored(String prefix, long offset, int length) throws Exception {
        return open(spec(prefix, ""), true, 1, false, "s3.read-ahead", "0")
                .dev()
                .read(offset, length);
    }

    @Test
    void storeDown_flushEndsWithEio_andDataIsStoredOnceItRecovers() throws Exception {
        String prefix = newPrefix("down");
        Opened o = faulty(prefix);
        byte[] data = TestDevice.random(1, 3 * K64);
        o.faults().failAlways(FaultyStore.Op.PUT);

        // The write is acknowledged from the cache; the FLUSH cannot be, and says so in time.
        o.dev().write(0, data);
        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);
        assertThat(o.dev().tryWrite(1, ReqFlags.FUA, 5L * K64, TestDevice.random(2, 10)))
                .isEqualTo(Status.IO_ERROR);
        assertThat(o.stats().uploadFailures()).isPositive();
        assertThat(logs.messages(Level.WARNING)).anySatisfy(m -> assertThat(m).contains("upload failed (injected"));

        o.faults().clear();
        assertThat(flush(o.dev(), 1)).isEqualTo(Status.OK);

        assertThat(stored(prefix, 0, data.length)).isEqualTo(data);
        assertThat(stored(prefix, 5L * K64, 10)).isEqualTo(TestDevice.random(2, 10));
        assertThat(logs.messages(Level.INFO)).anySatisfy(m -> assertThat(m).contains("succeed again"));
    }

    @Test
    void transientFailures_areRetried_withoutAnError() throws Exception {
        String prefix = newPrefix("transient");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, true);
        o.faults().failNext(FaultyStore.Op.PUT, 3);
        byte[] data = TestDevice.random(3, K64);

        o.dev().write(0, data);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);

        assertThat(o.faults().injected(FaultyStore.Op.PUT)).isEqualTo(3);
        assertThat(o.stats().uploadFailures()).isEqualTo(3);
        assertThat(o.stats().puts()).isEqualTo(4);
        assertThat(object(blockKey(prefix, 0))).isEqualTo(data);
    }

    @Test
    void lostReply_isRetried_andTheStoredDataIsRight() throws Exception {
        String prefix = newPrefix("lost-reply");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, true);
        o.faults().loseReplies(FaultyStore.Op.PUT, 1);
        byte[] data = TestDevice.random(4, K64 + 1);

        o.dev().write(0, ReqFlags.FUA, 0, data);

        assertThat(o.stats().puts()).isEqualTo(3);
        assertThat(object(blockKey(prefix, 0))).isEqualTo(Arrays.copyOf(data, K64));
        assertThat(stored(prefix, 0, data.length)).isEqualTo(data);
    }

    @Test
    void hungStore_flushStillEndsWithEio_thenRecovers() throws Exception {
        String prefix = newPrefix("hung");
        Opened o = faulty(prefix);
        byte[] data = TestDevice.random(5, K64);
        o.faults().hang(FaultyStore.Op.PUT, Duration.ofSeconds(3));

        o.dev().write(0, data);
        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);

        o.faults().clear();
        await("a flush to succeed once the store answers", 20, () -> flush(o.dev()) == Status.OK);
        assertThat(stored(prefix, 0, K64)).isEqualTo(data);
    }

    @Test
    void permanentFailure_failsTheFlushAtOnce() throws Exception {
        String prefix = newPrefix("denied");
        // The default 20 s timeout: only the permanent failure can end the FLUSH before TestDevice gives up.
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, true);
        o.faults().failPermanently(FaultyStore.Op.PUT);

        o.dev().write(0, TestDevice.random(6, 10));

        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);
        o.faults().clear();
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
    }

    @Test
    void getFailing_failsTheRead_inTime_thenReadsAgain() throws Exception {
        String prefix = newPrefix("get");
        byte[] data = TestDevice.random(7, 2 * K64);
        Opened writer = open(spec(prefix, "create=1M,block-size=64K"));
        writer.dev().write(0, data);
        writer.queue().close();
        Opened o = open(spec(prefix, ""), true, 1, true, TIMEOUT, "1s", "s3.read-ahead", "0");

        o.faults().failAlways(FaultyStore.Op.GET);
        assertThat(o.dev().tryRead(0, 0, 10)).isEqualTo(Status.IO_ERROR);
        o.faults().clear().delay(FaultyStore.Op.GET, Duration.ofSeconds(30));
        assertThat(o.dev().tryRead(0, K64, 10)).isEqualTo(Status.IO_ERROR);

        o.faults().clear();
        assertThat(o.dev().read(0, 2 * K64)).isEqualTo(data);
    }

    @Test
    void deleteFailing_failsTheFlush_thenTheObjectIsDeleted() throws Exception {
        String prefix = newPrefix("delete");
        Opened o = faulty(prefix);
        o.dev().write(0, TestDevice.random(8, 2 * K64));
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        o.faults().failAlways(FaultyStore.Op.DELETE);

        assertThat(o.dev().noData(ReqOp.DISCARD, 0, 0, 2 * K64)).isEqualTo(Status.OK);
        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);
        assertThat(keys(prefix + "/blocks/")).hasSize(2);

        o.faults().clear();
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(keys(prefix + "/blocks/")).isEmpty();
    }

    @Test
    void writesWaitingForRoom_endWithEio_whenUploadsCannotDrain() throws Exception {
        String prefix = newPrefix("room");
        Opened o = faulty(prefix, "s3.max-dirty", "128K");
        o.faults().failAlways(FaultyStore.Op.PUT);

        o.dev().write(0, TestDevice.random(9, 2 * K64));

        assertThat(o.dev().tryWrite(0, 0, 2L * K64, TestDevice.random(10, K64))).isEqualTo(Status.IO_ERROR);
        o.faults().clear();
        assertThat(o.dev().tryWrite(0, 0, 2L * K64, TestDevice.random(10, K64))).isEqualTo(Status.OK);
    }

    @Test
    void close_withStoreDown_savesTheDirtyBlocksToARescueFile_andKeepsTheLease() throws Exception {
        String prefix = newPrefix("close-down");
        Opened o = faulty(prefix);
        byte[] data = TestDevice.random(11, 2 * K64);
        o.dev().write(0, data);
        o.faults().failAlways(FaultyStore.Op.PUT);

        o.queue().close();

        String line = logs.messages(Level.SEVERE).stream()
                .filter(m -> m.contains("closing with 2 of 2 dirty blocks not stored"))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no rescue logged: " + logs.messages(Level.SEVERE)));
        assertThat(line).contains("saved 2 dirty blocks").contains("nothing acknowledged is lost");
        Map<Long, byte[]> rescued = rescued(line);
        assertThat(rescued.get(0L)).isEqualTo(Arrays.copyOfRange(data, 0, K64));
        assertThat(rescued.get(1L)).isEqualTo(Arrays.copyOfRange(data, K64, 2 * K64));
        // The store does not hold the export's last state: the lease is not released, it expires by itself.
        LeaseHolder.Held held = LeaseHolder.Held.parse(object(prefix + "/mqnbd-lease.json"));
        assertThat(held.released()).isFalse();
        assertThat(held.expired()).isFalse();
        assertThat(held.holder().name()).isEqualTo(o.export().leaseHolder().orElseThrow());
    }
}
