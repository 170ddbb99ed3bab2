package dev.mqnbd.it;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.SplittableRandom;

/** Test data the integration tests share: reproducible random files, checksums, and client scripts. */
public final class TestFiles {
    private TestFiles() {}

    static int readByte(Path file, long offset) throws IOException {
        try (var channel = java.nio.channels.FileChannel.open(file)) {
            java.nio.ByteBuffer one = java.nio.ByteBuffer.allocate(1);
            channel.read(one, offset);
            return one.get(0) & 0xff;
        }
    }

    static void writeRandom(Path file, int size, long seed) throws IOException {
        SplittableRandom random = new SplittableRandom(seed);
        byte[] chunk = new byte[1 << 20];
        try (OutputStream out = Files.newOutputStream(file)) {
            for (int written = 0; written < size; written += chunk.length) {
                for (int i = 0; i < chunk.length; i += 8) {
                    long v = random.nextLong();
                    for (int b = 0; b < 8; b++) {
                        chunk[i + b] = (byte) (v >>> (8 * b));
                    }
                }
                out.write(chunk, 0, Math.min(chunk.length, size - written));
            }
        }
    }

    static String sha256(Path file, long length) throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        try (var in = Files.newInputStream(file)) {
            byte[] buffer = new byte[1 << 20];
            long left = length;
            while (left > 0) {
                int n = in.read(buffer, 0, (int) Math.min(buffer.length, left));
                if (n < 0) {
                    break;
                }
                digest.update(buffer, 0, n);
                left -= n;
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    static boolean isZero(Path file, long offset, long length) throws IOException {
        try (var channel = java.nio.channels.FileChannel.open(file)) {
            java.nio.ByteBuffer buffer = java.nio.ByteBuffer.allocate(1 << 20);
            long position = offset;
            while (position < offset + length) {
                buffer.clear().limit((int) Math.min(buffer.capacity(), offset + length - position));
                int n = channel.read(buffer, position);
                if (n < 0) {
                    return false;
                }
                for (int i = 0; i < n; i++) {
                    if (buffer.get(i) != 0) {
                        return false;
                    }
                }
                position += n;
            }
        }
        return true;
    }

    /**
     * An nbdsh script for a 1 TiB export: writes and reads far out, and checks that the server (with
     * libnbd's own bounds checks off) answers EINVAL to a read and ENOSPC to a write past the end.
     * Needs {@code import errno}; prints {@code ok}.
     */
    public static String sparseFarWritesScript(String uri) {
        return String.join(
                "\n",
                "h.set_strict_mode(0)",
                "h.connect_uri('" + uri + "')",
                "h.pwrite(b'mqnbd' * 100, (1 << 40) - 500)",
                "h.flush()",
                "assert h.pread(500, (1 << 40) - 500) == b'mqnbd' * 100",
                "assert h.pread(4096, 1 << 39) == bytes(4096)",
                "try:",
                "    h.pread(2, (1 << 40) - 1)",
                "    raise SystemExit('read past the end succeeded')",
                "except nbd.Error as e:",
                "    assert e.errnum == errno.EINVAL, e",
                "try:",
                "    h.pwrite(b'xy', (1 << 40) - 1)",
                "    raise SystemExit('write past the end succeeded')",
                "except nbd.Error as e:",
                "    assert e.errnum == errno.ENOSPC, e",
                "assert h.pread(1, (1 << 40) - 1) == b'd'",
                "print('ok')");
    }
}
