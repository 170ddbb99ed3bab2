package dev.mqnbd.storage.s3;

import java.time.Duration;
import java.util.Collection;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.IntFunction;

/**
 * An {@link ObjectStore} decorator that injects faults, per kind of request: fail the next N requests,
 * fail all, delay each (honouring the request's timeout, as the SDK does: a delay longer than the
 * timeout ends in a timeout), or store and then lose the reply. Faults throw retryable {@link
 * StoreException}s, as the SDK does once its own retries are spent.
 *
 * <p><b>Threading:</b> safe for concurrent use; faults may be changed while requests run.
 */
final class FaultyStore implements ObjectStore {
    /** The kinds of request faults apply to. */
    enum Op {
        /** GET of any object. */
        GET,
        /** Plain PUT: block uploads. */
        PUT,
        /** Conditional PUT: lease (its release included) and metadata. */
        CONDITIONAL_PUT,
        /** DELETE, single or batch: blocks, trim records. */
        DELETE,
        /** LIST. */
        LIST
    }

    private static final class Faults {
        final AtomicInteger failNext = new AtomicInteger();
        final AtomicInteger loseNext = new AtomicInteger();
        volatile boolean failAlways;
        volatile boolean permanent;
        volatile Duration delay = Duration.ZERO;
        volatile Duration hang = Duration.ZERO;
        volatile CountDownLatch gate;
        final AtomicInteger calls = new AtomicInteger();
        final AtomicInteger injected = new AtomicInteger();
    }

    private final ObjectStore next;
    private final Map<Op, Faults> faults = new EnumMap<>(Op.class);

    FaultyStore(ObjectStore next) {
        this.next = next;
        for (Op op : Op.values()) {
            faults.put(op, new Faults());
        }
    }

    /** Fails the next {@code n} requests of kind {@code op}. */
    FaultyStore failNext(Op op, int n) {
        faults.get(op).failNext.set(n);
        return this;
    }

    /** Fails every request of kind {@code op} until {@link #clear}. */
    FaultyStore failAlways(Op op) {
        faults.get(op).failAlways = true;
        return this;
    }

    /** Fails every request of kind {@code op} with an error retrying cannot fix (403 AccessDenied). */
    FaultyStore failPermanently(Op op) {
        faults.get(op).permanent = true;
        return this;
    }

    /** Holds every request of kind {@code op} for {@code hang}, ignoring its timeout (a store that hangs). */
    FaultyStore hang(Op op, Duration hang) {
        faults.get(op).hang = hang;
        return this;
    }

    /**
     * Holds every request of kind {@code op} until {@link #release} (a store that is slow to answer); one
     * still held at its timeout fails as timed out.
     */
    FaultyStore hold(Op op) {
        faults.get(op).gate = new CountDownLatch(1);
        return this;
    }

    /** Lets the requests of kind {@code op} held by {@link #hold} go on, and those after them. */
    FaultyStore release(Op op) {
        CountDownLatch gate = faults.get(op).gate;
        faults.get(op).gate = null;
        if (gate != null) {
            gate.countDown();
        }
        return this;
    }

    /** Delays every request of kind {@code op}; past the request's timeout it fails as timed out. */
    FaultyStore delay(Op op, Duration delay) {
        faults.get(op).delay = delay;
        return this;
    }

    /** Lets the next {@code n} requests of kind {@code op} reach the store, then fails them: lost replies. */
    FaultyStore loseReplies(Op op, int n) {
        faults.get(op).loseNext.set(n);
        return this;
    }

    /** Removes every fault. */
    FaultyStore clear() {
        for (Faults f : faults.values()) {
            f.failNext.set(0);
            f.loseNext.set(0);
            f.failAlways = false;
            f.permanent = false;
            f.delay = Duration.ZERO;
            f.hang = Duration.ZERO;
            CountDownLatch gate = f.gate;
            f.gate = null;
            if (gate != null) {
                gate.countDown();
            }
        }
        return this;
    }

    /** Returns the number of requests of kind {@code op} made. */
    int calls(Op op) {
        return faults.get(op).calls.get();
    }

    /** Returns the number of faults injected into requests of kind {@code op}. */
    int injected(Op op) {
        return faults.get(op).injected.get();
    }

