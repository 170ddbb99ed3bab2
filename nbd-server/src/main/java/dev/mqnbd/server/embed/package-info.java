/**
 * mqnbd embedded in a Java program or test: {@link dev.mqnbd.server.embed.Mqnbd} builds and starts a
 * server in-process, {@link dev.mqnbd.server.embed.EmbeddedServer} is the running server (the URI of each
 * export, a graceful stop), and {@link dev.mqnbd.server.embed.EmbeddedExport} reads, writes, checksums and
 * breaks one export from the test's side.
 *
 * <pre>{@code
 * try (EmbeddedServer server = Mqnbd.newServer()
 *         .export("disk", "memory:64M")
 *         .faultInjection("disk")
 *         .start()) {
 *     URI uri = server.uri("disk");                       // nbd://127.0.0.1:PORT/disk
 *     // ... run nbdcopy, qemu-img or the code under test against uri ...
 *     String sha = server.export("disk").sha256();
 *     server.export("disk").faults().add(FaultRule.on(ReqOp.READ).fail(Status.IO_ERROR));
 * }
 * }</pre>
 *
 * <p>The {@code mqnbd serve} command line is built on this package: it parses its options into a {@link
 * dev.mqnbd.server.embed.Mqnbd} and waits for a signal.
 */
@NullMarked
package dev.mqnbd.server.embed;

import org.jspecify.annotations.NullMarked;
