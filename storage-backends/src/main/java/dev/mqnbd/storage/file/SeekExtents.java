package dev.mqnbd.storage.file;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Walks a file's data and holes with {@code lseek(SEEK_DATA)} and {@code lseek(SEEK_HOLE)}.
 *
 * <p><b>Threading:</b> stateless; {@code lseek} moves the descriptor's file offset, which no other
 * code here uses (all I/O is positional).
 */
final class SeekExtents {
    private SeekExtents() {}

    /**
     * Reports the runs of {@code [offset, end)} to {@code out}. A file system that refuses SEEK_DATA
     * ({@code EINVAL}, {@code EOPNOTSUPP}) gets the rest of the range reported as data.
     *
     * @throws IOException if {@code lseek} fails with another error
     */
    static void report(LibC libc, int fd, Path path, long offset, long end, ExtentConsumer out) throws IOException {
        long pos = offset;
        while (pos < end) {
            long data = libc.lseek(fd, pos, LibC.SEEK_DATA);
            if (data < 0) {
                int errno = libc.errno();
                if (errno == LibC.ENXIO) {
                    // No data at or after pos: the rest of the file is a hole.
                    out.accept(pos, end - pos, true);
                    return;
                }
                if (cannotTell(errno)) {
                    out.accept(pos, end - pos, false);
                    return;
                }
                throw new ErrnoException("lseek SEEK_DATA " + path + " at " + pos, errno);
            }
            if (data > pos) {
                long holeEnd = Math.min(data, end);
                if (!out.accept(pos, holeEnd - pos, true)) {
                    return;
                }
                pos = holeEnd;
                if (pos >= end) {
                    return;
                }
            }
            long hole = libc.lseek(fd, pos, LibC.SEEK_HOLE);
            if (hole < 0) {
                int errno = libc.errno();
                if (errno == LibC.ENXIO || cannotTell(errno)) {
                    out.accept(pos, end - pos, false);
                    return;
                }
                throw new ErrnoException("lseek SEEK_HOLE " + path + " at " + pos, errno);
            }
            long dataEnd = Math.min(Math.max(hole, pos + 1), end);
            if (!out.accept(pos, dataEnd - pos, false)) {
                return;
            }
            pos = dataEnd;
        }
    }

    private static boolean cannotTell(int errno) {
        return errno == LibC.EINVAL || errno == LibC.EOPNOTSUPP || errno == LibC.ESPIPE || errno == LibC.ENOSYS;
    }
}
