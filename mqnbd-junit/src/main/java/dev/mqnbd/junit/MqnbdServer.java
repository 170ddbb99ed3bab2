package dev.mqnbd.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Inherited;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Starts an in-process mqnbd server for the annotated test class: once for the class, or once per test with
 * {@link #perTest()}. Test methods, constructors and lifecycle methods get it through parameters of type
 * {@link java.net.URI}, {@link dev.mqnbd.server.embed.EmbeddedServer} or {@link
 * dev.mqnbd.server.embed.EmbeddedExport} (see {@link NbdExport}).
 *
 * <pre>{@code
 * @MqnbdServer(exports = {"disk=memory:64M", "scratch=memory:1G"}, filters = "scratch=error,rate=1%")
 * class ImageToolTest {
 *     @Test
 *     void writesTheImage(@NbdExport("disk") URI disk, @NbdExport("disk") EmbeddedExport contents) { ... }
 * }
 * }</pre>
 *
 * <p>For settings the annotation does not offer (TLS, a Unix socket, access lists) register a
 * {@link MqnbdExtension} field instead.
 */
@Documented
@Inherited
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.TYPE)
@ExtendWith(MqnbdExtension.class)
public @interface MqnbdServer {
    /**
     * The exports, as {@code NAME=SPEC} ({@code mqnbd serve --export}); default: one default export of
     * {@code memory:1G}.
     */
    String[] exports() default {};

    /** Filters, as {@code NAME=KIND[,key=value...]} ({@code mqnbd serve --filter}); default: none. */
    String[] filters() default {};

    /** Exports that get an empty fault-injection layer on top, for rules the test adds; default: none. */
    String[] faultInjection() default {};

    /** Whether every test gets a server of its own, with fresh exports; default: one server for the class. */
    boolean perTest() default false;
}
