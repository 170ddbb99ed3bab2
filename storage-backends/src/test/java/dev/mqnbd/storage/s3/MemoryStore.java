package dev.mqnbd.storage.s3;

import java.time.Duration;
import java.util.Collection;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.IntFunction;
import org.jspecify.annotations.Nullable;

/**
 * A fake {@link ObjectStore} in memory, with the conditional-write semantics of S3 (a new etag per
 * write, {@code If-None-Match: *}, {@code If-Match}, 412), for the lease logic's tests. It can be taken
 * down (every request fails as unanswered), fail the next conditional writes, or apply the next
 * conditional writes and lose their replies.
 *
 * <p><b>Threading:</b> safe for concurrent use.
 */
final class MemoryStore implements ObjectStore {
    private final Map<String, StoredObject> objects = new ConcurrentHashMap<>();
    private final AtomicInteger etags = new AtomicInteger();
    private final AtomicInteger failConditional = new AtomicInteger();
    private final AtomicInteger loseConditional = new AtomicInteger();
    private final AtomicInteger conditionalWrites = new AtomicInteger();
    private volatile boolean down;

    /** Takes the store down ({@code true}: every request fails, unanswered) or brings it back. */
    void down(boolean down) {
        this.down = down;
    }

    /** Fails the next {@code n} conditional writes, unanswered, without applying them. */
    void failConditional(int n) {
        failConditional.set(n);
    }

    /** Applies the next {@code n} conditional writes, then fails them as if their replies were lost. */
    void loseConditional(int n) {
        loseConditional.set(n);
    }

    /** Returns the number of conditional writes asked for. */
    int conditionalWrites() {
        return conditionalWrites.get();
    }

    /** Stores {@code data} as {@code key} directly, as another server would. */
    void set(String key, byte[] data) {
        objects.put(key, new StoredObject(data, nextEtag(), Map.of()));
    }

    /** Returns the bytes of {@code key}, or {@code null}. */
    byte @Nullable [] bytes(String key) {
        StoredObject o = objects.get(key);
        return o == null ? null : o.data();
    }

    private String nextEtag() {
        return "\"etag-" + etags.incrementAndGet() + "\"";
    }

    private void up(String what) throws StoreException {
        if (down) {
            throw new StoreException(what + ": no reply (the store is down)", 0, true);
        }
    }

    private synchronized String conditional(String key, byte[] data, @Nullable String ifMatch) throws StoreException {
        conditionalWrites.incrementAndGet();
        up("PUT " + key);
        if (decrement(failConditional)) {
            throw new StoreException("PUT " + key + ": no reply (injected)", 0, true);
        }
        StoredObject current = objects.get(key);
        boolean matches = ifMatch == null
                ? current == null
                : current != null && current.etag().equals(ifMatch);
        if (!matches) {
            throw new StoreException("PUT " + key + ": 412 PreconditionFailed", 412, false);
        }
        String etag = nextEtag();
        objects.put(key, new StoredObject(data.clone(), etag, Map.of()));
        if (decrement(loseConditional)) {
            throw new StoreException("PUT " + key + ": no reply (applied, reply lost)", 0, true);
        }
        return etag;
    }

    private static boolean decrement(AtomicInteger n) {
        return n.getAndUpdate(v -> v > 0 ? v - 1 : 0) > 0;
    }

    @Override
    public @Nullable StoredObject get(String key, Duration timeout, IntFunction<byte[]> buffers) throws StoreException {
        up("GET " + key);
        StoredObject o = objects.get(key);
        if (o == null) {
            return null;
        }
        // As a store over the network: the caller's own copy, in an array of its choosing.
        byte[] data = buffers.apply(o.data().length);
        System.arraycopy(o.data(), 0, data, 0, data.length);
        return new StoredObject(data, o.etag(), o.metadata());
    }

    @Override
    public String put(String key, byte[] data, Map<String, String> metadata, Duration timeout) throws StoreException {
        up("PUT " + key);
        String etag = nextEtag();
        objects.put(key, new StoredObject(data.clone(), etag, Map.copyOf(metadata)));
        return etag;
    }

    @Override
    public String putIfAbsent(String key, byte[] data, Duration timeout) throws StoreException {
        return conditional(key, data, null);
    }

    @Override
    public String putIfMatch(String key, byte[] data, String etag, Duration timeout) throws StoreException {
        return conditional(key, data, etag);
    }

    @Override
    public void delete(String key, Duration timeout) throws StoreException {
        up("DELETE " + key);
        objects.remove(key);
    }

    @Override
    public void deleteAll(Collection<String> keys, Duration timeout) throws StoreException {
        up("DELETE");
        keys.forEach(objects::remove);
    }

    @Override
    public void list(String prefix, Consumer<String> keys, Duration timeout) throws StoreException {
        up("LIST " + prefix);
        objects.keySet().stream().filter(k -> k.startsWith(prefix)).sorted().forEach(keys);
    }

    @Override
    public String describe() {
        return "a store in memory";
    }

    @Override
    public void close() {}
}
