package dev.mqnbd.storage.s3;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.RemovalCause;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import org.jspecify.annotations.Nullable;

/**
 * The blocks of one S3 export in memory, shared by all its hardware contexts: reads and writes by byte
 * range on top of whole-block objects in the store. {@link Writing}, {@link Zeroing} and {@link
 * BlockStatus} work on it too; {@link DirtyBlocks} keeps its dirty state, {@link Writeback} uploads it.
 *
 * <p><b>Where a block lives.</b>
 *
 * <ul>
 *   <li>{@code live}: the one {@link Block} of an index while it is pinned (a request or an upload uses
 *       it) or dirty. Dirty blocks stay here, strongly held, until stored, so eviction never drops
 *       unsaved data.
 *   <li>{@code clean}: a Caffeine cache of the bytes of clean blocks nobody uses, bounded in bytes by
 *       {@code s3.cache} (weigher: the array's length). Pinning a block takes its bytes out of the cache,
 *       and unpinning a clean block puts them back, both atomically with the {@code live} entry, so a
 *       block's bytes are in exactly one place and can be changed in place once pinned.
 *   <li>{@code ahead}: blocks read ahead and not read yet, each holding a pin (so they are in {@code
 *       live}), oldest first, at most {@link #aheadLimit}. A block fetched once is a newcomer to the
 *       clean cache, and when the cache is full of blocks read before, Caffeine's admission policy
 *       (TinyLFU) turns newcomers away: a read-ahead block put there was often gone before its reader
 *       came, which then fetched it again. A READ that reaches a held block's last byte, or a newer
 *       read-ahead past the limit, releases it to the clean cache.
 *   <li>the store: every block not in memory. A block whose {@link BlockMap} bit is clear reads as
 *       zeroes without a GET.
 * </ul>
 *
 * <p><b>Locking.</b> A block's contents change under its lock; a change of part of a block (copy, mark
 * dirty) and the GET that completes a partial block happen under it, so concurrent writes to different
 * bytes of one block never lose each other's bytes, and one GET serves every request waiting for that
 * block. Lock
 * order: a block lock, then a {@code live} bin (inside {@code compute}), then the Caffeine cache; never
 * a block lock inside {@code compute}. Every wait (a lock, the dirty bound, the store) ends at the
 * request's deadline with an {@link IOException}.
 *
 * <p><b>Ownership:</b> the {@link S3Export} owns the cache; arrays in it are owned by the block that
 * holds them, by the Caffeine cache or by {@link #buffers}, never two of them; an upload borrows a
 * block's array while {@link Block#shared} is set. The cache's evictions go to {@link #buffers}, as does
 * a GET's array that a partial block merged or that held only zeroes.
 *
 * <p><b>Threading:</b> safe for concurrent use from request threads, prefetches and uploads.
 */
final class BlockCache {
    private static final System.Logger LOG = System.getLogger(BlockCache.class.getName());

    /** Metadata key of a block object's CRC32C ({@code x-amz-meta-crc32c}). */
    static final String CRC_KEY = "crc32c";

    private final String exportName;
    private final ObjectNames names;
    private final ObjectStore store;
    private final S3Stats stats;
    final int blockSize;
    final long capacity;
    final long blockCount;
    final BlockMap map;
    final DirtyBlocks dirty;
    private final ConcurrentHashMap<Long, Block> live = new ConcurrentHashMap<>();
    private final @Nullable Cache<Long, byte[]> clean;

    /** Read-ahead blocks not read yet, each holding a pin, oldest first. Guarded by itself. */
    private final LinkedHashMap<Long, Block> ahead = new LinkedHashMap<>();

    /** The most read-ahead blocks held for their readers: twice the read-ahead, at least 16. */
    final int aheadLimit;

    /** Arrays of evicted clean blocks, reused by GETs and whole-block writes. */
    final BlockBuffers buffers;

    // The compute functions of pin and unpin, allocated once rather than as a lambda per call.
    private final BiFunction<Long, Block, Block> pinner = this::pinned;
    private final BiFunction<Long, Block, Block> unpinner = this::unpinned;

