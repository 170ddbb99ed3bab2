package dev.mqnbd.storage.file;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;

/**
 * Opens the file of a {@link FileSpec}: creates it if asked, refuses what cannot be served, takes the
 * advisory lock and measures it. Every refusal is an {@link IOException} whose message names the file
 * and says what to do.
 *
 * <p><b>The lock.</b> {@code flock(2)}: exclusive for a read-write export, shared for a read-only one,
 * never waiting. A second mqnbd (in this process or another) that wants to write a file already served
 * is refused, as is one that wants to read a file another serves read-write. {@code flock} locks belong
 * to the open file, so the contexts' own descriptors neither take nor drop it.
 */
final class FileOpener {
    private static final System.Logger LOG = System.getLogger(FileOpener.class.getName());
    private static final int S_IFMT = 0170000;
    private static final int S_IFBLK = 0060000;
    private static final int S_IFREG = 0100000;

    private FileOpener() {}

    /**
     * Opens {@code spec} as export {@code name}.
     *
     * @param sync the sync action for the group commit; {@code null} for {@code fdatasync} (tests slow it down)
     * @throws IOException if the file is missing (and not to be created), not a regular file or block
     *     device, locked by another server, or cannot be opened
     */
    static FileStore open(FileSpec spec, boolean readOnly, String name, GroupCommit.@Nullable SyncAction sync)
            throws IOException {
        Path path = spec.path();
        try (Arena arena = Arena.ofConfined()) {
            LibC libc = new LibC(arena);
            if (!Files.exists(path)) {
                if (spec.createSize().isEmpty()) {
                    throw new IOException("file " + path + " does not exist (expected: an image file or a block"
                            + " device; add ,create=SIZE to the spec to create a sparse file)");
                }
                if (readOnly) {
                    throw new IOException("file " + path + " does not exist, and a read-only export cannot create it");
                }
                create(libc, path, spec.createSize().getAsLong());
            }
            if (Files.isDirectory(path)) {
                throw new IOException("file " + path + " is a directory (expected: an image file or a block device)");
            }
            int type = (Integer) Files.getAttribute(path, "unix:mode") & S_IFMT;
            boolean blockDevice = type == S_IFBLK;
            if (type != S_IFREG && !blockDevice) {
                throw new IOException("file " + path + " is not a regular file or a block device");
            }
            if (spec.direct() && LibC.O_DIRECT == 0) {
                throw new IOException("file " + path + ": O_DIRECT is not known on " + System.getProperty("os.arch"));
            }
            int base = LibC.O_CLOEXEC | (spec.direct() ? LibC.O_DIRECT : 0);
            boolean ro = readOnly;
            int fd = libc.open(path.toString(), base | (ro ? LibC.O_RDONLY : LibC.O_RDWR), 0);
            if (fd < 0 && !ro && isPermission(libc.errno())) {
                int errno = libc.errno();
                fd = libc.open(path.toString(), base | LibC.O_RDONLY, 0);
                if (fd >= 0) {
                    ro = true;
                    LOG.log(
                            Level.WARNING,
                            "file export " + name + ": " + LibC.describe("cannot open " + path + " for writing", errno)
                                    + "; serving it read-only");
                }
            }
            if (fd < 0) {
                int errno = libc.errno();
                if (spec.direct() && errno == LibC.EINVAL) {
                    throw new IOException(
                            "file " + path + ": the file system does not support O_DIRECT (drop ,direct)");
                }
                throw new ErrnoException("cannot open file " + path, errno);
            }
            try {
                lock(libc, fd, path, ro);
                long capacity = libc.lseek(fd, 0, LibC.SEEK_END);
                if (capacity < 0) {
                    throw new ErrnoException("cannot measure file " + path, libc.errno());
                }
                if (spec.direct() && capacity % ContextIo.ALIGN != 0) {
                    throw new IOException("file " + path + ": size " + capacity + " is not a multiple of "
                            + ContextIo.ALIGN + " (expected with ,direct: O_DIRECT reads and writes whole blocks)");
                }
                int flags = base | (ro ? LibC.O_RDONLY : LibC.O_RDWR);
                return new FileStore(
                        name,
                        path,
                        fd,
                        flags,
                        capacity,
                        ro,
                        spec.direct(),
                        blockDevice,
                        rotational(path, blockDevice),
                        sync);
            } catch (IOException | RuntimeException e) {
                libc.close(fd);
                throw e;
            }
        }
    }

    private static void create(LibC libc, Path path, long size) throws IOException {
        int fd = libc.open(path.toString(), LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, 0644);
        if (fd < 0) {
            if (Files.exists(path)) {
                return; // Created by someone else meanwhile: serve it as it is.
            }
            throw new ErrnoException("cannot create file " + path, libc.errno());
        }
        try {
            if (libc.ftruncate(fd, size) != 0) {
                int errno = libc.errno();
                Files.deleteIfExists(path);
                throw new ErrnoException("cannot size new file " + path + " to " + size + " bytes", errno);
            }
        } finally {
            libc.close(fd);
        }
        LOG.log(Level.INFO, "created sparse file " + path + " of " + size + " bytes");
    }

    private static void lock(LibC libc, int fd, Path path, boolean readOnly) throws IOException {
        int op = (readOnly ? LibC.LOCK_SH : LibC.LOCK_EX) | LibC.LOCK_NB;
        while (libc.flock(fd, op) != 0) {
            int errno = libc.errno();
            if (errno == LibC.EINTR) {
                continue;
            }
            if (errno == LibC.EAGAIN) {
                throw new IOException("file " + path + " is locked: another process holds it open "
                        + (readOnly ? "for writing" : "(another mqnbd serving it?)")
                        + "; stop that server or serve a copy");
            }
            throw new ErrnoException("cannot lock file " + path, errno);
        }
    }

    private static boolean isPermission(int errno) {
        return errno == LibC.EACCES || errno == LibC.EROFS || errno == LibC.EPERM;
    }

    /** Reads {@code /sys/dev/block/MAJ:MIN/queue/rotational} of the device or of the file's file system. */
    static boolean rotational(Path path, boolean blockDevice) {
        try {
            long dev = ((Number) Files.getAttribute(path, blockDevice ? "unix:rdev" : "unix:dev")).longValue();
            long major = ((dev >>> 8) & 0xfff) | ((dev >>> 32) & ~0xfffL);
            long minor = (dev & 0xff) | ((dev >>> 12) & ~0xffL);
            Path sys = Path.of("/sys/dev/block/" + major + ":" + minor);
            if (!Files.exists(sys)) {
                return false;
            }
            Path real = sys.toRealPath();
            for (Path dir : new Path[] {real, real.getParent()}) {
                Path flag = dir.resolve("queue/rotational");
                if (Files.exists(flag, LinkOption.NOFOLLOW_LINKS)) {
                    return Files.readString(flag).strip().equals("1");
                }
            }
        } catch (IOException | RuntimeException e) {
            // A hint only: without /sys, assume not rotational.
        }
        return false;
    }
}
