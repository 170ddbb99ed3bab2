package dev.mqnbd.storage.file;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Sparse files and what the file system says about them, for the file backend's tests. */
final class FileTestSupport {
    private FileTestSupport() {}

    /** Creates (or truncates) {@code file} as a sparse file of {@code size} bytes. */
    static Path sparse(Path file, long size) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(0);
            raf.setLength(size);
        }
        return file;
    }

    /** Returns the bytes the file system allocated to {@code file} ({@code st_blocks × 512}). */
    static long allocated(Path file) throws Exception {
        String out = run("stat", "-c", "%b %B", file.toString()).strip();
        String[] parts = out.split(" ");
        return Long.parseLong(parts[0]) * Long.parseLong(parts[1]);
    }

    /** Runs a command and returns its standard output; fails on a non-zero exit. */
    static String run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", command) + " failed: " + out);
        }
        return out;
    }

    /** Whether this JVM runs as root, which ignores file permissions. */
    static boolean root() throws Exception {
        return run("id", "-u").strip().equals("0");
    }

    /** Deletes a directory tree, making immutable files mutable first. */
    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var walk = Files.walk(dir)) {
            List<Path> all = walk.sorted(java.util.Comparator.reverseOrder()).toList();
            for (Path p : all) {
                Files.deleteIfExists(p);
            }
        }
    }
}