    BlockCache(
            String exportName,
            ObjectNames names,
            ObjectStore store,
            S3Stats stats,
            ExportMetadata meta,
            BlockMap map,
            S3Settings settings) {
        this.exportName = exportName;
        this.names = names;
        this.store = store;
        this.stats = stats;
        this.blockSize = meta.blockSize();
        this.capacity = meta.size();
        this.blockCount = meta.blockCount();
        this.map = map;
        this.dirty = new DirtyBlocks(exportName, blockSize, settings.maxDirtyBytes(), settings.uploads(), stats);
        this.buffers = new BlockBuffers(blockSize);
        this.aheadLimit = Math.max(16, 2 * settings.readAhead());
        this.clean = settings.cacheBytes() < blockSize
                ? null
                : Caffeine.newBuilder()
                        .maximumWeight(settings.cacheBytes())
                        .weigher((Long index, byte[] bytes) -> bytes.length)
                        // Evictions on the thread that adds, at once: memory stays within the bound, and the
                        // evicted arrays are back for the next GET.
                        .executor(Runnable::run)
                        // OWNERSHIP: an evicted array was the cache's alone (pin removes it atomically first).
                        .evictionListener((@Nullable Long index, byte @Nullable [] bytes, RemovalCause cause) -> {
                            if (bytes != null && cause.wasEvicted()) {
                                buffers.give(bytes);
                            }
                        })
                        .build();
    }

    /** Returns the bytes held by the clean cache now, after the cache's pending bookkeeping has run. */
    long cachedBytes() {
        if (clean == null) {
            return 0;
        }
        clean.cleanUp();
        return clean.policy().eviction().map(e -> e.weightedSize().orElse(0)).orElse(0L);
    }

    /** Returns the block of {@code index} if it is pinned or dirty now, else {@code null}; a hint, unlocked. */
    @Nullable
    Block live(long index) {
        return live.get(index);
    }

    /** Returns the sorted indexes in {@code [from, to)} of the blocks pinned or dirty now. */
    long[] liveIndexes(long from, long to) {
        return live.keySet().stream()
                .mapToLong(Long::longValue)
                .filter(i -> i >= from && i < to)
                .sorted()
                .toArray();
    }

    /** Returns whether block {@code index} is known to be zero without a look at it: absent and not in memory. */
    boolean knownZero(long index) {
        return !map.mayExist(index) && !live.containsKey(index);
    }

    /** Returns whether block {@code index}'s bytes are in memory now (live and loaded, or in the clean cache). */
    boolean resident(long index) {
        Block b = live.get(index);
        return (b != null && b.loaded) || (clean != null && clean.asMap().containsKey(index));
    }

    /* --------------- pins --------------- */

    /** Returns the block of {@code index}, pinned: it stays in {@code live} until {@link #unpin}. */
    Block pin(long index) {
        return live.compute(index, pinner);
    }

    /** Drops a pin; the last pin of a clean block moves its bytes to the clean cache and forgets the block. */
    void unpin(Block b) {
        live.compute(b.index, unpinner);
    }

    private Block pinned(Long index, Block b) {
        if (b == null) {
            b = new Block(index);
            byte[] cached = clean == null ? null : clean.asMap().remove(index);
            if (cached != null) {
                // OWNERSHIP: the block owns the array from here; the cache no longer refers to it.
                b.data = cached;
                b.loaded = true;
            }
        }
        b.pins++;
        return b;
    }

    private @Nullable Block unpinned(Long index, Block b) {
        // INVARIANT: a pinned block stays in live, so b is the block being unpinned.
        if (--b.pins > 0 || b.dirty || b.uploading) {
            return b;
        }
        if (clean != null && b.loaded && b.data != null) {
            // OWNERSHIP: the clean cache owns the array from here; the block is forgotten.
            clean.put(index, b.data);
        }
        return null;
    }

    /* --------------- reads --------------- */

