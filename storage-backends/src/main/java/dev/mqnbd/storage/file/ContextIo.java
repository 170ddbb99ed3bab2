package dev.mqnbd.storage.file;

import dev.mqnbd.mq.Request;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import org.jspecify.annotations.Nullable;

/**
 * The system calls of one hardware context on its own descriptor of the file: positional reads and
 * writes, hole punching and zeroing with their fallbacks.
 *
 * <p>A READ or WRITE whose buffer is direct goes straight between the buffer and the file: one {@code
 * pread} or {@code pwrite} per request (more only if the kernel returns short); a payload in several
 * segments goes out in one {@code pwritev}. A heap buffer, or under
 * {@code O_DIRECT} a buffer whose address is not aligned, goes through this context's aligned bounce
 * buffer in chunks. Zeroing that {@code fallocate} cannot do writes zeroes from a shared zero segment.
 *
 * <p><b>Ownership:</b> owned by its {@link FileHwData}, which owns the descriptor and the bounce buffer
 * and closes them.
 *
 * <p><b>Threading:</b> confined to the context's I/O thread.
 */
final class ContextIo {
    /** Size of the bounce buffer and of each chunk of written zeroes: 1 MiB. */
    static final int CHUNK = 1 << 20;

    /** Alignment of the bounce buffer and the zero segment: enough for O_DIRECT on any device. */
    static final int ALIGN = 4096;

    /** Most segments one {@code pwritev} takes: Linux's {@code IOV_MAX}. */
    static final int IOV_MAX = 1024;

    /** Zeroes to write where fallocate cannot zero; read-only by convention, never written. */
    private static final MemorySegment ZEROES = Arena.global().allocate(CHUNK, ALIGN);

    private final FileStore store;
    private final int fd;
    private final LibC libc;
    private final MemorySegment bounce;
    private final ByteBuffer bounceView;
    /** {@code struct iovec[IOV_MAX]} for gathered writes. */
    private final MemorySegment iov;

    ContextIo(FileStore store, int fd, LibC libc, MemorySegment bounce, MemorySegment iov) {
        this.store = store;
        this.fd = fd;
        this.libc = libc;
        this.bounce = bounce;
        this.bounceView = bounce.asByteBuffer();
        this.iov = iov;
    }

    /** Returns the store this context serves. */
    FileStore store() {
        return store;
    }

    /** Fills {@code dst[position, position + length)} from {@code offset}; bytes past the file's end read as zeroes. */
    void read(long offset, ByteBuffer dst, int length) throws IOException {
        MemorySegment seg = directSegment(dst, length);
        if (seg != null) {
            preadFully(seg, offset);
            return;
        }
        int base = dst.position();
        for (int done = 0; done < length; ) {
            int n = Math.min(CHUNK, length - done);
            preadFully(bounce.asSlice(0, n), offset + done);
            dst.put(base + done, bounceView, 0, n);
            done += n;
        }
    }

    /** Writes {@code src[position, position + length)} at {@code offset}. */
    void write(long offset, ByteBuffer src, int length) throws IOException {
        MemorySegment seg = directSegment(src, length);
        if (seg != null) {
            pwriteFully(seg, offset);
            return;
        }
        int base = src.position();
        for (int done = 0; done < length; ) {
            int n = Math.min(CHUNK, length - done);
            bounceView.put(0, src, base + done, n);
            pwriteFully(bounce.asSlice(0, n), offset + done);
            done += n;
        }
    }

    /**
     * Writes a payload held in {@code rq}'s segments at {@code offset}: one {@code pwritev} when every
     * segment can go to the file as it is (direct, and aligned under O_DIRECT) and there are at most
     * {@link #IOV_MAX} of them, else one write per segment. A short {@code pwritev} goes on segment by
     * segment from where it stopped.
     */
    void writeSegments(long offset, Request<?> rq) throws IOException {
        int count = rq.segmentCount();
        long total = 0;
        boolean gather = count > 1 && count <= IOV_MAX;
        for (int i = 0; gather && i < count; i++) {
            ByteBuffer segment = rq.segment(i);
            MemorySegment seg = directSegment(segment, segment.remaining());
            if (seg == null) {
                gather = false;
            } else {
                iov.setAtIndex(ValueLayout.JAVA_LONG, 2L * i, seg.address());
                iov.setAtIndex(ValueLayout.JAVA_LONG, 2L * i + 1, seg.byteSize());
                total += seg.byteSize();
            }
        }
        long done = 0;
        if (gather) {
            long n;
            do {
                n = libc.pwritev(fd, iov, count, offset);
            } while (n < 0 && libc.errno() == LibC.EINTR);
            if (n < 0) {
                throw new ErrnoException("pwritev " + store.path() + " at " + offset, libc.errno());
            }
            if (n == total) {
                return;
            }
            done = n;
        }
        long at = 0;
        for (int i = 0; i < count; i++) {
            ByteBuffer segment = rq.segment(i);
            int length = segment.remaining();
            if (at + length > done) {
                int skip = (int) Math.max(0, done - at);
                write(offset + at + skip, segment.slice(segment.position() + skip, length - skip), length - skip);
            }
            at += length;
        }
    }

