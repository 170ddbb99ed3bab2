package dev.mqnbd.server.fuzz;

import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Turns the server's own log off while a fuzz test runs: a fuzzer closes thousands of connections a
 * second for framing errors, and logging each would slow it down many times and bury its output. What
 * the fuzz tests check does not depend on the log.
 */
final class QuietLogs {
    // Held strongly: java.util.logging keeps loggers only weakly, and a collected logger forgets its level.
    private static final Logger SERVER = Logger.getLogger("dev.mqnbd");
    private static Level before;

    private QuietLogs() {}

    static synchronized void silence() {
        before = SERVER.getLevel();
        SERVER.setLevel(Level.OFF);
    }

    static synchronized void restore() {
        SERVER.setLevel(before);
    }
}
