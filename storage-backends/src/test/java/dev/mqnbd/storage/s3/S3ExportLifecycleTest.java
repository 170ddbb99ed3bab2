package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.storage.Backends;
import dev.mqnbd.storage.TestDevice;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.logging.Level;
import org.junit.jupiter.api.Test;

/** Creating, reopening, refusing and overwriting S3 exports, and what their close does. */
class S3ExportLifecycleTest extends S3TestBase {
    /* --------------- create and reopen --------------- */

    @Test
    void create_writesMetadata_andOnlyTheMetadata() throws Exception {
        String prefix = newPrefix("create");

        Opened o = open(spec(prefix, "create=10G,block-size=4M"));

        assertThat(o.queue().limits().capacity()).isEqualTo(10L << 30);
        assertThat(o.export().blockSize()).isEqualTo(4 << 20);
        String json = new String(object(prefix + "/mqnbd-export.json"), StandardCharsets.UTF_8);
        assertThat(json)
                .contains(
                        "\"format\": \"mqnbd-s3-export\"",
                        "\"version\": 1",
                        "\"size\": 10737418240",
                        "\"blockSize\": 4194304",
                        "\"created\": ");
        assertThat(keys(prefix + "/"))
                .containsExactlyInAnyOrder(prefix + "/mqnbd-export.json", prefix + "/mqnbd-lease.json");
        assertThat(logs.messages(Level.INFO))
                .anySatisfy(m -> assertThat(m).contains("created s3://mqnbd-test/" + prefix));
    }

    @Test
    void create_defaultBlockSize_is1M() throws Exception {
        Opened o = open(spec(newPrefix("default"), "create=1G"));

        assertThat(o.export().blockSize()).isEqualTo(M1);
        assertThat(o.queue().limits().physicalBlockSize()).isEqualTo(M1);
    }

    @Test
    void reopen_sameSizeOrNoCreate_opensWithData() throws Exception {
        String prefix = newPrefix("reopen");
        Opened first = open(spec(prefix, "create=4M,block-size=64K"));
        byte[] data = TestDevice.random(1, 100_000);
        first.dev().write(12_345, data);
        first.queue().close();

        Opened same = open(spec(prefix, "create=4M,block-size=64K"));
        assertThat(same.dev().read(12_345, data.length)).isEqualTo(data);
        same.queue().close();

        Opened plain = open(spec(prefix, ""));
        assertThat(plain.queue().limits().capacity()).isEqualTo(4 << 20);
        assertThat(plain.dev().read(12_345, data.length)).isEqualTo(data);
    }

    @Test
    void open_throughBackends_withSchemePrefix() throws Exception {
        String prefix = newPrefix("backends");
        var queue = Backends.open("s3:" + spec(prefix, "create=1M,block-size=64K"), options(false), setup(1));
        try {
            assertThat(queue.limits().capacity()).isEqualTo(1 << 20);
            assertThat(queue.queueData()).isInstanceOf(S3Export.class);
        } finally {
            queue.close();
        }
    }

    @Test
    void open_emptyPrefix_usesTheBucketRoot() throws Exception {
        // A bucket of its own, since the root of the shared one is not ours to fill.
        proxy().s3().createBucket(b -> b.bucket("mqnbd-root"));
        Opened o = open("//mqnbd-root,create=1M,block-size=64K");
        o.dev().write(0, TestDevice.random(2, 10));
        o.queue().close();

        assertThat(proxy().s3().listObjectsV2(b -> b.bucket("mqnbd-root")).contents())
                .extracting(software.amazon.awssdk.services.s3.model.S3Object::key)
                .containsExactlyInAnyOrder("mqnbd-export.json", "mqnbd-lease.json", "blocks/0000000000000000");
    }

    /* --------------- refusals --------------- */

