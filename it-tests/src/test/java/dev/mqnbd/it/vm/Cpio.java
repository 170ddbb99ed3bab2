package dev.mqnbd.it.vm;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/** Writes a cpio archive in the kernel's "newc" format, for files appended to the guest's initramfs. */
final class Cpio {
    private Cpio() {}

    /** Returns an archive of {@code files} (path without leading slash to content), each mode 0755. */
    static byte[] archive(Map<String, byte[]> files) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int inode = 1;
        for (Map.Entry<String, byte[]> file : files.entrySet()) {
            entry(out, inode++, 0100755, file.getKey(), file.getValue());
        }
        entry(out, 0, 0, "TRAILER!!!", new byte[0]);
        return out.toByteArray();
    }

    private static void entry(ByteArrayOutputStream out, int inode, int mode, String name, byte[] data) {
        byte[] nameBytes = (name + "\0").getBytes(StandardCharsets.UTF_8);
        StringBuilder header = new StringBuilder("070701");
        int[] fields = {inode, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0};
        for (int field : fields) {
            header.append(String.format("%08x", field));
        }
        out.writeBytes(header.toString().getBytes(StandardCharsets.US_ASCII));
        out.writeBytes(nameBytes);
        pad(out);
        out.writeBytes(data);
        pad(out);
    }

    private static void pad(ByteArrayOutputStream out) {
        while (out.size() % 4 != 0) {
            out.write(0);
        }
    }
}