    /** Applies the faults due before the request; returns whether to lose its reply after it. */
    private boolean before(Op op, String what, Duration timeout) throws StoreException {
        Faults f = faults.get(op);
        f.calls.incrementAndGet();
        if (!f.hang.isZero()) {
            sleep(f.hang);
        }
        CountDownLatch gate = f.gate;
        if (gate != null && !await(gate, timeout)) {
            f.injected.incrementAndGet();
            throw new StoreException(
                    "injected: " + what + " held past its timeout of " + timeout.toMillis() + " ms", 0, true);
        }
        if (f.permanent) {
            f.injected.incrementAndGet();
            throw new StoreException("injected: " + what + ": 403 AccessDenied", 403, false);
        }
        Duration delay = f.delay;
        if (!delay.isZero()) {
            boolean timesOut = delay.compareTo(timeout) > 0;
            sleep(timesOut ? timeout : delay);
            if (timesOut) {
                f.injected.incrementAndGet();
                throw new StoreException(
                        "injected: " + what + " timed out after " + timeout.toMillis() + " ms", 0, true);
            }
        }
        if (f.failAlways || decrementIfPositive(f.failNext)) {
            f.injected.incrementAndGet();
            throw new StoreException("injected: " + what + ": 503 SlowDown", 503, true);
        }
        return decrementIfPositive(f.loseNext);
    }

    private static void after(boolean lose, String what, Faults f) throws StoreException {
        if (lose) {
            f.injected.incrementAndGet();
            throw new StoreException("injected: " + what + ": reply lost", 0, true);
        }
    }

    private static boolean decrementIfPositive(AtomicInteger n) {
        return n.getAndUpdate(v -> v > 0 ? v - 1 : 0) > 0;
    }

    private static boolean await(CountDownLatch gate, Duration timeout) {
        try {
            return gate.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static void sleep(Duration d) {
        try {
            Thread.sleep(d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public StoredObject get(String key, Duration timeout, IntFunction<byte[]> buffers) throws StoreException {
        boolean lose = before(Op.GET, "GET " + key, timeout);
        StoredObject o = next.get(key, timeout, buffers);
        after(lose, "GET " + key, faults.get(Op.GET));
        return o;
    }

    @Override
    public String put(String key, byte[] data, Map<String, String> metadata, Duration timeout) throws StoreException {
        boolean lose = before(Op.PUT, "PUT " + key, timeout);
        String etag = next.put(key, data, metadata, timeout);
        after(lose, "PUT " + key, faults.get(Op.PUT));
        return etag;
    }

    @Override
    public String putIfAbsent(String key, byte[] data, Duration timeout) throws StoreException {
        boolean lose = before(Op.CONDITIONAL_PUT, "PUT " + key, timeout);
        String etag = next.putIfAbsent(key, data, timeout);
        after(lose, "PUT " + key, faults.get(Op.CONDITIONAL_PUT));
        return etag;
    }

    @Override
    public String putIfMatch(String key, byte[] data, String etag, Duration timeout) throws StoreException {
        boolean lose = before(Op.CONDITIONAL_PUT, "PUT " + key, timeout);
        String tag = next.putIfMatch(key, data, etag, timeout);
        after(lose, "PUT " + key, faults.get(Op.CONDITIONAL_PUT));
        return tag;
    }

    @Override
    public void delete(String key, Duration timeout) throws StoreException {
        boolean lose = before(Op.DELETE, "DELETE " + key, timeout);
        next.delete(key, timeout);
        after(lose, "DELETE " + key, faults.get(Op.DELETE));
    }

    @Override
    public void deleteAll(Collection<String> keys, Duration timeout) throws StoreException {
        boolean lose = before(Op.DELETE, "DELETE " + keys.size() + " keys", timeout);
        next.deleteAll(keys, timeout);
        after(lose, "DELETE", faults.get(Op.DELETE));
    }

    @Override
    public void list(String prefix, Consumer<String> keys, Duration timeout) throws StoreException {
        boolean lose = before(Op.LIST, "LIST " + prefix, timeout);
        next.list(prefix, keys, timeout);
        after(lose, "LIST " + prefix, faults.get(Op.LIST));
    }

    @Override
    public String describe() {
        return next.describe() + " (with injected faults)";
    }

    @Override
    public void close() {
        next.close();
    }
}
