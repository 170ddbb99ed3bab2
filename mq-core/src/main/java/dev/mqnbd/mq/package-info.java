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
 * <p>The public types are the ones a driver or a submitter handles: the contract ({@code Operations},
 * {@code PollingOperations}, {@code TimeoutAction}), the objects it is called with ({@code Request},
 * {@code HwContext}, {@code QueueLimits} and the values {@code ReqOp}, {@code ReqFlags}, {@code Status},
 * {@code Feature}, {@code Extents}, {@code Segments}), the two builders ({@code TagSet}, {@code
 * BlockQueue}), the submitter's callbacks ({@code RequestCompletion}, {@code TagWaiter}), the
 * executor a context runs on ({@code HctxExecutor}, {@code ThreadHctxExecutor}) and {@code
 * MqException}. The engine is package-private: the tag bitmap ({@code Tags}), dispatch and completion
 * ({@code Dispatcher}), the timeout scan ({@code TimeoutScanner}), setting up and tearing down the
 * contexts ({@code QueueLifecycle}) and the argument checks ({@code Checks}).
 *
 * <p>This package depends on the JDK alone.
 */
@NullMarked
package dev.mqnbd.mq;

import org.jspecify.annotations.NullMarked;
