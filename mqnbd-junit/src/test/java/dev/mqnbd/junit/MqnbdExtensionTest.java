package dev.mqnbd.junit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import dev.mqnbd.filter.FaultRule;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Status;
import dev.mqnbd.server.embed.EmbeddedExport;
import dev.mqnbd.server.embed.EmbeddedServer;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.EventConditions;
import org.junit.platform.testkit.engine.Events;
import org.junit.platform.testkit.engine.TestExecutionResultConditions;

/**
 * The extension, run the way JUnit runs it: each sample class below is executed by the JUnit engine
 * ({@link EngineTestKit}), and what its tests saw is checked here.
 */
class MqnbdExtensionTest {
    /** What the sample tests saw: the servers they were given. */
    static final List<EmbeddedServer> SEEN = new CopyOnWriteArrayList<>();

    @Test
    void staticField_oneServerForTheClass_sharedContents_stoppedAfterTheClass() throws Exception {
        SEEN.clear();
        Events tests = run(PerClass.class);
        tests.assertStatistics(s -> s.succeeded(2).failed(0));
        assertThat(SEEN).hasSize(2);
        assertThat(SEEN.get(0)).isSameAs(SEEN.get(1));
        assertThatThrownBy(() -> SEEN.get(0).export("disk").read(0, 512)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void instanceField_aServerPerTest_freshContents() {
        SEEN.clear();
        Events tests = run(PerTest.class);
        tests.assertStatistics(s -> s.succeeded(2).failed(0));
        assertThat(SEEN).hasSize(2);
        assertThat(SEEN.get(0)).isNotSameAs(SEEN.get(1));
        assertThatThrownBy(() -> SEEN.get(1).export("disk").read(0, 512)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void annotation_injectsUriServerAndExport_withTheFiltersItNames() {
        SEEN.clear();
        Events tests = run(Annotated.class);
        tests.assertStatistics(s -> s.succeeded(2).failed(0));
        assertThat(SEEN).hasSize(2);
        assertThat(SEEN.get(0)).isSameAs(SEEN.get(1));
    }

    @Test
    void annotation_perTest_givesEachTestItsOwnServer() {
        SEEN.clear();
        run(AnnotatedPerTest.class).assertStatistics(s -> s.succeeded(2).failed(0));
        assertThat(SEEN.get(0)).isNotSameAs(SEEN.get(1));
    }

    @Test
    void annotation_malformedExport_failsTheClassWithAConfigurationError() {
        EngineTestKit.engine("junit-jupiter")
                .selectors(selectClass(Misconfigured.class))
                .execute()
                .containerEvents()
                .assertThatEvents()
                .haveExactly(
                        1,
                        EventConditions.finishedWithFailure(
                                TestExecutionResultConditions.instanceOf(ExtensionConfigurationException.class),
                                TestExecutionResultConditions.message(m -> m.contains("expected: NAME=SPEC"))));
    }

    private static Events run(Class<?> testClass) {
        return EngineTestKit.engine("junit-jupiter")
                .selectors(selectClass(testClass))
                .execute()
                .testEvents();
    }

    static String greeting(URI uri) throws IOException {
        try (Socket s = new Socket(uri.getHost(), uri.getPort())) {
            s.setSoTimeout(20_000);
            byte[] magic = new byte[8];
            new DataInputStream(s.getInputStream()).readFully(magic);
            return new String(magic, StandardCharsets.US_ASCII);
        }
    }

    @TestMethodOrder(MethodOrderer.OrderAnnotation.class)
    static class PerClass {
        @RegisterExtension
        static final MqnbdExtension NBD = MqnbdExtension.create(server -> server.export("disk", "memory:1M"));

        @Test
        @Order(1)
        void first_writes(URI disk) throws IOException {
            SEEN.add(NBD.server());
            assertThat(disk).hasToString("nbd://127.0.0.1:" + NBD.server().port() + "/disk");
            assertThat(greeting(disk)).isEqualTo("NBDMAGIC");
            NBD.export("disk").write(0, new byte[] {1, 2, 3, 4});
        }

        @Test
        @Order(2)
        void second_seesTheWrite(EmbeddedExport disk) throws IOException {
            SEEN.add(NBD.server());
            assertThat(disk.read(0, 4)).containsExactly(1, 2, 3, 4);
        }
    }

    @TestMethodOrder(MethodOrderer.OrderAnnotation.class)
    static class PerTest {
        @RegisterExtension
        final MqnbdExtension nbd = MqnbdExtension.create(server -> server.export("disk", "memory:1M"));

        @Test
        @Order(1)
        void first_writes() throws IOException {
            SEEN.add(nbd.server());
            nbd.export("disk").write(0, new byte[] {1, 2, 3, 4});
        }

        @Test
        @Order(2)
        void second_startsBlank(EmbeddedServer server) throws IOException {
            SEEN.add(server);
            assertThat(nbd.server()).isSameAs(server);
            assertThat(nbd.export("disk").read(0, 4)).containsOnly(0);
        }
    }

    @MqnbdServer(
            exports = {"disk=memory:1M", "ro=memory:2M"},
            filters = "ro=error,rate=1,ops=write,status=EPERM",
            faultInjection = "disk")
    static class Annotated {
        @Test
        void uriAndExport(@NbdExport("disk") URI disk, @NbdExport("ro") EmbeddedExport ro, EmbeddedServer server)
                throws IOException {
            SEEN.add(server);
            assertThat(disk).hasToString("nbd://127.0.0.1:" + server.port() + "/disk");
            assertThat(ro.size()).isEqualTo(2 << 20);
            assertThatThrownBy(() -> ro.write(0, new byte[512]))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining("READ_ONLY");
        }

        @Test
        void faultInjectionLayer(@NbdExport("disk") EmbeddedExport disk, EmbeddedServer server) {
            SEEN.add(server);
            disk.faults().add(FaultRule.on(ReqOp.READ).firstN(1).fail(Status.IO_ERROR));
            assertThatThrownBy(() -> disk.read(0, 512)).isInstanceOf(IOException.class);
        }
    }

    @MqnbdServer(perTest = true)
    static class AnnotatedPerTest {
        @Test
        void one(EmbeddedServer server, URI uri) {
            SEEN.add(server);
            assertThat(uri).hasToString("nbd://127.0.0.1:" + server.port() + "/");
        }

        @Test
        void two(EmbeddedServer server) {
            SEEN.add(server);
        }
    }

    @MqnbdServer(exports = "memory:1M")
    static class Misconfigured {
        @Test
        void never() {}
    }
}
