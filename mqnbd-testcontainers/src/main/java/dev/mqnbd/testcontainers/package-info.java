/**
 * The mqnbd server image as a Testcontainers container: {@link dev.mqnbd.testcontainers.MqnbdContainer}.
 *
 * <pre>{@code
 * try (MqnbdContainer nbd = new MqnbdContainer().withExport("disk", "memory:1G")) {
 *     nbd.start();
 *     String uri = nbd.getNbdUri("disk");                 // nbd://127.0.0.1:MAPPED_PORT/disk
 * }
 * }</pre>
 */
@NullMarked
package dev.mqnbd.testcontainers;

import org.jspecify.annotations.NullMarked;
