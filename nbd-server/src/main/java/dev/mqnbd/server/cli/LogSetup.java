package dev.mqnbd.server.cli;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.logging.ConsoleHandler;
import java.util.logging.Formatter;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/** One line per log record on standard error: time, level, what happened. */
final class LogSetup {
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss.SSS");

    private LogSetup() {}

    static void configure(boolean verbose) {
        Logger root = Logger.getLogger("");
        for (var handler : root.getHandlers()) {
            root.removeHandler(handler);
        }
        ConsoleHandler handler = new ConsoleHandler();
        handler.setFormatter(new OneLine());
        Level level = verbose ? Level.FINE : Level.INFO;
        handler.setLevel(level);
        root.addHandler(handler);
        root.setLevel(Level.INFO);
        Logger.getLogger("dev.mqnbd").setLevel(level);
    }

    private static final class OneLine extends Formatter {
        @Override
        public String format(LogRecord record) {
            StringBuilder line = new StringBuilder(128)
                    .append(LocalDateTime.now().format(TIME))
                    .append(' ')
                    .append(levelName(record.getLevel()))
                    .append(' ')
                    .append(formatMessage(record));
            if (record.getThrown() != null) {
                var out = new StringWriter();
                record.getThrown().printStackTrace(new PrintWriter(out));
                line.append(System.lineSeparator()).append(out.toString().stripTrailing());
            }
            return line.append(System.lineSeparator()).toString();
        }

        private static String levelName(Level level) {
            if (level.intValue() >= Level.SEVERE.intValue()) {
                return "ERROR";
            }
            if (level.intValue() >= Level.WARNING.intValue()) {
                return "WARN ";
            }
            if (level.intValue() >= Level.INFO.intValue()) {
                return "INFO ";
            }
            return "DEBUG";
        }
    }
}
