package dev.mqnbd.junit;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Names the export a test parameter of type {@link java.net.URI} or {@link
 * dev.mqnbd.server.embed.EmbeddedExport} stands for; without it, such a parameter is the only export, or the
 * default export ({@code ""}) when there are several.
 *
 * <pre>{@code
 * @Test
 * void copies(@NbdExport("disk") URI disk, @NbdExport("disk") EmbeddedExport contents) { ... }
 * }</pre>
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.PARAMETER)
public @interface NbdExport {
    /** The export's name; {@code ""} is the default export. */
    String value();
}
