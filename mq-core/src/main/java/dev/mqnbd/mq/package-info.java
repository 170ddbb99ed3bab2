/**
 * The blk-mq driver contract in Java: the part of the Linux kernel's multi-queue block layer that a
 * driver sees, as the kernel's Rust abstractions ({@code rust/kernel/block/mq}) express it.
 *
 * <p>Four steps give a working device:
 *
 * <ol>
 *   <li>Implement {@link dev.mqnbd.mq.Operations} with typed per-hardware-context data {@code H},
 *       per-queue data {@code Q}, tag-set data {@code T} and per-request data {@code R}.
 *   <li>Build a {@link dev.mqnbd.mq.TagSet}: it preallocates every {@link dev.mqnbd.mq.Request} with its
 *       private data ({@code newRequestData}).
 *   <li>Build a {@link dev.mqnbd.mq.BlockQueue} on it with the device's {@link dev.mqnbd.mq.QueueLimits}:
 *       it calls {@code initHctx} once per hardware context, and owns each {@code H} until its {@code
 *       exitHctx} when the queue closes.
 *   <li>Submitters take a request with {@code tryAllocate}, fill it, and {@code submit} it; the driver
 *       ends it exactly once with {@link dev.mqnbd.mq.Request#end(Status)}, or with {@link
 *       dev.mqnbd.mq.Request#end(int, Status)} when it ends it after keeping it.
 * </ol>
 *
 * <p>This package depends on the JDK alone.
 */
package dev.mqnbd.mq;
