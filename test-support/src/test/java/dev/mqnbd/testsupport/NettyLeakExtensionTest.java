package dev.mqnbd.testsupport;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectMethod;
import static org.junit.platform.testkit.engine.EventConditions.event;
import static org.junit.platform.testkit.engine.EventConditions.finishedSuccessfully;
import static org.junit.platform.testkit.engine.EventConditions.finishedWithFailure;
import static org.junit.platform.testkit.engine.EventConditions.test;
import static org.junit.platform.testkit.engine.TestExecutionResultConditions.instanceOf;
import static org.junit.platform.testkit.engine.TestExecutionResultConditions.message;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Events;

/**
 * {@link NettyLeakExtension} can fail a test: tests that leak on purpose are run through the JUnit
 * Platform's test kit, and must fail with the leak report; tests that release what they allocate pass.
 */
class NettyLeakExtensionTest {

    @Test
    void leakedUnpooledBuffer_failsTheTestThatLeakedIt() {
        Events events = run("leaksAnUnpooledBuffer");

        events.assertThatEvents()
                .haveExactly(
                        1,
                        event(
                                test("leaksAnUnpooledBuffer"),
                                finishedWithFailure(
                                        instanceOf(AssertionError.class),
                                        message(m -> m.contains("LEAK: ByteBuf.release() was not called")
                                                && m.contains("leaksAnUnpooledBuffer")))));
    }

    @Test
    void leakedPooledBuffer_failsTheTestThatLeakedIt() {
        Events events = run("leaksAPooledBuffer");

        events.assertThatEvents()
                .haveExactly(
                        1, event(test("leaksAPooledBuffer"), finishedWithFailure(message(m -> m.contains("LEAK: ")))));
    }

    @Test
    void releasedBuffers_pass() {
        Events events = run("releasesWhatItAllocates");

        events.assertThatEvents().haveExactly(1, event(test("releasesWhatItAllocates"), finishedSuccessfully()));
    }

    @Test
    void bufferStillReferencedAfterTheTest_isNoLeak() {
        Events events = run("keepsABufferReferenced");

        events.assertThatEvents().haveExactly(1, event(test("keepsABufferReferenced"), finishedSuccessfully()));
        Tests.KEPT.forEach(ByteBuf::release);
        Tests.KEPT.clear();
    }

    @Test
    void leakReportedAfterItsTestEnded_failsTheNextTest() {
        Events events = EngineTestKit.engine("junit-jupiter")
                .selectors(selectMethod(LateLeak.class, "first"), selectMethod(LateLeak.class, "second"))
                .execute()
                .testEvents();

        events.assertThatEvents()
                .haveExactly(1, event(test("first"), finishedSuccessfully()))
                .haveExactly(
                        1,
                        event(
                                test("second"),
                                finishedWithFailure(message(m -> m.contains("reported before second() began")))));
    }

    private static Events run(String method) {
        return EngineTestKit.engine("junit-jupiter")
                .selectors(selectMethod(Tests.class, method))
                .execute()
                .testEvents();
    }

    /**
     * The first test keeps its buffer referenced past its end, so no leak is seen then; {@link DropKept}
     * drops it unreleased after the leak check of the first test, and the second test starts with its
     * report pending.
     */
    @ExtendWith(DropKept.class) // registered first, so its afterEach runs after NettyLeakExtension's
    @ExtendWith(NettyLeakExtension.class)
    @TestMethodOrder(MethodOrderer.MethodName.class)
    static class LateLeak {
        static ByteBuf kept;

        @Test
        void first() {
            kept = Unpooled.directBuffer(16);
        }

        @Test
        void second() {}
    }

    /** Drops {@link LateLeak#kept} unreleased and lets the detector report it. */
    static final class DropKept implements AfterEachCallback {
        @Override
        public void afterEach(ExtensionContext context) throws InterruptedException {
            if (LateLeak.kept != null) {
                LateLeak.kept = null;
                System.gc();
                Thread.sleep(50);
                // Any tracked allocation makes the detector report what the collection found.
                Unpooled.directBuffer(1).release();
            }
        }
    }

    /** Run only through {@link #run}: the surefire naming rules skip nested classes. */
    @ExtendWith(NettyLeakExtension.class)
    static class Tests {
        static final List<ByteBuf> KEPT = new ArrayList<>();

        @Test
        void leaksAnUnpooledBuffer() {
            // Direct: Netty tracks unpooled heap buffers not at all, as the collector frees them anyway.
            ByteBuf buf = Unpooled.directBuffer(64);
            buf.writeLong(42);
            // Dropped without release().
        }

        @Test
        void leaksAPooledBuffer() {
            ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(128);
            buf.writeInt(7);
        }

        @Test
        void releasesWhatItAllocates() {
            ByteBuf buf = Unpooled.directBuffer(64);
            buf.writeLong(1);
            buf.release();
            ByteBuf pooled = PooledByteBufAllocator.DEFAULT.buffer(64);
            pooled.release();
        }

        @Test
        void keepsABufferReferenced() {
            KEPT.add(Unpooled.directBuffer(16));
        }
    }
}
