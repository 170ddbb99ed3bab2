package dev.mqnbd.server.fuzz;

import java.util.function.Supplier;

/**
 * Property checks for the fuzz loops, where AssertJ's per-call cost would dominate a run: a failed check
 * throws an {@link AssertionError} whose message is built only then.
 */
final class Check {
    private Check() {}

    static void that(boolean holds, Supplier<String> what) {
        if (!holds) {
            throw new AssertionError(what.get());
        }
    }
}
