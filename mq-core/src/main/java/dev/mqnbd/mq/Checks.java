package dev.mqnbd.mq;

/** Argument checks with formatted messages, after Caffeine's {@code requireArgument}. */
final class Checks {
    private Checks() {}

    /**
     * Throws when {@code ok} is false.
     *
     * @throws IllegalArgumentException with {@code String.format(format, args)} as its message
     */
    static void requireArgument(boolean ok, String format, Object... args) {
        if (!ok) {
            throw new IllegalArgumentException(String.format(format, args));
        }
    }
}