    /**
     * Makes the range read as zeroes and frees its whole blocks: {@code fallocate(PUNCH_HOLE |
     * KEEP_SIZE)}, or written zeroes where the file system or device refuses, unless {@code fast}.
     *
     * @return {@code false} when {@code fast} is set and zeroes would have to be written; nothing changed
     */
    boolean punch(long offset, long length, boolean fast) throws IOException {
        if (store.punchSupported()
                && fallocate(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length, "punch hole")) {
            return true;
        }
        return !fast && writeZeroes(offset, length);
    }

    /**
     * Makes the range read as zeroes and keeps it allocated: {@code fallocate(ZERO_RANGE | KEEP_SIZE)},
     * or written zeroes where the file system or device refuses, unless {@code fast}. On a block device
     * the kernel may itself write zeroes for ZERO_RANGE, so {@code fast} refuses there at once.
     *
     * @return {@code false} when {@code fast} is set and zeroes would have to be written; nothing changed
     */
    boolean zeroAllocated(long offset, long length, boolean fast) throws IOException {
        if (fast && store.blockDevice()) {
            return false;
        }
        if (store.zeroRangeSupported()
                && fallocate(LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, offset, length, "zero range")) {
            return true;
        }
        return !fast && writeZeroes(offset, length);
    }

    /** Reports the data and holes of {@code [offset, offset + length)}, clipped to the capacity. */
    void extents(long offset, long length, ExtentConsumer out) throws IOException {
        SeekExtents.report(libc, fd, store.path(), offset, Math.min(store.capacity(), offset + length), out);
    }

    /** Returns false, and tells the store to stop trying, when the mode is not supported here. */
    private boolean fallocate(int mode, long offset, long length, String what) throws IOException {
        for (; ; ) {
            if (libc.fallocate(fd, mode, offset, length) == 0) {
                store.fallocated(mode);
                return true;
            }
            int errno = libc.errno();
            switch (errno) {
                case LibC.EINTR -> {
                    continue;
                }
                case LibC.EOPNOTSUPP, LibC.ENOSYS, LibC.EINVAL, LibC.ENODEV -> {
                    store.unsupported(mode, errno);
                    return false;
                }
                default -> throw new ErrnoException("fallocate (" + what + ") " + store.path(), errno);
            }
        }
    }

    private boolean writeZeroes(long offset, long length) throws IOException {
        for (long done = 0; done < length; ) {
            int n = (int) Math.min(CHUNK, length - done);
            pwriteFully(ZEROES.asSlice(0, n), offset + done);
            done += n;
        }
        store.wroteZeroes(length);
        return true;
    }

    /** Returns the native segment of {@code buf}'s next {@code length} bytes, or null if it must bounce. */
    private @Nullable MemorySegment directSegment(ByteBuffer buf, int length) {
        if (!buf.isDirect()) {
            return null;
        }
        MemorySegment seg = MemorySegment.ofBuffer(buf).asSlice(0, length);
        if (store.direct() && (seg.address() & (ALIGN - 1)) != 0) {
            return null;
        }
        return seg;
    }

    private void preadFully(MemorySegment seg, long offset) throws IOException {
        long size = seg.byteSize();
        long done = 0;
        while (done < size) {
            long n = libc.pread(fd, done == 0 ? seg : seg.asSlice(done), size - done, offset + done);
            if (n > 0) {
                done += n;
            } else if (n == 0) {
                // Past the end of a file that shrank under us: what is not there reads as zeroes.
                seg.asSlice(done).fill((byte) 0);
                return;
            } else if (libc.errno() != LibC.EINTR) {
                throw new ErrnoException("pread " + store.path() + " at " + (offset + done), libc.errno());
            }
        }
    }

    private void pwriteFully(MemorySegment seg, long offset) throws IOException {
        long size = seg.byteSize();
        long done = 0;
        while (done < size) {
            long n = libc.pwrite(fd, done == 0 ? seg : seg.asSlice(done), size - done, offset + done);
            if (n > 0) {
                done += n;
            } else if (n == 0) {
                throw new ErrnoException(
                        "pwrite " + store.path() + " at " + (offset + done) + " wrote nothing", LibC.ENOSPC);
            } else if (libc.errno() != LibC.EINTR) {
                throw new ErrnoException("pwrite " + store.path() + " at " + (offset + done), libc.errno());
            }
        }
    }
}
