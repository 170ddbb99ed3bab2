package dev.mqnbd.storage.s3;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.zip.CRC32C;

/** Zero tests, zero fills and the CRC32C the S3 backend stores with every block. */
final class Bytes {
    private static final int CHUNK = 64 << 10;
    private static final byte[] ZERO_ARRAY = new byte[CHUNK];

    /** Zeroes to compare with and copy from; read-only and never repositioned, so shareable. */
    private static final ByteBuffer ZEROES = ByteBuffer.allocateDirect(CHUNK).asReadOnlyBuffer();

    private Bytes() {}

    /** Returns whether every byte of {@code data} is zero. */
    static boolean isZero(byte[] data) {
        for (int i = 0; i < data.length; i += CHUNK) {
            int n = Math.min(CHUNK, data.length - i);
            if (Arrays.mismatch(data, i, i + n, ZERO_ARRAY, 0, n) >= 0) {
                return false;
            }
        }
        return true;
    }

    /** Returns whether {@code buf[index, index + length)} is all zeroes; position and limit are untouched. */
    static boolean isZero(ByteBuffer buf, int index, int length) {
        for (int i = 0; i < length; i += CHUNK) {
            int n = Math.min(CHUNK, length - i);
            if (buf.slice(index + i, n).mismatch(ZEROES.slice(0, n)) >= 0) {
                return false;
            }
        }
        return true;
    }

    /** Writes zeroes to {@code buf[index, index + length)} with absolute puts. */
    static void zero(ByteBuffer buf, int index, int length) {
        for (int i = 0; i < length; i += CHUNK) {
            int n = Math.min(CHUNK, length - i);
            buf.put(index + i, ZEROES, 0, n);
        }
    }

    /** Returns the CRC32C of {@code data} as 8 lower-case hex digits. */
    static String crc32c(byte[] data) {
        CRC32C crc = new CRC32C();
        crc.update(data);
        return HexFormat.of().toHexDigits((int) crc.getValue());
    }
}
