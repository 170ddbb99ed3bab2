package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import org.jspecify.annotations.Nullable;

/**
 * Saves the dirty blocks of an S3 export that cannot be stored (the write lease went to another server,
 * or the store stayed down through a shutdown) to local files, so that nothing a client was told is
 * written vanishes silently. Two files in {@code s3.rescue-dir}:
 *
 * <ul>
 *   <li>{@code EXPORT-TIME.blocks}: the blocks' bytes, one after another, {@code block-size} each (a
 *       block made zero is stored as zeroes);
 *   <li>{@code EXPORT-TIME.txt}: what they are (export, store, reason, holder) and one line per block,
 *       {@code block INDEX offset OFFSET length LENGTH at POSITION: dd ...}: a {@code dd} command that
 *       writes it to {@code DEVICE}, the export served again (e.g. {@code /dev/nbd0}) or an image of it.
 *       A partial block (written in parts while not in memory, see {@link Block}) has one line per
 *       part written instead, at the part's offset: the rest of it is the store's.
 * </ul>
 *
 * Both are written in full and forced to disk before {@link #save} returns.
 *
 * <p><b>Threading:</b> stateless; {@link #save} locks each block while it copies it.
 */
final class Rescue {
    private static final DateTimeFormatter TIME =
            DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmss'Z'").withZone(ZoneOffset.UTC);

    private Rescue() {}

    /** What was saved: the index file, and the blocks at their versions. */
    record Saved(Path index, int blocks, long[] indexes, long[] versions) {}

    /**
     * Writes every dirty block of {@code cache} to a new pair of files under {@code dir}.
     *
     * @param why the reason, recorded in the index file
     * @param holder who held the lease, recorded in the index file
     * @throws IOException if the files cannot be written; the message names them
     */
    static Saved save(Path dir, String exportName, ObjectNames names, BlockCache cache, String why, String holder)
            throws IOException {
        List<Block> dirty = new ArrayList<>(cache.dirty.blocks());
        dirty.sort(Comparator.comparingLong(b -> b.index));
        String base = safe(exportName) + "-" + TIME.format(Instant.now()) + "-"
                + HexFormat.of().toHexDigits((short) ThreadLocalRandom.current().nextInt());
        Files.createDirectories(dir);
        Path blocks = dir.resolve(base + ".blocks");
        Path index = dir.resolve(base + ".txt");
        StringBuilder text = new StringBuilder()
                .append("# mqnbd rescue: blocks of s3 export ")
                .append(exportName)
                .append(" (")
                .append(names)
                .append(") written by clients but not stored\n# reason: ")
                .append(why)
                .append("\n# saved: ")
                .append(Instant.now())
                .append(" by ")
                .append(holder)
                .append("\n# export size ")
                .append(cache.capacity)
                .append(" bytes, block size ")
                .append(cache.blockSize)
                .append(" bytes; the bytes are in ")
                .append(blocks.getFileName())
                .append("\n# to apply: run each line's dd command with DEVICE set to the export served again"
                        + " (e.g. /dev/nbd0) or a raw image of it\n");
        long[] indexes = new long[dirty.size()];
        long[] versions = new long[dirty.size()];
        int n = 0;
        try (FileChannel out = FileChannel.open(blocks, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            long position = 0;
            for (Block b : dirty) {
                byte[] data = new byte[cache.blockSize];
                Copied copied = copy(cache, b, data);
                if (copied == null) {
                    continue; // Stored and forgotten since it was listed.
                }
                int[] parts = copied.parts();
                for (int i = 0; i < parts.length; i += 2) {
                    long offset = b.index * cache.blockSize + parts[i];
                    int length = parts[i + 1] - parts[i];
                    ByteBuffer buffer = ByteBuffer.wrap(data, parts[i], length);
                    while (buffer.hasRemaining()) {
                        out.write(buffer, position + buffer.position() - parts[i]);
                    }
                    text.append("block ")
                            .append(b.index)
                            .append(" offset ")
                            .append(offset)
                            .append(" length ")
                            .append(length)
                            .append(" at ")
                            .append(position)
                            .append(": dd if=")
                            .append(blocks.getFileName())
                            .append(" of=DEVICE bs=1M iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc skip=")
                            .append(position)
                            .append(" seek=")
                            .append(offset)
                            .append(" count=")
                            .append(length)
                            .append('\n');
                    position += length;
                }
                indexes[n] = b.index;
                versions[n] = copied.version();
                n++;
            }
            out.force(true);
        } catch (IOException e) {
            throw new IOException("cannot write the rescue file " + blocks + ": " + e.getMessage(), e);
        }
        try (FileChannel out = FileChannel.open(index, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer bytes = ByteBuffer.wrap(text.toString().getBytes(StandardCharsets.UTF_8));
            while (bytes.hasRemaining()) {
                out.write(bytes);
            }
            out.force(true);
        } catch (IOException e) {
            throw new IOException("cannot write the rescue file " + index + ": " + e.getMessage(), e);
        }
        return new Saved(index, n, Arrays.copyOf(indexes, n), Arrays.copyOf(versions, n));
    }

    /** A block's version and the parts of it copied: {@code [start, end)} pairs within the block. */
    private record Copied(long version, int[] parts) {}

    /**
     * Copies {@code b}'s contents into {@code data} under its lock; returns its version and the parts that
     * count (the whole block, or what a partial block holds), or {@code null} if it is clean now.
     */
    private static @Nullable Copied copy(BlockCache cache, Block b, byte[] data) {
        Block pinned = cache.pin(b.index);
        try {
            pinned.lock.lock();
            try {
                if (!pinned.dirty) {
                    return null;
                }
                // A dirty block is loaded or partial: its contents were written or zeroed in memory.
                if (pinned.data != null) {
                    System.arraycopy(pinned.data, 0, data, 0, data.length);
                }
                int[] parts;
                if (pinned.partial()) {
                    Ranges written = pinned.written;
                    parts = new int[2 * written.count()];
                    for (int i = 0; i < written.count(); i++) {
                        parts[2 * i] = written.start(i);
                        parts[2 * i + 1] = Math.min(written.end(i), cache.limit(pinned));
                    }
                } else {
                    parts = new int[] {0, cache.limit(pinned)};
                }
                return new Copied(pinned.version, parts);
            } finally {
                pinned.lock.unlock();
            }
        } finally {
            cache.unpin(pinned);
        }
    }

    /** Returns {@code name} with every character but letters, digits, '-' and '_' replaced by '_'. */
    private static String safe(String name) {
        String s = name.replaceAll("[^A-Za-z0-9_-]", "_");
        return s.isEmpty() ? "default" : s;
    }

    /** Returns whether every block dirty now is in {@code saved} at its current version. */
    static boolean covers(Saved saved, BlockCache cache) {
        for (Block b : cache.dirty.blocks()) {
            int i = Arrays.binarySearch(saved.indexes(), b.index);
            if (i < 0 || saved.versions()[i] != b.version) {
                return false;
            }
        }
        return true;
    }
}
