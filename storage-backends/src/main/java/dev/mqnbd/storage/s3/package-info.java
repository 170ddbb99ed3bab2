/**
 * The {@code s3} backend: an export kept as fixed-size block objects in an S3 bucket, or in any
 * S3-compatible store. {@link dev.mqnbd.storage.s3.S3Backend} opens it, {@link
 * dev.mqnbd.storage.s3.S3BlockDevice} is its blk-mq driver, {@link dev.mqnbd.storage.s3.S3HwData} is
 * each hardware context's store handle and batch, and {@link dev.mqnbd.storage.s3.S3Export} is the open
 * export every context shares: its block cache, writeback and write lease.
 *
 * <p><b>Spec grammar:</b>
 *
 * <pre>
 * s3://BUCKET[/PREFIX][,OPTION]...
 * OPTION := create=SIZE       create the export with SIZE bytes if it does not exist; an existing one of
 *                             the same size and block size is simply opened, one that differs is refused
 *         | block-size=SIZE   block size of a new export: a power of two from 64K to 64M (default 1M);
 *                             when opening, the size the export must have
 *         | overwrite         with create=: delete an existing export's objects and create it anew
 * SIZE   := DIGITS [K | M | G | T | P] [B | iB]     (binary units, case-insensitive)
 * </pre>
 *
 * PREFIX may be empty or contain slashes; a comma in it is written twice ({@code ,,}). Without {@code
 * create=} a missing export is an error that says how to create it.
 *
 * <p><b>Settings</b> ({@link dev.mqnbd.storage.DeviceOptions#settings()}): {@code s3.endpoint}, {@code
 * s3.region}, {@code s3.path-style}, {@code s3.cache}, {@code s3.max-dirty}, {@code s3.writeback-age},
 * {@code s3.uploads}, {@code s3.timeout}, {@code s3.lease-ttl}, {@code s3.read-ahead}, {@code s3.rescue-dir}; see {@link
 * dev.mqnbd.storage.s3.S3Settings}.
 * Credentials come from the AWS SDK's default chain ({@code AWS_ACCESS_KEY_ID}/{@code
 * AWS_SECRET_ACCESS_KEY}, a profile, a role).
 *
 * <p><b>Objects</b> under {@code PREFIX/} (no slash when PREFIX is empty):
 *
 * <ul>
 *   <li>{@code mqnbd-export.json}: size, block size, format version, creation time; written once;
 *   <li>{@code mqnbd-lease.json}: the write lease (holder: host, pid, random id, boot id and pid
 *       namespace; expiry), renewed with conditional PUTs while the export is served for writing (see
 *       {@link dev.mqnbd.storage.s3.Lease});
 *   <li>{@code blocks/0000000000000000} ...: one object per block that holds data, named by its index in
 *       16 hex digits, each exactly one block long, with its CRC32C in the user metadata {@code
 *       x-amz-meta-crc32c}. A block without an object reads as zeroes; a block that becomes all zeroes is
 *       deleted, never stored;
 *   <li>{@code trims/0000000000000000} ...: the record of a large trim whose block objects are still
 *       being deleted in the background ({@link dev.mqnbd.storage.s3.Tombstone}): the blocks it covers
 *       read as zeroes, except those written after it, which it lists as kept.
 * </ul>
 *
 * <p><b>Semantics:</b> writes land in a write-back cache (bounded by {@code s3.max-dirty}; writers wait
 * past it) and are uploaded in the background, at most {@code s3.uploads} at a time: a block written whole
 * at once, others once dirty for {@code s3.writeback-age} or under memory pressure. A write to part of a
 * stored block not in memory reads nothing: the block records the parts written, and its other bytes
 * are fetched (one GET) and merged under them only when needed, at its upload or a read of them. FLUSH and FUA end only when the data they
 * cover is stored (the PUT or DELETE succeeded), and a FLUSH on any connection covers writes completed on
 * every connection. Clean blocks stay in a cache of {@code s3.cache} bytes; sequential reads fetch
 * {@code s3.read-ahead} blocks ahead. Uploads carry their CRC32C ({@code x-amz-checksum-crc32c}) and,
 * over plain http, are signed with the SHA-256 of their bytes (one pass, not aws-chunked); downloads are
 * checked against their CRC32C. DISCARD and WRITE_ZEROES over {@value
 * dev.mqnbd.storage.s3.Trims#MIN_BLOCKS} or more stored blocks write a trim record before they end and
 * delete the objects in the background (a restart resumes the deletes); smaller ones leave the deletes to
 * the writeback. The SDK retries throttling and 5xx with backoff; a request the store cannot serve within
 * {@code s3.timeout} (20 s by default, at most 25 s) ends with EIO. Only one server may serve an export
 * for writing (the lease); read-only servers may run alongside, each seeing the export as it was stored
 * when it read it (they are not kept coherent with the writer's later changes). A lease that cannot be
 * renewed in time lapses (writes fail, dirty data is kept) and is renewed again once the store answers;
 * one taken by another server is lost, and the dirty blocks go to a rescue file ({@code
 * s3.rescue-dir}). On stop, every dirty block is uploaded and the log says how many; what the store does
 * not take within {@code s3.timeout} goes to a rescue file, named in the log.
 *
 * <p><b>Example:</b> a 100 GiB export in MinIO or S3Proxy on this host:
 *
 * <pre>
 * AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... mqnbd serve \
 *     --export disk=s3://my-bucket/disks/disk1,create=100G \
 *     --set s3.endpoint=http://127.0.0.1:9000 --set s3.path-style=true
 * </pre>
 */
@NullMarked
package dev.mqnbd.storage.s3;

import org.jspecify.annotations.NullMarked;
