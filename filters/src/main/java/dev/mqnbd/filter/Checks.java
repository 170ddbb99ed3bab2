package dev.mqnbd.filter;

/** Argument checks with messages in the project's form: {@code name: value (expected: ...)}. */
final class Checks {
    private Checks() {}

    /**
     * Throws when {@code ok} is false.
     *
     * @throws IllegalArgumentException with the formatted message
     */
    static void requireArgument(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new IllegalArgumentException(String.format(format, args));
        }
    }
}
