package dev.mqnbd.storage.s3;

import dev.mqnbd.mq.BlockQueue;
import dev.mqnbd.mq.MqException;
import dev.mqnbd.storage.Backend;
import dev.mqnbd.storage.Device;
import dev.mqnbd.storage.DeviceOptions;
import dev.mqnbd.storage.QueueSetup;
import java.io.IOException;
import java.util.function.UnaryOperator;

/**
 * The {@code s3} backend: serves an export kept as fixed-size block objects in an S3 bucket ({@code
 * s3://bucket/disks/disk1,create=100G}). See the package documentation for the spec grammar, the
 * settings and the object layout.
 *
 * <p><b>Ownership:</b> {@link #open} hands the caller a queue that owns its {@link S3Export}: closing the
 * queue uploads what is dirty, releases the write lease and the shared SDK client.
 *
 * <p><b>Threading:</b> stateless; safe to share.
 */
public final class S3Backend implements Backend {
    /** The spec scheme: {@code s3}. */
    public static final String SCHEME = "s3";

    /** Creates the backend; {@link java.util.ServiceLoader} calls this. */
    public S3Backend() {}

    @Override
    public String scheme() {
        return SCHEME;
    }

    @Override
    public String usage() {
        return "s3://BUCKET/PREFIX[,create=SIZE][,block-size=SIZE][,overwrite]  an export kept as block objects in"
                + " S3 or an S3-compatible store (settings " + String.join(", ", S3Settings.KEYS) + "; credentials"
                + " from the AWS default chain); e.g. s3://my-bucket/disks/disk1,create=100G";
    }

    /**
     * Opens the export {@code spec} names and builds its queue.
     *
     * <p><b>Ownership:</b> the caller owns the returned queue; closing it closes the export.
     *
     * @param spec what follows {@code s3:}: {@code //BUCKET/PREFIX[,OPTION]...}
     * @throws IllegalArgumentException if {@code spec} or an {@code s3.*} setting is malformed
     * @throws IOException if the export is missing (without {@code create=}), disagrees with the spec,
     *     is being written by another server, or the store cannot be reached
     * @throws MqException if a hardware context cannot be set up
     */
    @Override
    public Device<S3HwData, S3Export, S3Export, S3RequestData> open(
            String spec, DeviceOptions options, QueueSetup setup) throws IOException {
        return device(spec, options, setup, UnaryOperator.identity());
    }

    /** Opens and builds like {@link #open(String, DeviceOptions, QueueSetup)}, with the store wrapped by {@code decorate} (tests). */
    static BlockQueue<S3HwData, S3Export, S3Export, S3RequestData> open(
            String spec, DeviceOptions options, QueueSetup setup, UnaryOperator<ObjectStore> decorate)
            throws IOException, MqException {
        return device(spec, options, setup, decorate).build(setup);
    }

    private static Device<S3HwData, S3Export, S3Export, S3RequestData> device(
            String spec, DeviceOptions options, QueueSetup setup, UnaryOperator<ObjectStore> decorate)
            throws IOException {
        S3Spec parsed = S3Spec.parse(spec);
        S3Settings settings = S3Settings.parse(options);
        S3Stats stats = new S3Stats();
        S3Clients.Handle client = S3Clients.acquire(settings);
        String bucket = parsed.names().bucket();
        ObjectStore store = decorate.apply(
                settings.directBlocks()
                        ? new DirectObjectStore(client, bucket, stats.requests())
                        : new SdkObjectStore(client, bucket, stats.requests()));
        S3Export export;
        try {
            export = ExportOpener.open(store, parsed, settings, options.readOnly(), setup.name(), stats);
        } catch (IOException | RuntimeException e) {
            store.close();
            throw e;
        }
        S3BlockDevice device;
        try {
            device = new S3BlockDevice(export, setup.queueDepth());
        } catch (RuntimeException e) {
            export.close();
            throw e;
        }
        // OWNERSHIP: from here the device owns the export (its build closes it if the build fails).
        return new Device<>(device, export, export, device.limits(), SCHEME + ":" + spec);
    }
}
