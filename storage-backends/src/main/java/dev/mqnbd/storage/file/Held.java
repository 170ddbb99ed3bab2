package dev.mqnbd.storage.file;

import java.util.Arrays;
import java.util.NoSuchElementException;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * A FIFO of items a driver keeps past {@code queueRq}, each with the request generation it had when it
 * was kept, so that it is ended with {@code Request.end(generation, status)}: a reference that went stale
 * (its tag ended and reused meanwhile) is then rejected instead of ending the tag's new request.
 *
 * <p>A growable ring of two parallel arrays: adding and removing allocate nothing once it has grown to
 * the queue depth.
 *
 * <p><b>Threading:</b> none; each instance is confined to one thread or guarded by its owner's lock.
 *
 * @param <W> the kept item (the device's requests; tests use their own)
 */
final class Held<W> {
    private @Nullable Object[] items;
    private int[] generations;
    private int head;
    private int size;

    /** Creates an empty ring with room for {@code capacity} items before it grows. */
    Held(int capacity) {
        int n = Math.max(2, capacity);
        this.items = new Object[n];
        this.generations = new int[n];
    }

    /** Adds {@code item}, kept at {@code generation}, at the tail. */
    void add(W item, int generation) {
        if (size == items.length) {
            grow();
        }
        int at = (head + size) % items.length;
        items[at] = item;
        generations[at] = generation;
        size++;
    }

    boolean isEmpty() {
        return size == 0;
    }

    int size() {
        return size;
    }

    /** Returns the item at the head. */
    @SuppressWarnings("unchecked")
    W first() {
        requireNonEmpty();
        return (W) Objects.requireNonNull(items[head]);
    }

    /** Returns the generation the item at the head was kept at. */
    int firstGeneration() {
        requireNonEmpty();
        return generations[head];
    }

    /** Removes the item at the head. */
    void removeFirst() {
        requireNonEmpty();
        items[head] = null;
        head = (head + 1) % items.length;
        size--;
    }

    /** Moves every item, in order and with its generation, to the tail of {@code to}. */
    void drainTo(Held<W> to) {
        while (size > 0) {
            to.add(first(), generations[head]);
            removeFirst();
        }
    }

    private void requireNonEmpty() {
        if (size == 0) {
            throw new NoSuchElementException("no item held");
        }
    }

    private void grow() {
        int n = items.length;
        @Nullable Object[] newItems = new Object[n * 2];
        int[] newGenerations = new int[n * 2];
        for (int i = 0; i < size; i++) {
            newItems[i] = items[(head + i) % n];
            newGenerations[i] = generations[(head + i) % n];
        }
        Arrays.fill(items, null);
        items = newItems;
        generations = newGenerations;
        head = 0;
    }
}
