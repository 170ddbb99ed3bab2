/**
 * The {@code file} backend: an image file or a block device on the server's disk, after qemu-nbd and
 * nbdkit's file plugin. {@link dev.mqnbd.storage.file.FileBackend} opens it, {@link
 * dev.mqnbd.storage.file.FileBlockDevice} is its blk-mq driver, {@link
 * dev.mqnbd.storage.file.FileHwData} is each hardware context's descriptor, I/O thread and pending
 * flushes, and {@link dev.mqnbd.storage.file.FileStore} is the open, locked file that every context
 * shares, with its group commit.
 *
 * <p><b>Spec grammar:</b>
 *
 * <pre>
 * file:PATH[,OPTION]...
 * OPTION := create=SIZE     create PATH as a sparse file of SIZE bytes if it does not exist
 *                           (an existing file is served as it is, whatever its size)
 *         | direct          open with O_DIRECT: bypass the page cache; the minimum block size becomes
 *                           4096 and the file's size must be a multiple of it
 * SIZE   := DIGITS [K | M | G | T | P] [B | iB]     (binary units, case-insensitive)
 * </pre>
 *
 * A comma in PATH is written twice ({@code ,,}). PATH may be a regular file or a block device; the
 * export's size is the file's size when it is opened. A missing file without {@code create=}, a
 * directory, or a file another mqnbd holds (an advisory {@code flock}: exclusive for read-write,
 * shared for {@code --read-only}) is refused with a message that names the file. A file the server may
 * not write is served read-only, with a warning.
 *
 * <p><b>Semantics:</b> reads and writes are positional system calls on a per-context I/O thread; TRIM
 * punches holes, WRITE_ZEROES punches holes or, with {@code NO_HOLE}, zeroes a range in place
 * ({@code fallocate}), writing zeroes where the file system refuses. FLUSH and FUA are durable before
 * their reply: they share {@code fdatasync} calls (group commit), and a FLUSH on any connection covers
 * the writes completed on every connection. On stop the server syncs once more and logs its totals,
 * including the number of {@code fdatasync} calls.
 *
 * <p><b>Example:</b> serve a 10 GiB image named {@code disk}, creating it on first use:
 *
 * <pre>
 * mqnbd serve --export disk=file:/var/lib/mqnbd/disk.img,create=10G
 * </pre>
 */
@NullMarked
package dev.mqnbd.storage.file;

import org.jspecify.annotations.NullMarked;
