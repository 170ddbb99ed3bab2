package dev.mqnbd.storage.file;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few libc calls the file backend needs that {@link java.nio.channels.FileChannel} does not offer
 * ({@code fallocate}, {@code lseek} with {@code SEEK_DATA}/{@code SEEK_HOLE}, {@code fdatasync} on a
 * descriptor of our own, {@code flock}, {@code open} with {@code O_DIRECT}), bound with the Foreign
 * Function and Memory API. Every call captures {@code errno} into this instance's own state segment.
 *
 * <p><b>Ownership:</b> each thread that makes calls owns its own instance; the state segment lives in
 * the arena given to the constructor.
 *
 * <p><b>Threading:</b> not thread-safe: {@link #errno()} reads the state the last call on this instance
 * left. Use one instance per thread.
 */
final class LibC {
    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CREAT = 0100;
    static final int O_EXCL = 0200;
    static final int O_CLOEXEC = 02000000;

    /** {@code O_DIRECT}, whose value depends on the architecture; 0 where unknown. */
    static final int O_DIRECT = switch (System.getProperty("os.arch")) {
        case "amd64", "x86_64" -> 040000;
        case "aarch64", "arm" -> 0200000;
        default -> 0;
    };

    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int FALLOC_FL_ZERO_RANGE = 0x10;

    static final int SEEK_END = 2;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;

    /** {@code preadv2} flag: fail with {@code EAGAIN} instead of waiting for the disk. */
    static final int RWF_NOWAIT = 0x00000008;

    static final int LOCK_SH = 1;
    static final int LOCK_EX = 2;
    static final int LOCK_NB = 4;

    static final int EPERM = 1;
    static final int ENOENT = 2;
    static final int EINTR = 4;
    static final int ENXIO = 6;
    static final int EAGAIN = 11;
    static final int EACCES = 13;
    static final int ENODEV = 19;
    static final int EISDIR = 21;
    static final int EINVAL = 22;
    static final int EFBIG = 27;
    static final int ENOSPC = 28;
    static final int ESPIPE = 29;
    static final int EROFS = 30;
    static final int ENOSYS = 38;
    static final int EOPNOTSUPP = 95;
    static final int EDQUOT = 122;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LOOKUP = LINKER.defaultLookup();
    private static final StructLayout STATE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = STATE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option ERRNO_OPTION = Linker.Option.captureCallState("errno");

    private static final MethodHandle OPEN = downcall(
            "open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle PREAD =
            downcall("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    // Never blocks (RWF_NOWAIT is its only use): a critical downcall skips the thread-state transitions.
    private static final MethodHandle PREADV2 = downcall(
            "preadv2",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_INT),
            Linker.Option.critical(false));
    private static final MethodHandle PWRITE =
            downcall("pwrite", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PWRITEV =
            downcall("pwritev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FALLOCATE =
            downcall("fallocate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle LSEEK =
            downcall("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    private static final MethodHandle FDATASYNC = downcall("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FTRUNCATE =
            downcall("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FLOCK = downcall("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle STRERROR =
            LINKER.downcallHandle(LOOKUP.find("strerror").orElseThrow(), FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private final MemorySegment state;

    /** Creates the errno state of one calling thread in {@code arena}. */
    LibC(Arena arena) {
        this.state = arena.allocate(STATE_LAYOUT);
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = ERRNO_OPTION;
        System.arraycopy(extra, 0, options, 1, extra.length);
        MemorySegment symbol = LOOKUP.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc: no symbol " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }

    /** Returns the {@code errno} the last failed call on this instance left. */
    int errno() {
        return (int) ERRNO.get(state, 0L);
    }

    /** {@code open(2)}; returns the descriptor or -1. */
    int open(String path, int flags, int mode) {
        try (Arena arena = Arena.ofConfined()) {
            return (int) OPEN.invokeExact(state, arena.allocateFrom(path), flags, mode);
        } catch (Throwable t) {
            throw linkageFailure("open", t);
        }
    }

    /** {@code close(2)}; returns 0 or -1. */
    int close(int fd) {
        try {
            return (int) CLOSE.invokeExact(state, fd);
        } catch (Throwable t) {
            throw linkageFailure("close", t);
        }
    }

    /** {@code pread(2)} into the native segment {@code buf}; returns the byte count, 0 at EOF, or -1. */
    long pread(int fd, MemorySegment buf, long count, long offset) {
        try {
            return (long) PREAD.invokeExact(state, fd, buf, count, offset);
        } catch (Throwable t) {
            throw linkageFailure("pread", t);
        }
    }

    /**
     * {@code preadv2(2)} into the {@code iovcnt} {@code struct iovec}s at {@code iov}; returns the byte
     * count, 0 at EOF, or -1. Only for calls that cannot block, such as with {@link #RWF_NOWAIT}.
     */
    long preadv2(int fd, MemorySegment iov, int iovcnt, long offset, int flags) {
        try {
            return (long) PREADV2.invokeExact(state, fd, iov, iovcnt, offset, flags);
        } catch (Throwable t) {
            throw linkageFailure("preadv2", t);
        }
    }

    /** {@code pwrite(2)} from the native segment {@code buf}; returns the byte count or -1. */
    long pwrite(int fd, MemorySegment buf, long count, long offset) {
        try {
            return (long) PWRITE.invokeExact(state, fd, buf, count, offset);
        } catch (Throwable t) {
            throw linkageFailure("pwrite", t);
        }
    }

    /**
     * {@code pwritev(2)} from the {@code iovcnt} {@code struct iovec}s at {@code iov}; returns the byte
     * count or -1.
     */
    long pwritev(int fd, MemorySegment iov, int iovcnt, long offset) {
        try {
            return (long) PWRITEV.invokeExact(state, fd, iov, iovcnt, offset);
        } catch (Throwable t) {
            throw linkageFailure("pwritev", t);
        }
    }

    /** {@code fallocate(2)}; returns 0 or -1. */
    int fallocate(int fd, int mode, long offset, long length) {
        try {
            return (int) FALLOCATE.invokeExact(state, fd, mode, offset, length);
        } catch (Throwable t) {
            throw linkageFailure("fallocate", t);
        }
    }

    /** {@code lseek(2)}; returns the new offset or -1. */
    long lseek(int fd, long offset, int whence) {
        try {
            return (long) LSEEK.invokeExact(state, fd, offset, whence);
        } catch (Throwable t) {
            throw linkageFailure("lseek", t);
        }
    }

    /** {@code fdatasync(2)}; returns 0 or -1. */
    int fdatasync(int fd) {
        try {
            return (int) FDATASYNC.invokeExact(state, fd);
        } catch (Throwable t) {
            throw linkageFailure("fdatasync", t);
        }
    }

    /** {@code ftruncate(2)}; returns 0 or -1. */
    int ftruncate(int fd, long length) {
        try {
            return (int) FTRUNCATE.invokeExact(state, fd, length);
        } catch (Throwable t) {
            throw linkageFailure("ftruncate", t);
        }
    }

    /** {@code flock(2)}; returns 0 or -1. */
    int flock(int fd, int operation) {
        try {
            return (int) FLOCK.invokeExact(state, fd, operation);
        } catch (Throwable t) {
            throw linkageFailure("flock", t);
        }
    }

    /** Returns the C library's text for {@code errno}, e.g. {@code No space left on device}. */
    static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
            return text.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    /** Returns {@code what: strerror (errno N)}, the shape of every libc error message here. */
    static String describe(String what, int errno) {
        return what + ": " + strerror(errno) + " (errno " + errno + ")";
    }

    private static IllegalStateException linkageFailure(String call, Throwable t) {
        // invokeExact only throws if the handle's type is wrong, a bug caught by the first test that runs.
        return new IllegalStateException("libc " + call + ": downcall failed", t);
    }
}
