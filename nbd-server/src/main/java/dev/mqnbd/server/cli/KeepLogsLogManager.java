package dev.mqnbd.server.cli;

import java.util.logging.LogManager;

/**
 * A {@link LogManager} that keeps its handlers while shutdown hooks run: the JDK's own resets logging
 * from a shutdown hook of its own, which would swallow what the server logs while it stops gracefully.
 * Installed by {@link Main} through {@code java.util.logging.manager} before anything logs.
 */
public final class KeepLogsLogManager extends LogManager {
    /** Called by {@link LogManager} itself. */
    public KeepLogsLogManager() {}

    @Override
    public void reset() {
        // Kept: the process is about to end, and every record is flushed as it is published.
    }
}
