package dev.mqnbd.it.vm;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.filter.FilterSpec;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernel's NBD client on a copy-on-write export: the guest makes an ext4 file system on {@code cow} over
 * a read-only (0444) image file, writes files, unmounts, runs {@code e2fsck -fn} and mounts again; every
 * write lands in the overlay, so the image's SHA-256 is the same afterwards.
 */
class CowKernelClientIT {
    /** A guest boots in ~5 s under emulation; an ext4 round trip with 64 MiB takes 20-60 s. */
    private static final Duration GUEST_LIMIT = Duration.ofMinutes(6);

    private static final long SIZE = 256L << 20;
    private static final Pattern SUM = Pattern.compile("(?m)^(BEFORE|AFTER) ([0-9a-f]{64})  \\./(\\S+)$");

    @TempDir
    Path data;

    @Test
    @Timeout(600)
    void ext4_onCowOverReadOnlyImage_fsckClean_imageUnchanged() throws Exception {
        Path image = data.resolve("golden.img");
        SplittableRandom random = new SplittableRandom(42);
        byte[] chunk = new byte[1 << 20];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            // Old contents at the start, where mkfs writes, and in the middle; holes elsewhere.
            for (long at : new long[] {0, SIZE / 2}) {
                random.nextBytes(chunk);
                f.seek(at);
                f.write(chunk);
            }
            f.setLength(SIZE);
        }
        Files.setPosixFilePermissions(image, PosixFilePermissions.fromString("r--r--r--"));
        String before = sha256(image);

        try (VmServer server = VmServer.start(Map.of("vm", "file:" + image), List.of(FilterSpec.parse("vm=cow")));
                GuestVm guest = GuestVm.boot(
                        "ext4-cow",
                        "ext4.sh",
                        Map.of(
                                "SERVER",
                                "10.0.2.2",
                                "PORT",
                                Integer.toString(server.port()),
                                "EXPORT",
                                "vm",
                                "NBD_ARGS",
                                "",
                                "CONNECTIONS",
                                ""),
                        2)) {
            assertThat(server.stack("vm")).isEqualTo("cow(overlay=memory) -> file:" + image);
            String console = guest.awaitSuccess(GUEST_LIMIT);

            Map<String, String> written = sums(console, "BEFORE");
            Map<String, String> after = sums(console, "AFTER");
            assertThat(written).as("files written").hasSize(42).containsKeys("big.bin", "seq.txt", "small/f40");
            assertThat(after).as("checksums after e2fsck and a fresh mount").isEqualTo(written);
            assertThat(console).contains("CONNECTED size=" + SIZE + " queues=1", "FSCK Pass 5", "STEP mount again");
            String connected = console.substring(console.lastIndexOf("CONNECTED size="));
            assertThat(connected).doesNotContain("Connection timed out", "I/O error", "Dead connection");
        }
        assertThat(sha256(image))
                .as("the image's SHA-256 after the guest wrote through cow")
                .isEqualTo(before);
        assertThat(image).hasSize(SIZE);
    }

    private static Map<String, String> sums(String console, String which) {
        Map<String, String> sums = new TreeMap<>();
        Matcher m = SUM.matcher(console);
        while (m.find()) {
            if (m.group(1).equals(which)) {
                sums.put(m.group(3), m.group(2));
            }
        }
        return sums;
    }

    private static String sha256(Path file) throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        try (var in = Files.newInputStream(file)) {
            byte[] buffer = new byte[1 << 20];
            for (int n; (n = in.read(buffer)) > 0; ) {
                digest.update(buffer, 0, n);
            }
        }
        return HexFormat.of().formatHex(digest.digest());
    }
}
