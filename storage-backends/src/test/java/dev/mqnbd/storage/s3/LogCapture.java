package dev.mqnbd.storage.s3;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * Records what the S3 backend logs (through {@link System.Logger}, which lands in java.util.logging
 * without another binding), so tests can assert on messages.
 */
final class LogCapture extends Handler implements AutoCloseable {
    private final Logger logger = Logger.getLogger("dev.mqnbd.storage.s3");
    private final Level oldLevel;
    private final List<LogRecord> records = new CopyOnWriteArrayList<>();

    LogCapture() {
        oldLevel = logger.getLevel();
        logger.setLevel(Level.ALL);
        setLevel(Level.ALL);
        logger.addHandler(this);
    }

    @Override
    public void publish(LogRecord record) {
        records.add(record);
    }

    @Override
    public void flush() {}

    @Override
    public void close() {
        logger.removeHandler(this);
        logger.setLevel(oldLevel);
    }

    /** Returns the messages logged at {@code level} or above. */
    List<String> messages(Level level) {
        return records.stream()
                .filter(r -> r.getLevel().intValue() >= level.intValue())
                .map(LogRecord::getMessage)
                .toList();
    }
}
