package dev.mqnbd.testsupport;

import io.netty.util.ResourceLeakDetector;
import io.netty.util.ResourceLeakDetectorFactory;
import io.netty.util.ResourceLeakTracker;
import java.util.ArrayList;
import java.util.List;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Fails the test in which Netty reports a leaked buffer (or any other resource its leak detector tracks).
 *
 * <p>Registered for every test of a module through JUnit's extension autodetection: the module has
 * test-support in test scope and {@code junit.jupiter.extensions.autodetection.enabled=true} in its {@code
 * junit-platform.properties}. It installs a {@link ResourceLeakDetectorFactory} whose detectors record each
 * leak report (and still log it, as Netty does). After each test that left tracked objects unreleased, it
 * runs the garbage collector and has each detector look at what was collected, so that a buffer the test
 * dropped without releasing is reported before the test ends, and the test fails with the report.
 *
 * <p>Netty creates most detectors when its classes initialise, so the factory must be in place first: the
 * extension installs it when its class loads, which autodetection does before any test class runs. Leak
 * detection needs the detector at {@code paranoid} ({@code -Dio.netty.leakDetection.level=paranoid}, as the
 * parent POM sets) to see every buffer; at a lower level it samples.
 *
 * <p><b>Threading:</b> a leak may be reported on any thread that allocates; reports are queued and taken
 * by the test's thread after the test.
 */
public final class NettyLeakExtension implements BeforeEachCallback, AfterEachCallback {
    /** How often to collect garbage and look for reports while tracked objects are still unreleased. */
    private static final int ROUNDS = 5;

    private static final Queue<String> REPORTS = new ConcurrentLinkedQueue<>();
    private static final List<RecordingDetector<?>> DETECTORS = new CopyOnWriteArrayList<>();

    /** Tracked objects not yet released (closed), over every detector. */
    private static final AtomicLong OPEN = new AtomicLong();

    static {
        ResourceLeakDetectorFactory.setResourceLeakDetectorFactory(new RecordingFactory());
    }

    /** Creates the extension; JUnit does, through autodetection or {@code @ExtendWith}. */
    public NettyLeakExtension() {}

    @Override
    public void beforeEach(ExtensionContext context) {
        // A leak reported since the last test ended (a buffer collected late, a class-level setup) fails this
        // test rather than none: the report's access records say where the buffer was used.
        failOnReports(
                context,
                "reported before " + context.getDisplayName()
                        + " began, so they come from an earlier test or a class-level setup");
    }

    @Override
    public void afterEach(ExtensionContext context) {
        if (OPEN.get() > 0) {
            collect();
        }
        failOnReports(context, "during " + context.getDisplayName());
    }

    private static void failOnReports(ExtensionContext context, String when) {
        List<String> leaks = new ArrayList<>();
        for (String report; (report = REPORTS.poll()) != null; ) {
            leaks.add(report);
        }
        if (!leaks.isEmpty()) {
            throw new AssertionError(leaks.size() + " Netty leak report(s) " + when + ":\n" + String.join("\n", leaks));
        }
    }

    /**
     * Collects garbage and has every detector report what was collected unreleased: up to {@link #ROUNDS}
     * times while tracked objects stay open, or until a leak is reported.
     */
    private static void collect() {
        for (int round = 0; round < ROUNDS && OPEN.get() > 0; round++) {
            System.gc();
            try {
                // The reference handler thread queues what the collection cleared.
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            for (RecordingDetector<?> detector : DETECTORS) {
                detector.poll();
            }
            if (!REPORTS.isEmpty()) {
                return;
            }
        }
    }

    private static final class RecordingFactory extends ResourceLeakDetectorFactory {
        @Override
        public <T> ResourceLeakDetector<T> newResourceLeakDetector(
                Class<T> resource, int samplingInterval, long maxActive) {
            return newResourceLeakDetector(resource, samplingInterval);
        }

        @Override
        public <T> ResourceLeakDetector<T> newResourceLeakDetector(Class<T> resource, int samplingInterval) {
            RecordingDetector<T> detector = new RecordingDetector<>(resource, samplingInterval);
            DETECTORS.add(detector);
            return detector;
        }
    }

    /** A detector that records what it reports and counts the objects it tracks until they are released. */
    private static final class RecordingDetector<T> extends ResourceLeakDetector<T> {
        RecordingDetector(Class<?> resource, int samplingInterval) {
            super(resource, samplingInterval);
        }

        @Override
        public @Nullable ResourceLeakTracker<T> track(T obj) {
            return counted(super.track(obj));
        }

        @Override
        public @Nullable ResourceLeakTracker<T> trackForcibly(T obj) {
            return counted(super.trackForcibly(obj));
        }

        /** Makes the detector look at what was collected: Netty does so whenever it starts tracking. */
        @SuppressWarnings("unchecked")
        void poll() {
            Object probe = new Object();
            ResourceLeakTracker<Object> tracker = ((ResourceLeakDetector<Object>) this).trackForcibly(probe);
            if (tracker != null) {
                tracker.close(probe);
            }
        }

        @Override
        protected boolean needReport() {
            return true;
        }

        @Override
        protected void reportTracedLeak(String resourceType, String records) {
            REPORTS.add(
                    "LEAK: " + resourceType + ".release() was not called before it was garbage-collected." + records);
            super.reportTracedLeak(resourceType, records);
        }

        @Override
        protected void reportUntracedLeak(String resourceType) {
            REPORTS.add("LEAK: " + resourceType + ".release() was not called before it was garbage-collected"
                    + " (no records: the detector level is below advanced).");
            super.reportUntracedLeak(resourceType);
        }

        private @Nullable ResourceLeakTracker<T> counted(@Nullable ResourceLeakTracker<T> tracker) {
            if (tracker == null) {
                return null;
            }
            OPEN.incrementAndGet();
            return new CountingTracker<>(tracker);
        }
    }

    /** Counts a tracked object as released when Netty closes its tracker. */
    private static final class CountingTracker<T> implements ResourceLeakTracker<T> {
        private final ResourceLeakTracker<T> tracker;

        CountingTracker(ResourceLeakTracker<T> tracker) {
            this.tracker = tracker;
        }

        @Override
        public void record() {
            tracker.record();
        }

        @Override
        public void record(Object hint) {
            tracker.record(hint);
        }

        @Override
        public boolean close(T trackedObject) {
            boolean closed = tracker.close(trackedObject);
            if (closed) {
                OPEN.decrementAndGet();
            }
            return closed;
        }

        @Override
        public @Nullable Throwable getCloseStackTraceIfAny() {
            return tracker.getCloseStackTraceIfAny();
        }
    }
}
