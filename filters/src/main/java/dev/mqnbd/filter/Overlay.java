package dev.mqnbd.filter;

import dev.mqnbd.storage.memory.MemoryStore;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Where a copy-on-write filter keeps what was written: in memory, or in a scratch file created when the
 * export starts and unlinked at once, so that its space goes back to the file system when the server
 * stops, however it stops (its contents mean nothing without the filter's map).
 *
 * <p><b>Threading:</b> safe for concurrent use on disjoint or racing ranges, as NBD allows.
 */
interface Overlay extends AutoCloseable {
    /** Copies {@code length} bytes at {@code offset} into {@code dst[index, index + length)}. */
    void read(long offset, ByteBuffer dst, int index, int length) throws IOException;

    /** Stores {@code src[index, index + length)} at {@code offset}; {@code false} when out of space. */
    boolean write(long offset, ByteBuffer src, int index, int length) throws IOException;

    /** Gives back the space of {@code [offset, offset + length)}, whose bytes no longer matter. */
    void release(long offset, long length) throws IOException;

    /** Makes what was written durable. */
    void sync() throws IOException;

    @Override
    void close() throws IOException;

    /** An overlay in sparse, off-heap memory pages. */
    final class Memory implements Overlay {
        private final MemoryStore store;

        Memory(long capacity) {
            this.store = new MemoryStore(capacity);
        }

        @Override
        public void read(long offset, ByteBuffer dst, int index, int length) {
            store.read(offset, dst, index, length);
        }

        @Override
        public boolean write(long offset, ByteBuffer src, int index, int length) {
            return store.write(offset, src, index, length);
        }

        @Override
        public void release(long offset, long length) {
            store.zero(offset, length, true);
        }

        @Override
        public void sync() {}

        @Override
        public void close() {
            store.close();
        }

        @Override
        public String toString() {
            return "memory";
        }
    }

    /** An overlay in a sparse scratch file, unlinked as soon as it is open: only the server's descriptor holds it. */
    final class File implements Overlay {
        private final Path path;
        private final FileChannel channel;

        /**
         * Creates the file, which must not exist, and unlinks it.
         *
         * @throws IOException if it exists or cannot be created
         */
        File(Path path, long capacity) throws IOException {
            this.path = path;
            this.channel = FileChannel.open(
                    path, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE);
            try {
                // Unlinked while open: a killed server leaves nothing behind, and nobody else can open it.
                Files.delete(path);
                // Sparse: one byte at the end sets the size without allocating the rest.
                channel.write(ByteBuffer.allocate(1), capacity - 1);
            } catch (IOException e) {
                channel.close();
                Files.deleteIfExists(path);
                throw e;
            }
        }

        @Override
        public void read(long offset, ByteBuffer dst, int index, int length) throws IOException {
            ByteBuffer view = dst.duplicate().limit(index + length).position(index);
            while (view.hasRemaining()) {
                int n = channel.read(view, offset);
                if (n < 0) {
                    throw new IOException(path + ": short read at " + offset);
                }
                offset += n;
            }
        }

        @Override
        public boolean write(long offset, ByteBuffer src, int index, int length) throws IOException {
            ByteBuffer view = src.duplicate().limit(index + length).position(index);
            while (view.hasRemaining()) {
                offset += channel.write(view, offset);
            }
            return true;
        }

        @Override
        public void release(long offset, long length) {
            // The map says these bytes read as zeroes; their old contents are never read again.
        }

        @Override
        public void sync() throws IOException {
            channel.force(false);
        }

        @Override
        public void close() throws IOException {
            channel.close();
        }

        @Override
        public String toString() {
            return "file:" + path;
        }
    }
}
