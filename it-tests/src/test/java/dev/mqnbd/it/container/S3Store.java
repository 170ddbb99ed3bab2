package dev.mqnbd.it.container;

import java.util.List;
import org.testcontainers.containers.GenericContainer;
import org.testcontainers.utility.DockerImageName;

/**
 * The S3-compatible stores the S3 tests run against, each in a locally built image: what starts it, when
 * it is ready, and how to see the keys it holds without going through mqnbd.
 *
 * <ul>
 *   <li>{@link #S3PROXY}: S3Proxy 4.1 with its filesystem store ({@code mqnbd-s3:latest}), the default;
 *   <li>{@link #RGW}: Ceph's RADOS Gateway 16.2 over a one-OSD cluster that keeps objects in memory
 *       ({@code mqnbd-ceph:latest}), the distributed store users scale onto. It differs from S3Proxy where
 *       the backend must cope: a quoted {@code If-Match} never matches, {@code If-Match} on DELETE is
 *       ignored, and so is {@code x-amz-checksum-crc32c} on upload.
 * </ul>
 */
public enum S3Store {
    S3PROXY("mqnbd-s3:latest", 9000, ".*Started .*Server@.*\\n", TestImages::ensureS3Image) {
        @Override
        List<String> listCommand(String bucket, String prefix) {
            // The files of its filesystem store; find fails when the prefix's folder does not exist.
            return List.of("find", "/data/" + bucket + "/" + prefix, "-type", "f");
        }

        @Override
        String key(String listed, String bucket) {
            return listed.substring(("/data/" + bucket + "/").length());
        }
    },
    RGW("mqnbd-ceph:latest", 7480, ".*mqnbd-ceph: ready\\n", TestImages::ensureCephImage) {
        @Override
        List<String> listCommand(String bucket, String prefix) {
            // The gateway's own listing (ListObjects), made inside its container.
            return List.of("python3", "/opt/ceph/s3-request", "list", bucket, prefix);
        }

        @Override
        String key(String listed, String bucket) {
            return listed;
        }
    };

    private final String image;
    private final int port;
    private final String readyLine;
    private final Runnable ensureImage;

    S3Store(String image, int port, String readyLine, Runnable ensureImage) {
        this.image = image;
        this.port = port;
        this.readyLine = readyLine;
        this.ensureImage = ensureImage;
    }

    /** Returns the image the store runs from. */
    public String image() {
        return image;
    }

    /** Returns the port the store serves S3 on, inside its container. */
    int port() {
        return port;
    }

    /** Returns the regular expression of the log line that says the store serves. */
    String readyLine() {
        return readyLine;
    }

    /** Builds the store's image unless it is up to date. */
    void ensureImage() {
        ensureImage.run();
    }

    /** Returns the command, run in the store's container, that prints what it holds under {@code prefix}. */
    abstract List<String> listCommand(String bucket, String prefix);

    /** Returns the key of a line {@link #listCommand} printed for {@code bucket}. */
    abstract String key(String listed, String bucket);

    /** Returns the container of this store, not started, with the given credentials and bucket. */
    GenericContainer<?> container(String identity, String credential, String bucket) {
        return new GenericContainer<>(DockerImageName.parse(image))
                .withImagePullPolicy(new NeverPull())
                .withEnv("S3_IDENTITY", identity)
                .withEnv("S3_CREDENTIAL", credential)
                .withEnv("S3_BUCKETS", bucket)
                .withExposedPorts(port);
    }

    @Override
    public String toString() {
        return this == S3PROXY ? "S3Proxy" : "Ceph RGW";
    }
}
