package dev.mqnbd.storage.file;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.NoSuchElementException;
import org.junit.jupiter.api.Test;

class HeldTest {

    @Test
    void keepsOrderAndGenerations_acrossGrowthAndWrapAround() {
        Held<String> held = new Held<>(2);
        int next = 0;
        int expected = 0;
        for (int round = 0; round < 50; round++) {
            for (int i = 0; i < round % 7 + 1; i++) {
                held.add("item" + next, 1000 + next);
                next++;
            }
            for (int i = 0; i < round % 5 && !held.isEmpty(); i++) {
                assertEquals("item" + expected, held.first());
                assertEquals(1000 + expected, held.firstGeneration());
                held.removeFirst();
                expected++;
            }
        }
        assertEquals(next - expected, held.size());
        Held<String> to = new Held<>(1);
        to.add("before", -1);
        held.drainTo(to);
        assertTrue(held.isEmpty());
        assertEquals("before", to.first());
        to.removeFirst();
        while (!to.isEmpty()) {
            assertEquals("item" + expected, to.first());
            assertEquals(1000 + expected, to.firstGeneration());
            to.removeFirst();
            expected++;
        }
        assertEquals(next, expected);
    }

    @Test
    void emptyRing_refusesToPeekOrRemove() {
        Held<String> held = new Held<>(4);
        assertThrows(NoSuchElementException.class, held::first);
        assertThrows(NoSuchElementException.class, held::firstGeneration);
        assertThrows(NoSuchElementException.class, held::removeFirst);
    }
}
