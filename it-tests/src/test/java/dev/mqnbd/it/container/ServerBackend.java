package dev.mqnbd.it.container;

import java.nio.file.Path;
import java.util.List;

/**
 * A storage backend the end-to-end checks run against: it turns an export name and size into the
 * {@code --export NAME=SPEC} spec the server takes. The container tests and the VM tests run their
 * checks for every backend in {@link #all()}; a new backend (file, S3) is one more entry there.
 */
public interface ServerBackend {
    /** Sparse RAM: {@code memory:SIZE}. */
    ServerBackend MEMORY = new ServerBackend() {
        @Override
        public String name() {
            return "memory";
        }

        @Override
        public String spec(Path dataDir, String export, String size) {
            return "memory:" + size;
        }

        @Override
        public String toString() {
            return name();
        }
    };

    /** A sparse image file, created at its size: {@code file:DIR/EXPORT.img,create=SIZE}. */
    ServerBackend FILE = new ServerBackend() {
        @Override
        public String name() {
            return "file";
        }

        @Override
        public String spec(Path dataDir, String export, String size) {
            return "file:" + dataDir.resolve(export + ".img") + ",create=" + size;
        }

        @Override
        public String toString() {
            return name();
        }
    };

    /**
     * Block objects in the S3-compatible test server ({@link S3Server}), one prefix per export, created at
     * its size in 64 KiB blocks: {@code s3://mqnbd/EXPORT,create=SIZE,block-size=64K}. The server needs
     * {@link S3Server}'s endpoint settings and credentials.
     */
    ServerBackend S3 = new ServerBackend() {
        @Override
        public String name() {
            return "s3";
        }

        @Override
        public String spec(Path dataDir, String export, String size) {
            // 64 KiB blocks: the smallest, so block status is as fine-grained as the checks expect (S3ExportIT
            // covers the 1 MiB default).
            return "s3://" + S3Server.BUCKET + "/" + export + ",create=" + size + ",block-size=64K";
        }

        @Override
        public boolean needsS3() {
            return true;
        }

        @Override
        public String toString() {
            return name();
        }
    };

    /** Returns every backend the end-to-end checks cover. */
    static List<ServerBackend> all() {
        return List.of(MEMORY, FILE, S3);
    }

    /** A short lower-case name, used in export names and test names. */
    String name();

    /**
     * Returns the spec of export {@code export} of {@code size} (like {@code 512M}).
     *
     * @param dataDir a folder the server can write (inside the server container, or on the host for the
     *     in-process server of the VM tests) for backends that keep data in files
     */
    String spec(Path dataDir, String export, String size);

    /** Returns whether the server needs the S3 test server ({@link S3Server}) for this backend's exports. */
    default boolean needsS3() {
        return false;
    }
}
