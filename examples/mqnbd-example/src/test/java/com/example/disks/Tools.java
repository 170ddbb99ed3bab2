package com.example.disks;

import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** What the example's tests share: running a program, making an ext4 image, hashing a file. */
final class Tools {
    private Tools() {}

    /** A finished program: its exit status and what it printed (stdout and stderr together). */
    record Result(List<String> command, int exit, String output) {
        Result checked() {
            if (exit != 0) {
                throw new AssertionError(String.join(" ", command) + " exited " + exit + ":\n" + output);
            }
            return this;
        }
    }

    /** Runs a program to completion, for at most two minutes. */
    static Result run(String... command) throws IOException, InterruptedException {
        Process process =
                new ProcessBuilder(command).redirectErrorStream(true).start();
        process.getOutputStream().close();
        byte[] output;
        try (InputStream in = process.getInputStream()) {
            output = in.readAllBytes();
        }
        if (!process.waitFor(2, TimeUnit.MINUTES)) {
            process.destroyForcibly().waitFor();
            throw new AssertionError(String.join(" ", command) + " did not finish within 2 minutes");
        }
        return new Result(List.of(command), process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }

    /**
     * Makes an ext4 file system image of {@code size} bytes at {@code image} holding one file, {@code
     * /hello.txt}, with {@code text} (mkfs.ext4 -d, e2fsprogs 1.43 or newer).
     */
    static Path ext4Image(Path image, long size, String text) throws IOException, InterruptedException {
        Path content = Files.createDirectories(image.resolveSibling(image.getFileName() + ".d"));
        Files.writeString(content.resolve("hello.txt"), text);
        try (RandomAccessFile file = new RandomAccessFile(image.toFile(), "rw")) {
            file.setLength(size);
        }
        run("mkfs.ext4", "-q", "-F", "-d", content.toString(), image.toString()).checked();
        return image;
    }

    /** Returns {@code /hello.txt} of an ext4 image, read by debugfs (without the banner debugfs prints first). */
    static String helloTxt(Path image) throws IOException, InterruptedException {
        String output = run("debugfs", "-R", "cat /hello.txt", image.toString()).checked().output();
        return output.startsWith("debugfs ") ? output.substring(output.indexOf('\n') + 1) : output;
    }

    /** Returns the SHA-256 of the first {@code length} bytes of {@code file}, in lower-case hex. */
    static String sha256(Path file, long length) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buffer = new byte[1 << 20];
            long left = length;
            int n;
            while (left > 0 && (n = in.read(buffer, 0, (int) Math.min(buffer.length, left))) > 0) {
                digest.update(buffer, 0, n);
                left -= n;
            }
            if (left > 0) {
                throw new IOException(file + " is shorter than " + length + " bytes");
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }
}
