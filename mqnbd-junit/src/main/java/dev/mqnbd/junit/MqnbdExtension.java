package dev.mqnbd.junit;

import dev.mqnbd.server.embed.EmbeddedExport;
import dev.mqnbd.server.embed.EmbeddedServer;
import dev.mqnbd.server.embed.Mqnbd;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.reflect.AnnotatedElement;
import java.net.URI;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Consumer;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.platform.commons.support.AnnotationSupport;

/**
 * A JUnit 5 extension that serves NBD exports from an in-process mqnbd server ({@link Mqnbd}) to a test.
 *
 * <p>Registered on a {@code static} field, the server starts before the class's first test and stops after
 * its last; on an instance field, every test gets a server of its own. Exports are memory exports unless
 * the configuration names others; the server listens on 127.0.0.1, on a free port.
 *
 * <pre>{@code
 * class BackupToolTest {
 *     @RegisterExtension
 *     static final MqnbdExtension nbd = MqnbdExtension.create(server -> server
 *             .export("disk", "memory:64M")
 *             .faultInjection("disk"));
 *
 *     @Test
 *     void backupReadsEveryBlock(@NbdExport("disk") URI disk) throws IOException {
 *         nbd.export("disk").write(0, knownBlocks);
 *         backupTool.run(disk.toString());                    // nbd://127.0.0.1:PORT/disk
 *     }
 *
 *     @Test
 *     void readErrorFailsTheBackup() {
 *         nbd.export("disk").faults().add(FaultRule.on(ReqOp.READ).fail(Status.IO_ERROR));
 *         ...
 *     }
 * }
 * }</pre>
 *
 * <p>Test methods, constructors and lifecycle methods may also take the server as a parameter: {@link
 * URI} (an export's URI), {@link EmbeddedServer} or {@link EmbeddedExport}, the latter two named with
 * {@link NbdExport} when there are several exports. The {@link MqnbdServer} annotation registers the
 * extension without a field.
 *
 * <p><b>Threading:</b> JUnit calls the callbacks; the accessors may be called from the test's threads.
 * Tests of one class that share a server share its exports' contents.
 */
public final class MqnbdExtension
        implements BeforeAllCallback, AfterAllCallback, BeforeEachCallback, AfterEachCallback, ParameterResolver {
    private final @Nullable Consumer<Mqnbd> configuration;
    private @Nullable EmbeddedServer server;
    private boolean perTest;

    /**
     * Creates the extension for {@link MqnbdServer}, which JUnit instantiates; it reads its configuration
     * from the annotation. Use {@link #create} for a field.
     */
    public MqnbdExtension() {
        this.configuration = null;
    }

    private MqnbdExtension(Consumer<Mqnbd> configuration) {
        this.configuration = configuration;
    }

    /** Returns an extension serving one default export ({@code ""}) of {@code memory:1G}. */
    public static MqnbdExtension create() {
        return create(server -> {});
    }

    /**
     * Returns an extension whose server {@code configuration} sets up on a fresh {@link Mqnbd} builder; the
     * builder starts with two event loops (tests rarely need more), which the configuration may change.
     * The configuration runs each time a server starts.
     */
    public static MqnbdExtension create(Consumer<Mqnbd> configuration) {
        return new MqnbdExtension(Objects.requireNonNull(configuration, "configuration"));
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        if (!annotation(context).map(MqnbdServer::perTest).orElse(false)) {
            server = start(context);
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) {
        if (server == null) {
            perTest = true;
            server = start(context);
        }
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (perTest) {
            stop();
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        stop();
    }

    /**
     * Returns the running server.
     *
     * @throws IllegalStateException outside a test or its lifecycle methods
     */
    public EmbeddedServer server() {
        EmbeddedServer running = server;
        if (running == null) {
            throw new IllegalStateException(
                    "no mqnbd server is running (expected: called from a test or its lifecycle methods)");
        }
        return running;
    }

    /**
     * Returns the URI of export {@code name}, e.g. {@code nbd://127.0.0.1:PORT/disk}.
     *
     * @throws IllegalArgumentException if there is no such export
     * @throws IllegalStateException outside a test or its lifecycle methods
     */
    public URI uri(String name) {
        return server().uri(name);
    }

    /** Returns the URI of the only export, or of the default export when there are several. */
    public URI uri() {
        return server().uri();
    }

    /**
     * Returns export {@code name} as the test sees it: read, write, checksum, inject faults.
     *
     * @throws IllegalArgumentException if there is no such export
     * @throws IllegalStateException outside a test or its lifecycle methods
     */
    public EmbeddedExport export(String name) {
        return server().export(name);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext extension) {
        Class<?> type = parameter.getParameter().getType();
        return type == URI.class || type == EmbeddedServer.class || type == EmbeddedExport.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext extension) {
        EmbeddedServer running = server;
        if (running == null) {
            throw new ParameterResolutionException("no mqnbd server is running for " + parameter.getParameter()
                    + " (a per-test server is not there yet for a constructor or @BeforeAll method)");
        }
        Class<?> type = parameter.getParameter().getType();
        if (type == EmbeddedServer.class) {
            return running;
        }
        Optional<String> named = parameter.findAnnotation(NbdExport.class).map(NbdExport::value);
        try {
            if (type == URI.class) {
                return named.map(running::uri).orElseGet(running::uri);
            }
            return running.export(named.orElseGet(() -> onlyExport(running)));
        } catch (IllegalArgumentException e) {
            throw new ParameterResolutionException(parameter.getParameter() + ": " + e.getMessage(), e);
        }
    }

    private static String onlyExport(EmbeddedServer server) {
        return server.exportNames().size() == 1 ? server.exportNames().getFirst() : "";
    }

    private EmbeddedServer start(ExtensionContext context) {
        Mqnbd builder =
                Mqnbd.newServer().eventLoops(Math.min(2, Runtime.getRuntime().availableProcessors()));
        try {
            if (configuration != null) {
                configuration.accept(builder);
            } else {
                MqnbdServer settings = annotation(context)
                        .orElseThrow(() -> new ExtensionConfigurationException(
                                "MqnbdExtension registered without configuration (expected: @MqnbdServer on "
                                        + context.getRequiredTestClass().getName()
                                        + ", or a field set to MqnbdExtension.create(...))"));
                configure(builder, settings);
            }
            return builder.start();
        } catch (IllegalArgumentException e) {
            throw new ExtensionConfigurationException("mqnbd server: " + e.getMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("mqnbd server did not start: " + e.getMessage(), e);
        }
    }

    private static void configure(Mqnbd builder, MqnbdServer settings) {
        for (String export : settings.exports()) {
            int eq = export.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException(
                        "export \"" + export + "\" (expected: NAME=SPEC, e.g. disk=memory:64M)");
            }
            builder.export(export.substring(0, eq), export.substring(eq + 1));
        }
        for (String filter : settings.filters()) {
            int eq = filter.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException(
                        "filter \"" + filter + "\" (expected: NAME=KIND[,key=value...], e.g. disk=error,rate=1%)");
            }
            builder.filter(filter.substring(0, eq), filter.substring(eq + 1));
        }
        for (String name : settings.faultInjection()) {
            builder.faultInjection(name);
        }
    }

    private static Optional<MqnbdServer> annotation(ExtensionContext context) {
        Optional<AnnotatedElement> testClass = context.getTestClass().map(c -> c);
        return testClass.flatMap(c -> AnnotationSupport.findAnnotation(c, MqnbdServer.class));
    }

    private void stop() {
        EmbeddedServer running = server;
        server = null;
        perTest = false;
        if (running != null) {
            running.close();
        }
    }
}
