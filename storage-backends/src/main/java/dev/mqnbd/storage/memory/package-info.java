/**
 * The {@code memory} backend: a sparse RAM disk, after nbdkit's memory plugin and jimfs's {@code
 * HeapDisk}. {@link dev.mqnbd.storage.memory.MemoryBackend} opens it,
 * {@link dev.mqnbd.storage.memory.MemoryBlockDevice} is its blk-mq driver, serving every request
 * inline, and {@link dev.mqnbd.storage.memory.MemoryStore} holds its bytes in 4 KiB off-heap pages
 * allocated on first write, in anonymous mappings where the platform allows ({@code
 * AnonymousMappings}).
 *
 * <p><b>Spec grammar:</b>
 *
 * <pre>
 * memory:SIZE
 * SIZE := DIGITS [K | M | G | T | P] [B | iB]     (binary units, case-insensitive)
 * </pre>
 *
 * The size must be a positive multiple of 512 bytes and at most 4 PiB. The device starts as zeroes and
 * costs memory only for the pages written (plus a table of at most a few MiB of heap); DISCARD and
 * WRITE_ZEROES give whole pages back to the system at once. Its contents end with the server. Written data is bounded by the
 * JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}), which all memory stores share ({@code
 * PageBudget}); past it, writes fail with {@code ENOSPC}.
 *
 * <p><b>Example:</b> a 1 TiB scratch disk named {@code disk}:
 *
 * <pre>
 * mqnbd serve --export disk=memory:1T
 * </pre>
 */
@NullMarked
package dev.mqnbd.storage.memory;

import org.jspecify.annotations.NullMarked;
