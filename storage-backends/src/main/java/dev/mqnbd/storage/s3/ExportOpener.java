package dev.mqnbd.storage.s3;

import dev.mqnbd.storage.Sizes;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * Opens the export an {@link S3Spec} names: takes the write lease (unless read-only), reads the
 * metadata, creates or overwrites the export when the spec asks, checks the geometry against the spec,
 * lists the block objects that exist and reads the records of trims whose deletes are unfinished ({@link
 * Trims#load}). Every refusal is an {@link IOException} whose message names
 * the export and says what to do; whatever was taken is given back first.
 *
 * <p>The lease comes first, so that two servers never create or overwrite one export at once.
 */
final class ExportOpener {
    private static final System.Logger LOG = System.getLogger(ExportOpener.class.getName());

    private ExportOpener() {}

    /**
     * Opens the export of {@code spec} in {@code store} as export {@code name}.
     *
     * <p><b>Ownership:</b> on success the export owns {@code store}; on failure the caller still does.
     *
     * @throws IOException if another server writes the export, it is missing (without {@code create=}),
     *     its metadata disagrees with the spec (without {@code overwrite}), is damaged, or the store
     *     cannot be reached
     * @throws IllegalArgumentException if {@code s3.max-dirty} is smaller than the export's block size
     */
    static S3Export open(
            ObjectStore store, S3Spec spec, S3Settings settings, boolean readOnly, String name, S3Stats stats)
            throws IOException {
        ObjectNames names = spec.names();
        Duration timeout = settings.timeout();
        if (readOnly && spec.overwrite()) {
            throw new IOException("s3 export " + names + ": overwrite needs write access (drop ,overwrite or serve the"
                    + " export read-write)");
        }
        Lease lease = readOnly ? null : Lease.acquire(store, names, name, settings.leaseTtl(), timeout);
        try {
            ExportMetadata meta = readMetadata(store, names, timeout);
            if (meta != null && spec.overwrite()) {
                int deleted = deleteExport(store, names, timeout);
                LOG.log(
                        Level.WARNING,
                        "s3 export " + name + ": overwrote " + names + " (" + meta.describe() + ", created "
                                + meta.created() + "): deleted " + deleted + " objects");
                meta = null;
            }
            BlockMap map;
            Trims trims;
            if (meta == null) {
                meta = create(store, spec, readOnly, name, timeout);
                map = new BlockMap(meta.blockCount());
                trims = Trims.none(name, names, store, stats, meta.blockCount(), timeout);
            } else {
                checkGeometry(spec, meta);
                map = list(store, names, meta, timeout);
                trims = Trims.load(name, names, store, stats, meta, map, timeout);
            }
            if (!readOnly && settings.maxDirtyBytes() < meta.blockSize()) {
                throw new IllegalArgumentException(S3Settings.MAX_DIRTY + ": " + Sizes.format(settings.maxDirtyBytes())
                        + " (expected: at least the block size " + Sizes.format(meta.blockSize()) + " of " + names
                        + ")");
            }
            LOG.log(
                    Level.INFO,
                    "s3 export " + name + ": opened " + names + " in " + store.describe() + " ("
                            + meta.describe() + ", " + map.count() + " of " + meta.blockCount() + " blocks stored"
                            + (readOnly
                                    ? ", read-only"
                                    : ", write lease held by "
                                            + Objects.requireNonNull(lease).holder())
                            + ")");
            return new S3Export(name, names, store, settings, meta, map, trims, lease, readOnly, stats);
        } catch (IOException | RuntimeException e) {
            if (lease != null) {
                lease.close();
            }
            throw e;
        }
    }

    /** Reads the metadata object; returns {@code null} when it does not exist. */
    static @Nullable ExportMetadata readMetadata(ObjectStore store, ObjectNames names, Duration timeout)
            throws IOException {
        ObjectStore.StoredObject object = store.get(names.metadata(), timeout);
        return object == null
                ? null
                : ExportMetadata.parse("s3://" + names.bucket() + "/" + names.metadata(), object.data());
    }

    private static ExportMetadata create(
            ObjectStore store, S3Spec spec, boolean readOnly, String name, Duration timeout) throws IOException {
        ObjectNames names = spec.names();
        if (spec.createSize().isEmpty()) {
            throw new IOException("s3 export " + names + " does not exist (no " + names.metadata() + " in "
                    + store.describe() + "); add ,create=SIZE to the spec to create it, e.g. s3:" + "//"
                    + names.bucket() + (names.prefix().isEmpty() ? "" : "/" + names.prefix()) + ",create=10G");
        }
        if (readOnly) {
            throw new IOException("s3 export " + names + " does not exist, and a read-only export cannot create it");
        }
        long size = spec.createSize().getAsLong();
        int blockSize = spec.blockSizeOrDefault();
        if ((size + blockSize - 1) / blockSize > ExportMetadata.MAX_BLOCKS) {
            throw new IOException("s3 export " + names + ": create=" + Sizes.format(size) + " needs more than "
                    + ExportMetadata.MAX_BLOCKS + " blocks of " + Sizes.format(blockSize) + " (expected: a larger"
                    + " block-size)");
        }
        // Block objects and trim records left by an export whose metadata was deleted would read as its
        // data: remove them.
        int stale = deleteKeys(store, listKeys(store, names.blocks(), timeout), timeout)
                + deleteKeys(store, listKeys(store, names.trims(), timeout), timeout);
        if (stale > 0) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + name + ": deleted " + stale + " block objects left under " + names
                            + " without metadata");
        }
        ExportMetadata meta = new ExportMetadata(size, blockSize, ExportMetadata.VERSION, Instant.now());
        try {
            store.putIfAbsent(names.metadata(), meta.toJson(), timeout);
        } catch (StoreException e) {
            if (e.preconditionFailed()) {
                throw new IOException(
                        "s3 export " + names + " was created by someone else while this server created"
                                + " it; open it again",
                        e);
            }
            throw new IOException("s3 export " + names + ": cannot create its metadata: " + e.getMessage(), e);
        }
        LOG.log(Level.INFO, "s3 export " + name + ": created " + names + " (" + meta.describe() + ")");
        return meta;
    }

    private static void checkGeometry(S3Spec spec, ExportMetadata meta) throws IOException {
        long size = spec.createSize().orElse(meta.size());
        int blockSize = spec.blockSize().orElse(meta.blockSize());
        if (size == meta.size() && blockSize == meta.blockSize()) {
            return;
        }
        throw new IOException("s3 export " + spec.names() + " exists with " + meta.describe() + ", but the spec asks"
                + " for size " + Sizes.format(size) + " and block size " + Sizes.format(blockSize) + "; add ,overwrite"
                + " to delete it and create it anew (its data is lost), or fix the spec");
    }

    /** Lists the block objects into a map; keys under {@code blocks/} that are not blocks of this geometry are ignored. */
    private static BlockMap list(ObjectStore store, ObjectNames names, ExportMetadata meta, Duration timeout)
            throws IOException {
        BlockMap map = new BlockMap(meta.blockCount());
        long[] ignored = {0};
        store.list(
                names.blocks(),
                key -> {
                    long index = names.blockIndex(key);
                    if (index >= 0 && index < meta.blockCount()) {
                        map.set(index);
                    } else {
                        ignored[0]++;
                    }
                },
                timeout);
        if (ignored[0] > 0) {
            LOG.log(
                    Level.WARNING,
                    "s3 export " + names + ": ignored " + ignored[0] + " objects under " + names.blocks()
                            + " that are not blocks of this export");
        }
        return map;
    }

    private static List<String> listKeys(ObjectStore store, String prefix, Duration timeout) throws StoreException {
        List<String> keys = new ArrayList<>();
        store.list(prefix, keys::add, timeout);
        return keys;
    }

    /** Deletes the export's block objects, trim records and metadata; returns how many objects were deleted. */
    private static int deleteExport(ObjectStore store, ObjectNames names, Duration timeout) throws IOException {
        int n = deleteKeys(store, listKeys(store, names.blocks(), timeout), timeout)
                + deleteKeys(store, listKeys(store, names.trims(), timeout), timeout);
        store.delete(names.metadata(), timeout);
        return n + 1;
    }

    private static int deleteKeys(ObjectStore store, List<String> keys, Duration timeout) throws StoreException {
        for (int i = 0; i < keys.size(); i += 1000) {
            store.deleteAll(keys.subList(i, Math.min(keys.size(), i + 1000)), timeout);
        }
        return keys.size();
    }
}
