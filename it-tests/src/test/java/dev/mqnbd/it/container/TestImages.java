package dev.mqnbd.it.container;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Builds what the container and VM tests run, through {@code scripts/images/build}, once per test JVM.
 * The script is idempotent and cached (images carry the hash of their inputs; debootstrap tarballs, the
 * jlink'd runtime and the VM's kernel and initramfs live in {@code /var/cache/mqnbd-test}), so a run
 * where nothing changed costs about a second, and a new {@code mqnbd.jar} rebuilds only the server image.
 */
public final class TestImages {
    /** The server image: the CLI jar on a jlink'd Java 25 runtime. */
    public static final String SERVER = "mqnbd:latest";

    private static final Duration BUILD_LIMIT = Duration.ofMinutes(20);
    private static final Pattern VM_LINE = Pattern.compile("(?m)^vm=(.+)$");
    private static final Set<String> built = new HashSet<>();
    private static Path vm;

    private TestImages() {}

    /** Returns the repository's top directory (failsafe passes it as {@code mqnbd.root}). */
    public static Path root() {
        String root = System.getProperty("mqnbd.root");
        if (root == null || !Files.isRegularFile(Path.of(root, "scripts/images/build"))) {
            throw new IllegalStateException("system property mqnbd.root (" + root
                    + ") does not name the repository: run the tests with Maven from the top directory");
        }
        return Path.of(root).toAbsolutePath().normalize();
    }

    /** Builds the client images and the server image unless they are up to date. */
    public static synchronized void ensureContainerImages() {
        ensure("clients");
        ensure("server");
    }

    /** Builds the S3-compatible server's image (S3Proxy) unless it is up to date. */
    public static synchronized void ensureS3Image() {
        ensure("s3");
    }

    /** Builds the image of Ceph's RADOS Gateway, the second S3-compatible store, unless it is up to date. */
    public static synchronized void ensureCephImage() {
        ensure("ceph");
    }

    /** Builds the VM's kernel and initramfs unless cached; returns the folder holding them. */
    public static synchronized Path vmArtifacts() {
        if (vm == null) {
            String out = build("vm");
            Matcher m = VM_LINE.matcher(out);
            if (!m.find()) {
                throw new AssertionError("scripts/images/build vm did not say where the VM artifacts are:\n" + out);
            }
            vm = Path.of(m.group(1).strip());
        }
        return vm;
    }

    private static void ensure(String target) {
        if (built.add(target)) {
            build(target);
        }
    }

    private static String build(String target) {
        Path script = root().resolve("scripts/images/build");
        try {
            Path log = Files.createTempFile("mqnbd-images-", ".log");
            try {
                Process process = new ProcessBuilder(script.toString(), target)
                        .redirectErrorStream(true)
                        .redirectOutput(log.toFile())
                        .start();
                process.getOutputStream().close();
                if (!process.waitFor(BUILD_LIMIT.toMillis(), TimeUnit.MILLISECONDS)) {
                    process.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
                    process.destroyForcibly().waitFor();
                    throw new AssertionError("scripts/images/build " + target + " did not finish within " + BUILD_LIMIT
                            + ":\n" + Files.readString(log, StandardCharsets.UTF_8));
                }
                String out = Files.readString(log, StandardCharsets.UTF_8);
                if (process.exitValue() != 0) {
                    throw new AssertionError("scripts/images/build " + target + " failed (exit " + process.exitValue()
                            + "); the container and VM tests need a Docker engine, debootstrap, qemu and a JDK 25, "
                            + "which scripts/install-test-deps installs:\n" + out);
                }
                return out;
            } finally {
                Files.deleteIfExists(log);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + script, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while building images", e);
        }
    }
}