    /** Copies {@code length} bytes from {@code offset} into {@code dst[dstIndex...]} with absolute puts. */
    void read(long offset, ByteBuffer dst, int dstIndex, int length, long deadline) throws IOException {
        while (length > 0) {
            long index = offset / blockSize;
            int in = (int) (offset % blockSize);
            int n = Math.min(length, blockSize - in);
            if (knownZero(index)) {
                // Known not to exist and not in memory: zeroes, without a GET.
                stats.cacheHits.increment();
                Bytes.zero(dst, dstIndex, n);
            } else {
                Block b = pin(index);
                try {
                    lock(b, deadline);
                    try {
                        if (b.partial() && b.written.covers(in, in + n)) {
                            // Written here since the block came into memory: no need for the store's bytes.
                            stats.cacheHits.increment();
                        } else {
                            (b.loaded || !map.mayExist(index) ? stats.cacheHits : stats.cacheMisses).increment();
                            load(b, deadline);
                        }
                        if (b.data == null) {
                            Bytes.zero(dst, dstIndex, n);
                        } else {
                            dst.put(dstIndex, b.data, in, n);
                        }
                    } finally {
                        b.lock.unlock();
                    }
                } finally {
                    unpin(b);
                }
                if (in + n == limit(b)) {
                    releaseAhead(index);
                }
            }
            offset += n;
            dstIndex += n;
            length -= n;
        }
    }

    /** Loads every block of the range that may exist and is not in memory (CACHE). */
    void fetch(long firstBlock, long endBlock, long deadline) throws IOException {
        for (long index = firstBlock; index < endBlock; index++) {
            fetch(index, false, deadline);
        }
    }

    /**
     * Read-ahead: loads block {@code index} unless it is known absent or in memory; a block this call loads
     * stays pinned in {@code ahead} until it is read to its end or newer read-ahead pushes it out.
     */
    void fetchAhead(long index, long deadline) throws IOException {
        fetch(index, true, deadline);
    }

    /** Loads block {@code index} unless it is known absent or in memory; holds it for its reader if asked. */
    private void fetch(long index, boolean holdForReader, long deadline) throws IOException {
        if (!map.mayExist(index) || resident(index)) {
            return;
        }
        Block b = pin(index);
        boolean held = false;
        try {
            lock(b, deadline);
            try {
                if (!b.loaded) {
                    stats.readAheads.increment();
                    load(b, deadline);
                    // Under the lock: a reader waiting for it finds it held once it gets the lock.
                    held = holdForReader && hold(b);
                }
            } finally {
                b.lock.unlock();
            }
        } finally {
            if (!held) {
                unpin(b);
            }
        }
    }

    /** Keeps {@code b}'s pin in {@code ahead}; past the limit, the oldest held block is released. */
    private boolean hold(Block b) {
        Block released = null;
        synchronized (ahead) {
            if (ahead.putIfAbsent(b.index, b) != null) {
                return false;
            }
            if (ahead.size() > aheadLimit) {
                Iterator<Map.Entry<Long, Block>> oldest = ahead.entrySet().iterator();
                released = oldest.next().getValue();
                oldest.remove();
            }
        }
        if (released != null) {
            // Lock order: b's lock, then another block's live bin; never the other block's lock.
            unpin(released);
        }
        return true;
    }

    /** Releases the read-ahead pin of block {@code index}, if it holds one. */
    private void releaseAhead(long index) {
        Block held;
        synchronized (ahead) {
            if (ahead.isEmpty()) {
                return;
            }
            held = ahead.remove(index);
        }
        if (held != null) {
            unpin(held);
        }
    }

    /** Returns how many read-ahead blocks are held for their readers now. */
    int heldAhead() {
        synchronized (ahead) {
            return ahead.size();
        }
    }

