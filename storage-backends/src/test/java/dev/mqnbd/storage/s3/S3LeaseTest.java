package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.TestDevice;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;
import java.util.Map;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;

/** One writer at a time: the write lease, its renewal, takeover and loss. */
class S3LeaseTest extends S3TestBase {
    private static void putLease(String prefix, String holder, Instant expires) {
        String json =
                "{\"holder\": \"" + holder + "\", \"expires\": " + expires.toEpochMilli() + ", \"ttlMillis\": 30000}";
        putObject(prefix + "/mqnbd-lease.json", json.getBytes(StandardCharsets.UTF_8), Map.of());
    }

    private static String leaseJson(String prefix) {
        byte[] lease = object(prefix + "/mqnbd-lease.json");
        return lease == null ? null : new String(lease, StandardCharsets.UTF_8);
    }

    @Test
    void secondWriter_isRefused_namingTheHolder() throws Exception {
        String prefix = newPrefix("second");
        Opened first = open(spec(prefix, "create=1M,block-size=64K"));
        String holder = first.export().leaseHolder().orElseThrow();

        assertThat(holder)
                .contains("mqnbd on ")
                .contains("pid " + ProcessHandle.current().pid())
                .contains("lease ");
        assertThat(leaseJson(prefix)).contains(holder);
        assertThatThrownBy(() -> open(spec(prefix, "")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(
                        "s3 export s3://mqnbd-test/" + prefix + " is being served for writing by " + holder)
                .hasMessageContaining("serve the export read-only");
        // The refused server did not disturb the holder.
        assertThat(first.dev().tryWrite(0, 0, 0, TestDevice.random(1, 10))).isEqualTo(Status.OK);
        assertThat(flush(first.dev())).isEqualTo(Status.OK);
    }

    @Test
    void readOnly_opensAlongsideTheWriter() throws Exception {
        String prefix = newPrefix("alongside");
        Opened writer = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] data = TestDevice.random(2, 5000);
        writer.dev().write(7, data);
        assertThat(flush(writer.dev())).isEqualTo(Status.OK);

        Opened reader = open(spec(prefix, ""), true, 1, false);

        assertThat(reader.dev().read(7, data.length)).isEqualTo(data);
        assertThat(writer.export().writable()).isTrue();
    }

    @Test
    void expiredLease_isTakenOver_andLogged() throws Exception {
        String prefix = newPrefix("expired");
        open(spec(prefix, "create=1M,block-size=64K")).queue().close();
        putLease(prefix, "ghost-server", Instant.now().minusSeconds(5));

        Opened o = open(spec(prefix, ""));

        assertThat(o.export().writable()).isTrue();
        assertThat(leaseJson(prefix))
                .contains(o.export().leaseHolder().orElseThrow())
                .doesNotContain("ghost-server");
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m).contains("took over the expired write lease of ghost-server"));
    }

    @Test
    void liveLeaseOfAnotherServer_isRefused_evenForCreate() {
        String prefix = newPrefix("live");
        putLease(prefix, "ghost-server", Instant.now().plusSeconds(60));

        assertThatThrownBy(() -> open(spec(prefix, "create=1M")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("is being served for writing by ghost-server");
        assertThat(object(prefix + "/mqnbd-export.json")).isNull();
    }

    @Test
    void lease_isRenewedWhileServing() throws Exception {
        String prefix = newPrefix("renew");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), "s3.lease-ttl", "3s");
        String before = leaseJson(prefix);

        await("two renewals", 15, () -> o.export().lease().renewals() >= 2);

        assertThat(leaseJson(prefix))
                .isNotEqualTo(before)
                .contains(o.export().leaseHolder().orElseThrow());
        assertThat(o.export().writable()).isTrue();
        assertThat(o.dev().tryWrite(0, 0, 0, TestDevice.random(3, 10))).isEqualTo(Status.OK);
    }

    @Test
    void lostLease_stopsWritesAndFlushes_andNamesTheNewHolder() throws Exception {
        String prefix = newPrefix("lost");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), "s3.lease-ttl", "3s");
        o.dev().write(0, TestDevice.random(4, 10));

        // Another server takes the lease (as it would after believing it expired).
        putLease(prefix, "thief-server", Instant.now().plusSeconds(60));

        await("the lease to be lost", 15, () -> !o.export().writable());
        assertThat(o.dev().tryWrite(0, 0, 0, TestDevice.random(5, 10))).isEqualTo(Status.IO_ERROR);
        assertThat(flush(o.dev())).isEqualTo(Status.IO_ERROR);
        assertThat(logs.messages(Level.SEVERE))
                .anySatisfy(m -> assertThat(m)
                        .contains("its write lease was taken by thief-server")
                        .contains("every write, trim and flush fails with EIO"));
        assertThat(logs.messages(Level.WARNING)).anySatisfy(m -> assertThat(m).contains("refuses writes"));
        // Reads still work, and the new holder's lease is left alone on close.
        assertThat(o.dev().read(0, 10)).hasSize(10);
        o.queue().close();
        assertThat(leaseJson(prefix)).contains("thief-server");
    }

    @Test
    void leaseThatCannotBeRenewed_lapses_refusesWrites_andIsRenewedOnceTheStoreAnswers() throws Exception {
        String prefix = newPrefix("unrenewable");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, true, "s3.lease-ttl", "2s");
        byte[] data = TestDevice.random(6, 3 * K64);
        o.faults().failAlways(FaultyStore.Op.PUT);
        o.dev().write(0, data);
        o.faults().failAlways(FaultyStore.Op.CONDITIONAL_PUT);

        await("the lease to lapse", 15, () -> !o.export().writable());
        assertThat(o.dev().tryWrite(0, 0, 0, TestDevice.random(7, 10))).isEqualTo(Status.IO_ERROR);
        await(
                "the lapse to be logged",
                15,
                () -> logs.messages(Level.SEVERE).stream()
                        .anyMatch(m -> m.contains("its write lease lapsed: it could not be renewed in time")
                                && m.contains("the dirty data is kept")));
        assertThat(o.export().dirtyBlocks()).isEqualTo(3);

        o.faults().clear();
        await("the lease to be renewed again", 15, () -> o.export().writable());
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        assertThat(o.dev().tryWrite(0, 0, 0, TestDevice.random(7, 10))).isEqualTo(Status.OK);
        assertThat(flush(o.dev())).isEqualTo(Status.OK);
        o.queue().close();

        byte[] expected = data.clone();
        System.arraycopy(TestDevice.random(7, 10), 0, expected, 0, 10);
        assertThat(open(spec(prefix, ""), true, 1, false).dev().read(0, data.length))
                .isEqualTo(expected);
        assertThat(logs.messages(Level.WARNING))
                .anySatisfy(m -> assertThat(m).contains("renewed the write lease again after it lapsed"));
    }

    @Test
    void lostLease_savesTheDirtyBlocksToARescueFile_andSaysWhere() throws Exception {
        String prefix = newPrefix("rescue");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"), false, 1, true, "s3.lease-ttl", "3s");
        byte[] data = TestDevice.random(8, 2 * K64);
        o.faults().failAlways(FaultyStore.Op.PUT);
        o.dev().write(3L * K64, data);

        putLease(prefix, "thief-server", Instant.now().plusSeconds(60));

        await(
                "the rescue to be logged",
                15,
                () -> logs.messages(Level.SEVERE).stream().anyMatch(m -> m.contains("rescue file")));
        String line = logs.messages(Level.SEVERE).stream()
                .filter(m -> m.contains("rescue file"))
                .findFirst()
                .orElseThrow();
        assertThat(line)
                .contains("its write lease went to another server")
                .contains("saved 2 dirty blocks")
                .contains("nothing acknowledged is lost");
        Map<Long, byte[]> rescued = rescued(line);
        assertThat(rescued).containsOnlyKeys(3L, 4L);
        assertThat(rescued.get(3L)).isEqualTo(Arrays.copyOfRange(data, 0, K64));
        assertThat(rescued.get(4L)).isEqualTo(Arrays.copyOfRange(data, K64, 2 * K64));

        // Closing saves nothing twice, and leaves the new holder's lease and data alone.
        o.queue().close();
        assertThat(logs.messages(Level.SEVERE).stream().filter(m -> m.contains("rescue file")))
                .hasSize(1);
        assertThat(leaseJson(prefix)).contains("thief-server");
        assertThat(keys(prefix + "/blocks/")).isEmpty();
    }
}
