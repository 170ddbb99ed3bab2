package dev.mqnbd.storage.s3;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.mq.Feature;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.BlockDeviceContract;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.TestDevice;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The S3 device against the {@link BlockDeviceContract}, on S3Proxy, in 64 KiB blocks so that the
 * contract's 1 MiB devices span many block objects (and the odd size ends in a partial block).
 */
@ExtendWith(S3ProxyExtension.class)
class S3BlockDeviceTest extends BlockDeviceContract {
    private static final AtomicInteger EXPORTS = new AtomicInteger();

    private final List<String> prefixes = new ArrayList<>();

    @Override
    protected Backend backend() {
        return new S3Backend();
    }

    /** Creates the export by writing its metadata directly, so that a read-only open finds it too. */
    @Override
    protected String spec(long size) {
        String prefix = "contract/" + EXPORTS.incrementAndGet();
        prefixes.add(prefix);
        ExportMetadata meta = new ExportMetadata(size, S3TestBase.K64, ExportMetadata.VERSION, Instant.now());
        S3TestBase.putObject(new ObjectNames(S3TestBase.BUCKET, prefix).metadata(), meta.toJson(), Map.of());
        return S3TestBase.spec(prefix, "");
    }

    @Override
    protected DeviceOptions options(boolean readOnly) {
        Map<String, String> settings = new HashMap<>(S3ProxyExtension.server().settings());
        settings.put(S3Settings.TIMEOUT, "8s");
        return new DeviceOptions(readOnly, settings);
    }

    /** Deletes the exports' objects, so the in-memory store stays small. */
    @Override
    protected void cleanup() {
        for (String prefix : prefixes) {
            for (String key : S3TestBase.keys(prefix + "/")) {
                S3ProxyExtension.server()
                        .s3()
                        .deleteObject(b -> b.bucket(S3TestBase.BUCKET).key(key));
            }
        }
    }

    @Test
    void limits_byteAddressable_blockObjectsPhysical_withS3Features() throws Exception {
        TestDevice dev = open(1 << 20);

        assertThat(dev.queue().limits().logicalBlockSize()).isEqualTo(1);
        assertThat(dev.queue().limits().physicalBlockSize()).isEqualTo(S3TestBase.K64);
        assertThat(dev.queue().limits().discardGranularity()).isEqualTo(S3TestBase.K64);
        assertThat(dev.queue().limits().maxTransferBytes()).isEqualTo(64 << 20);
        assertThat(dev.queue().limits().features())
                .contains(
                        Feature.FLUSH,
                        Feature.FUA,
                        Feature.DISCARD,
                        Feature.WRITE_ZEROES,
                        Feature.FAST_ZERO,
                        Feature.CACHE,
                        Feature.BLOCK_STATUS,
                        Feature.SHARED_FLUSH);
    }
}
