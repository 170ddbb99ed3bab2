package dev.mqnbd.storage.file;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import java.io.IOException;

/**
 * The {@code file} backend: serves an image file or a block device ({@code file:/var/lib/disk.img},
 * {@code file:/dev/sdb}). See the package documentation for the spec grammar.
 *
 * <p><b>Ownership:</b> {@link #open} hands the caller a queue that owns its {@link FileStore}: closing
 * the queue makes the last writes durable and closes and unlocks the file.
 *
 * <p><b>Threading:</b> stateless; safe to share.
 */
public final class FileBackend implements Backend {
    /** The spec scheme: {@code file}. */
    public static final String SCHEME = "file";

    /** Creates the backend; {@link java.util.ServiceLoader} calls this. */
    public FileBackend() {}

    @Override
    public String scheme() {
        return SCHEME;
    }

    @Override
    public String usage() {
        return "file:PATH[,create=SIZE][,direct]  an image file or block device; create=SIZE creates a missing"
                + " file (sparse), direct uses O_DIRECT; e.g. file:/var/lib/mqnbd/disk.img,create=10G";
    }

    /**
     * Opens the file {@code spec} names.
     *
     * <p><b>Ownership:</b> the caller builds or closes the device; the built queue owns the file.
     *
     * @throws IllegalArgumentException if {@code spec} is malformed
     * @throws IOException if the file is missing (without {@code create=}), a directory, locked by another
     *     server, or cannot be opened; the message names the file
     */
    @Override
    public Device<FileHwData, FileStore, FileStore, Void> open(String spec, DeviceOptions options, QueueSetup setup)
            throws IOException {
        FileStore store = FileOpener.open(FileSpec.parse(spec), options.readOnly(), setup.name(), null);
        return device(store, setup, SCHEME + ":" + spec);
    }

    /** Returns the device over {@code store}; closes the store if that fails. */
    static Device<FileHwData, FileStore, FileStore, Void> device(
            FileStore store, QueueSetup setup, String description) {
        FileBlockDevice device;
        try {
            device = new FileBlockDevice(store, setup.queueDepth());
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
        return new Device<>(device, store, store, device.limits(), description);
    }

    /** Builds the tag set and the queue over {@code store}; closes the store if that fails. */
    static BlockQueue<FileHwData, FileStore, FileStore, Void> open(FileStore store, QueueSetup setup)
            throws MqException {
        return device(store, setup, SCHEME + ":" + store).build(setup);
    }
}