    /**
     * Makes {@code b}'s contents valid: GET it unless it is loaded or known absent; a partial block keeps
     * the bytes written and takes the rest from the store. Under {@code b}'s lock.
     */
    void load(Block b, long deadline) throws IOException {
        if (b.loaded) {
            return;
        }
        byte[] stored = null;
        if (map.mayExist(b.index)) {
            String key = names.block(b.index);
            stats.gets.increment();
            ObjectStore.StoredObject object =
                    store.get(key, remaining(deadline, "reading block " + b.index), buffers.bodies);
            if (object == null) {
                map.clear(b.index);
            } else {
                stored = object.data();
                stats.bytesDown.add(stored.length);
                verify(key, object);
            }
        }
        byte[] partial = b.data;
        if (partial == null) {
            if (stored != null && Bytes.isZero(stored)) {
                buffers.give(stored);
                stored = null;
            }
            b.data = stored;
        } else if (stored != null) {
            // The bytes written win; the store's fill the rest (the array holds zeroes there until now).
            b.written.copyGaps(stored, partial);
            buffers.give(stored);
        }
        b.loaded = true;
    }

    /**
     * Makes a partial block whole before its upload: one GET of the stored object, merged under the bytes
     * written. Does nothing for a block that is not partial.
     *
     * @throws StoreException if the GET failed, the stored block is corrupt (not retryable), or the block
     *     or the store took past {@code deadline}
     */
    void complete(Block b, long deadline) throws StoreException {
        try {
            lock(b, deadline);
            try {
                if (b.partial()) {
                    stats.mergeGets.increment();
                    load(b, deadline);
                }
            } finally {
                b.lock.unlock();
            }
        } catch (StoreException e) {
            throw e;
        } catch (IOException e) {
            throw new StoreException("cannot complete block " + b.index + ": " + e.getMessage(), 0, true, e);
        }
    }

    /** Checks a downloaded block's length and CRC32C; a mismatch is logged as an error and fails the read or upload. */
    private void verify(String key, ObjectStore.StoredObject object) throws IOException {
        byte[] data = object.data();
        String expected = object.metadata().get(CRC_KEY);
        String problem = null;
        if (data.length != blockSize) {
            problem = data.length + " bytes (expected: " + blockSize + ")";
        } else if (expected == null) {
            problem = "no " + CRC_KEY + " metadata (expected: a block object written by mqnbd)";
        } else {
            String actual = Bytes.crc32c(data);
            if (!actual.equals(expected)) {
                problem = "CRC32C " + actual + " (expected: " + expected + ", from its metadata)";
            }
        }
        if (problem != null) {
            stats.checksumFailures.increment();
            String message = "s3 export " + exportName + ": block object s3://" + names.bucket() + "/" + key
                    + " is corrupt: " + problem + "; reads of it fail with EIO";
            LOG.log(Level.ERROR, message);
            // Not retryable: an upload that needs the block's bytes fails for good too.
            throw new StoreException(message, 0, false);
        }
    }

    /** Returns the bytes of block {@code b} inside the export: the block size, less for a short last block. */
    int limit(Block b) {
        return (int) Math.min(blockSize, capacity - b.index * blockSize);
    }

    /** Returns whether the block's contents are known to be all zeroes without reading it; under its lock. */
    boolean isZero(Block b) {
        return b.loaded ? b.data == null : !map.mayExist(b.index);
    }

    /* --------------- deadlines --------------- */

    /** Locks {@code b}, waiting at most until {@code deadline}. */
    static void lock(Block b, long deadline) throws IOException {
        try {
            if (b.lock.tryLock(deadline - System.nanoTime(), TimeUnit.NANOSECONDS)) {
                return;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for block " + b.index);
        }
        throw new IOException("timed out waiting for block " + b.index + " (another request held it, e.g. while"
                + " reading it from the store)");
    }

    /** Returns the time left until {@code deadline} for a store request, or throws when none is left. */
    static Duration remaining(long deadline, String what) throws IOException {
        long left = deadline - System.nanoTime();
        if (left < TimeUnit.MILLISECONDS.toNanos(1)) {
            throw new IOException("timed out before " + what);
        }
        return Duration.ofNanos(left);
    }

    @Override
    public String toString() {
        return "BlockCache[" + names + ": " + live.size() + " live, " + dirty + ", " + cachedBytes() + " bytes cached]";
    }
}
