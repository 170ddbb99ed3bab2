package dev.mqnbd.storage.s3;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.NavigableSet;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The durable record of one large trim ({@code PREFIX/trims/XXXXXXXXXXXXXXXX}, {@link Trims}): the block
 * objects in {@code [first, end)} were trimmed and are deleted in the background, except the blocks in
 * {@code kept}, written again after the trim (their objects hold newer data and must stay).
 *
 * <pre>
 * {"format": "mqnbd-s3-trim", "version": 1, "seq": 7, "first": 0, "end": 4096,
 *  "created": "2026-12-05T09:00:00Z", "kept": "12,40-43"}
 * </pre>
 *
 * <p>The object is written before the trim is answered, rewritten (before the PUT) whenever a block of
 * its range is written while it exists, and deleted once every block of its range was deleted. A server
 * that opens the export treats the blocks of {@code [first, end)} not in {@code kept} as zeroes and
 * deletes their objects.
 *
 * <p><b>Threading:</b> the range is immutable; {@code kept} and the counters are guarded by {@code this};
 * store writes and the final delete of the object hold {@link #io}, so a rewrite never resurrects a
 * deleted tombstone.
 */
final class Tombstone {
    /** The format's name, so that a stray object is not mistaken for a tombstone. */
    static final String FORMAT = "mqnbd-s3-trim";

    /** The format version this code writes and reads. */
    static final int VERSION = 1;

    final long seq;
    final long first;
    final long end;
    final Instant created;

    /** Held while the object is written or deleted. */
    final ReentrantLock io = new ReentrantLock();

    // Guarded by this.
    private final NavigableSet<Long> kept = new TreeSet<>();
    private long changes;

    // Guarded by io.
    private long persisted = -1;

    // Written under io.
    private volatile boolean removed;

    /** Set once the trim marked every block of its range: only then may the tombstone be removed. */
    volatile boolean ready;

    Tombstone(long seq, long first, long end, Instant created) {
        this.seq = seq;
        this.first = first;
        this.end = end;
        this.created = created;
    }

    /** Returns whether block {@code index} lies in the trimmed range. */
    boolean covers(long index) {
        return index >= first && index < end;
    }

    /** Returns whether block {@code index} was written after the trim (its object stays). */
    synchronized boolean keeps(long index) {
        return kept.contains(index);
    }

    /** Records that block {@code index} is written after the trim; returns the change to persist. */
    synchronized long keep(long index) {
        if (kept.add(index)) {
            changes++;
        }
        return changes;
    }

    /** Returns the latest change, to persist. */
    synchronized long changes() {
        return changes;
    }

    /**
     * Writes the object unless a write of change {@code upTo} or later already succeeded, or it was
     * removed; several writers needing one change share one write.
     */
    void persist(ObjectStore store, ObjectNames names, long upTo, Duration timeout) throws StoreException {
        lockIo(timeout);
        try {
            if (removed || persisted >= upTo) {
                return;
            }
            long version;
            byte[] json;
            synchronized (this) {
                version = changes;
                json = toJson();
            }
            store.put(names.trim(seq), json, Map.of(), timeout);
            persisted = version;
        } finally {
            io.unlock();
        }
    }

    /** Deletes the object: every block of the range is deleted. Nothing writes it again. */
    void remove(ObjectStore store, ObjectNames names, Duration timeout) throws StoreException {
        lockIo(timeout);
        try {
            store.delete(names.trim(seq), timeout);
            removed = true;
        } finally {
            io.unlock();
        }
    }

    /** Returns whether {@link #remove} succeeded. */
    boolean removed() {
        return removed;
    }

    /** Records that the object as it is now is in the store: it was read from there. */
    void stored() {
        io.lock();
        try {
            persisted = changes();
            ready = true;
        } finally {
            io.unlock();
        }
    }

    private void lockIo(Duration timeout) throws StoreException {
        try {
            if (io.tryLock(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
                return;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        throw new StoreException("timed out waiting to write trim record " + seq, 0, true);
    }

    /** Serialises the tombstone as the JSON object shown above. Under {@code this}. */
    private byte[] toJson() {
        Map<String, Object> fields = new LinkedHashMap<>();
        fields.put("format", FORMAT);
        fields.put("version", VERSION);
        fields.put("seq", seq);
        fields.put("first", first);
        fields.put("end", end);
        fields.put("created", created.toString());
        fields.put("kept", ranges(kept));
        return FlatJson.write(fields).getBytes(StandardCharsets.UTF_8);
    }

    /** Writes sorted indexes as comma-separated ranges: {@code 12,40-43}. */
    static String ranges(NavigableSet<Long> indexes) {
        StringBuilder out = new StringBuilder();
        Long start = null;
        long last = -2;
        for (long i : indexes) {
            if (start != null && i == last + 1) {
                last = i;
                continue;
            }
            if (start != null) {
                appendRange(out, start, last);
            }
            start = i;
            last = i;
        }
        if (start != null) {
            appendRange(out, start, last);
        }
        return out.toString();
    }

    private static void appendRange(StringBuilder out, long from, long to) {
        if (!out.isEmpty()) {
            out.append(',');
        }
        out.append(from);
        if (to != from) {
            out.append('-').append(to);
        }
    }

    /**
     * Reads the tombstone object {@code where} holds, written by this code, with the blocks it keeps.
     *
     * @throws IOException if it is not a tombstone of a format this code reads, or its range is impossible
     */
    static Tombstone parse(String where, byte[] json, long blockCount) throws IOException {
        Map<String, String> fields;
        try {
            fields = FlatJson.read(new String(json, StandardCharsets.UTF_8));
        } catch (IllegalArgumentException e) {
            throw new IOException("trim record " + where + " is not valid JSON: " + e.getMessage());
        }
        if (!FORMAT.equals(fields.get("format"))) {
            throw new IOException("trim record " + where + ": format \"" + fields.get("format") + "\" (expected: \""
                    + FORMAT + "\")");
        }
        try {
            int version = Integer.parseInt(fields.getOrDefault("version", "?"));
            if (version != VERSION) {
                throw new IOException("trim record " + where + ": format version " + version + " (expected: " + VERSION
                        + "; written by a newer mqnbd?)");
            }
            long first = Long.parseLong(fields.getOrDefault("first", "?"));
            long end = Long.parseLong(fields.getOrDefault("end", "?"));
            if (first < 0 || end < first || end > blockCount) {
                throw new IOException("trim record " + where + ": blocks " + first + " to " + end + " (expected: a"
                        + " range within the export's " + blockCount + " blocks)");
            }
            Tombstone t = new Tombstone(
                    Long.parseLong(fields.getOrDefault("seq", "?")),
                    first,
                    end,
                    Instant.parse(fields.getOrDefault("created", "?")));
            String kept = fields.getOrDefault("kept", "");
            for (String range : kept.isEmpty() ? new String[0] : kept.split(",")) {
                int dash = range.indexOf('-');
                long from = Long.parseLong(dash < 0 ? range : range.substring(0, dash));
                long to = dash < 0 ? from : Long.parseLong(range.substring(dash + 1));
                for (long i = from; i <= to; i++) {
                    t.kept.add(i);
                }
            }
            return t;
        } catch (NumberFormatException | DateTimeParseException e) {
            throw new IOException("trim record " + where + ": " + e.getMessage() + " (expected: numbers, kept as"
                    + " ranges such as 12,40-43, created an ISO-8601 instant)");
        }
    }

    @Override
    public String toString() {
        return "Tombstone[" + seq + ": blocks " + first + " to " + end + "]";
    }
}
