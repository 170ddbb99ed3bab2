/**
 * A JUnit 5 extension that serves NBD exports to a test: {@link dev.mqnbd.junit.MqnbdExtension} as a
 * {@code @RegisterExtension} field, or the {@link dev.mqnbd.junit.MqnbdServer} annotation on a test class.
 *
 * <pre>{@code
 * class BackupTest {
 *     @RegisterExtension
 *     static final MqnbdExtension nbd = MqnbdExtension.create(server -> server.export("disk", "memory:64M"));
 *
 *     @Test
 *     void backupCopiesTheDisk(@NbdExport("disk") URI disk) { ... }
 * }
 * }</pre>
 */
@NullMarked
package dev.mqnbd.junit;

import org.jspecify.annotations.NullMarked;