    @Test
    void open_missingWithoutCreate_saysHowToCreate() {
        String prefix = newPrefix("missing");

        assertThatThrownBy(() -> open(spec(prefix, "")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("s3 export s3://mqnbd-test/" + prefix + " does not exist")
                .hasMessageContaining(
                        "add ,create=SIZE to the spec to create it, e.g. s3://mqnbd-test/" + prefix + ",create=10G");
        // The lease taken for the attempt was given back.
        assertThat(LeaseHolder.Held.parse(object(prefix + "/mqnbd-lease.json")).released())
                .isTrue();
    }

    @Test
    void open_missingReadOnly_cannotCreate() {
        assertThatThrownBy(() -> open(spec(newPrefix("ro-create"), "create=1G"), true, 1, false))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("a read-only export cannot create it");
    }

    @Test
    void open_sizeMismatch_namesBoth_andSuggestsOverwrite() throws Exception {
        String prefix = newPrefix("mismatch");
        open(spec(prefix, "create=1G")).queue().close();

        assertThatThrownBy(() -> open(spec(prefix, "create=2G")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("exists with size 1G and block size 1M, but the spec asks for size 2G and block"
                        + " size 1M; add ,overwrite");
        assertThatThrownBy(() -> open(spec(prefix, "block-size=64K")))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("asks for size 1G and block size 64K");
        assertThatThrownBy(() -> open(spec(prefix, "create=1G,block-size=2M"), true, 1, false))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("block size 2M");
    }

    @Test
    void overwrite_deletesOldObjects_andCreatesAnew() throws Exception {
        String prefix = newPrefix("overwrite");
        Opened old = open(spec(prefix, "create=1M,block-size=64K"));
        old.dev().write(0, TestDevice.random(3, 1 << 20));
        old.queue().close();
        assertThat(keys(prefix + "/blocks/")).hasSize(16);

        Opened fresh = open(spec(prefix, "create=2M,block-size=128K,overwrite"));

        assertThat(fresh.queue().limits().capacity()).isEqualTo(2 << 20);
        assertThat(fresh.export().blockSize()).isEqualTo(128 << 10);
        assertThat(keys(prefix + "/blocks/")).isEmpty();
        assertThat(fresh.dev().read(0, 2 << 20)).isEqualTo(new byte[2 << 20]);
        assertThat(logs.messages(Level.WARNING)).anySatisfy(m -> assertThat(m).contains("overwrote"));
    }

    @Test
    void open_badSettings_isRefusedBeforeTouchingTheStore() {
        assertThatThrownBy(() -> open(spec(newPrefix("settings"), "create=1G"), "s3.timeout", "40s"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("s3.timeout");
        assertThatThrownBy(() -> open(spec(newPrefix("dirty"), "create=1G,block-size=4M"), "s3.max-dirty", "1M"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("s3.max-dirty: 1M (expected: at least the block size 4M");
    }

    @Test
    void open_damagedMetadata_isRefused() throws Exception {
        String prefix = newPrefix("damaged");
        putObject(
                prefix + "/mqnbd-export.json",
                "{\"format\": \"mqnbd-s3-export\", \"version\": 9}".getBytes(StandardCharsets.UTF_8),
                Map.of());

        assertThatThrownBy(() -> open(spec(prefix, ""), true, 1, false))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("format version 9");
    }

    @Test
    void open_leftoverBlocksWithoutMetadata_areDeletedOnCreate() throws Exception {
        String prefix = newPrefix("leftover");
        putObject(blockKey(prefix, 3), TestDevice.random(4, K64), Map.of());

        Opened o = open(spec(prefix, "create=1M,block-size=64K"));

        assertThat(keys(prefix + "/blocks/")).isEmpty();
        assertThat(o.dev().read(3L * K64, K64)).isEqualTo(new byte[K64]);
    }

    /* --------------- close --------------- */

    @Test
    void close_uploadsEveryDirtyBlock_andLogsTheCount() throws Exception {
        String prefix = newPrefix("close");
        Opened o = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] data = TestDevice.random(5, 5 * K64);
        o.dev().write(0, data);
        assertThat(o.stats().puts()).isLessThan(5);

        o.queue().close();

        assertThat(logs.messages(Level.INFO))
                .anySatisfy(m -> assertThat(m)
                        .matches("s3 export test: wrote \\d dirty blocks to s3://mqnbd-test/" + prefix
                                + " on close \\(\\d were" + " dirty\\).*everything written is stored"));
        assertThat(o.stats().puts()).isEqualTo(5);
        for (int i = 0; i < 5; i++) {
            assertThat(object(blockKey(prefix, i)))
                    .isEqualTo(java.util.Arrays.copyOfRange(data, i * K64, (i + 1) * K64));
        }
        // The lease is released, so another server may write at once.
        assertThat(LeaseHolder.Held.parse(object(prefix + "/mqnbd-lease.json")).released())
                .isTrue();
    }

    @Test
    void readOnly_takesNoLease_andServesReads() throws Exception {
        String prefix = newPrefix("ro");
        Opened writer = open(spec(prefix, "create=1M,block-size=64K"));
        byte[] data = TestDevice.random(6, 3000);
        writer.dev().write(100, data);
        assertThat(writer.dev().noData(ReqOp.FLUSH, 0, 0, 0)).isEqualTo(Status.OK);

        Opened reader = open(spec(prefix, ""), true, 1, false);

        assertThat(reader.export().leaseHolder()).isEmpty();
        assertThat(reader.queue().limits().readOnly()).isTrue();
        assertThat(reader.dev().read(100, data.length)).isEqualTo(data);
        assertThat(reader.dev().tryWrite(0, 0, 0, data)).isEqualTo(Status.READ_ONLY);
    }
}
