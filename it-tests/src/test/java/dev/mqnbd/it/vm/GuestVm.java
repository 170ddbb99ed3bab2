package dev.mqnbd.it.vm;

import dev.mqnbd.it.container.TestImages;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A qemu guest running one scenario script: Debian's kernel and the cached initramfs of
 * {@code scripts/images/build vm}, plus a second cpio archive with {@code /test.sh}, {@code /common.sh}
 * and {@code /test.env}. Its serial console is collected (and written to {@code target/vm-logs}); the
 * guest powers off when the script ends, and qemu is killed if it runs past its time limit.
 */
final class GuestVm implements AutoCloseable {
    private static final String QEMU = "qemu-system-x86_64";
    private static final Pattern RESULT = Pattern.compile("(?m)^RESULT (.*)$");
    private static final Pattern READY = Pattern.compile("^GUEST ready: ");
    /**
     * How long a guest may take to print its first line ({@code /init}'s "GUEST ready", about 15 s on an
     * idle 2-core host). Under full-system emulation a guest now and then hangs before that, silent, and
     * would stay so until the test's limit; such a guest is killed after this long and booted once more.
     * {@code -Dmqnbd.vm.ready-seconds=N} sets it.
     */
    private static final Duration READY_LIMIT = Duration.ofSeconds(Long.getLong("mqnbd.vm.ready-seconds", 150));

    private static final int BOOT_ATTEMPTS = 2;

    private final String name;
    private final Process process;
    private final List<String> console = new ArrayList<>();
    private final Writer log;
    private final Thread reader;

    private GuestVm(String name, Process process, Writer log) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.reader = new Thread(this::readConsole, "guest-console-" + name);
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Boots a guest that runs the scenario script {@code script} (a resource of this package) with the
     * settings {@code env}, and returns once it is up (its network configured, the script about to run);
     * a guest silent for {@code READY_LIMIT} is booted once more.
     *
     * @param cpus the guest's vCPUs; the kernel gives nbd at most one hardware queue per vCPU
     */
    static GuestVm boot(String name, String script, Map<String, String> env, int cpus) {
        for (int attempt = 1; ; attempt++) {
            GuestVm guest = start(name, script, env, cpus);
            try {
                guest.awaitLine(READY, READY_LIMIT);
                return guest;
            } catch (AssertionError e) {
                guest.closeQuietly();
                if (attempt == BOOT_ATTEMPTS || !guest.console().isEmpty()) {
                    throw e; // a guest that printed something failed for a reason of its own
                }
                System.err.printf(
                        "guest %s printed nothing within %s (boot %d of %d); booting it again%n",
                        name, READY_LIMIT, attempt, BOOT_ATTEMPTS);
            } catch (InterruptedException e) {
                guest.closeQuietly();
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted while the guest " + name + " booted", e);
            }
        }
    }

    private static GuestVm start(String name, String script, Map<String, String> env, int cpus) {
        Path artifacts = TestImages.vmArtifacts();
        Path qemu = findOnPath(QEMU);
        try {
            Path dir = Path.of(System.getProperty("user.dir"), "target", "vm-logs");
            Files.createDirectories(dir);
            Path initrd = dir.resolve(name + ".initrd");
            byte[] base = Files.readAllBytes(artifacts.resolve("initramfs.cpio.gz"));
            Map<String, byte[]> files = new LinkedHashMap<>();
            files.put("test.sh", resource(script));
            files.put("common.sh", resource("common.sh"));
            StringBuilder settings = new StringBuilder();
            env.forEach((k, v) -> settings.append(k)
                    .append("='")
                    .append(v.replace("'", "'\\''"))
                    .append("'\n"));
            files.put("test.env", settings.toString().getBytes(StandardCharsets.UTF_8));
            try (var out = Files.newOutputStream(initrd)) {
                out.write(base);
                // The kernel takes concatenated archives, but an uncompressed one must start 4-byte aligned.
                out.write(new byte[(4 - base.length % 4) % 4]);
                out.write(Cpio.archive(files));
            }
            List<String> command = List.of(
                    qemu.toString(),
                    "-machine",
                    "accel=" + System.getProperty("mqnbd.vm.accel", "tcg"),
                    "-cpu",
                    "max",
                    "-smp",
                    Integer.toString(cpus),
                    "-m",
                    "1536",
                    "-display",
                    "none",
                    "-serial",
                    "stdio",
                    "-monitor",
                    "none",
                    "-no-reboot",
                    "-kernel",
                    artifacts.resolve("vmlinuz").toString(),
                    "-initrd",
                    initrd.toString(),
                    "-append",
                    "console=ttyS0 panic=-1 quiet",
                    "-nic",
                    "user,model=virtio-net-pci");
            Writer log = Files.newBufferedWriter(dir.resolve(name + ".log"), StandardCharsets.UTF_8);
            log.write(String.join(" ", command) + "\n");
            Process process =
                    new ProcessBuilder(command).redirectErrorStream(true).start();
            process.getOutputStream().close();
            return new GuestVm(name, process, log);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start the guest " + name, e);
        }
    }

    private static Path findOnPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path candidate = Path.of(dir, program);
            if (Files.isExecutable(candidate)) {
                return candidate;
            }
        }
        throw new AssertionError(program + " is not installed: the kernel-client tests run it "
                + "(scripts/install-test-deps installs Debian's qemu-system-x86)");
    }

    private static byte[] resource(String name) {
        try (InputStream in = GuestVm.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IllegalStateException("guest script " + name + " is missing from the test resources");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void readConsole() {
        try (BufferedReader in =
                new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                line = line.replace("\r", "");
                synchronized (this) {
                    console.add(line);
                    log.write(line + "\n");
                    log.flush();
                    notifyAll();
                }
            }
        } catch (IOException e) {
            synchronized (this) {
                console.add("(console unreadable: " + e + ")");
                notifyAll();
            }
        }
    }

    /** Returns everything the guest printed so far. */
    synchronized String console() {
        return String.join("\n", console);
    }

    /** Waits for a console line matching {@code pattern}; fails with the console when the guest ends or time runs out. */
    String awaitLine(Pattern pattern, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int seen = 0;
        synchronized (this) {
            while (true) {
                for (; seen < console.size(); seen++) {
                    String line = console.get(seen);
                    if (pattern.matcher(line).find()) {
                        return line;
                    }
                    if (line.startsWith("RESULT fail")) {
                        throw new AssertionError(
                                "guest " + name + " failed while the test waited for /" + pattern + "/:\n" + console());
                    }
                }
                long left = deadline - System.nanoTime();
                if (left <= 0 || (!process.isAlive() && !reader.isAlive())) {
                    throw new AssertionError("guest " + name + " printed no line matching /" + pattern + "/ within "
                            + timeout + ":\n" + console());
                }
                wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 500)));
            }
        }
    }

    /**
     * Waits for the guest to power off (killing qemu after {@code limit}, which fails the test), then
     * asserts that it reported {@code RESULT ok}; returns the console.
     */
    String awaitSuccess(Duration limit) throws InterruptedException {
        if (!process.waitFor(limit.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            reader.join(5_000);
            throw new AssertionError(
                    "guest " + name + " did not power off within " + limit + " and was killed; console:\n" + console());
        }
        reader.join(5_000);
        String out = console();
        Matcher m = RESULT.matcher(out);
        String result = null;
        while (m.find()) {
            result = m.group(1);
            if (result.startsWith("fail")) {
                break;
            }
        }
        if (result == null || !result.equals("ok")) {
            throw new AssertionError(
                    "guest " + name + " reported " + (result == null ? "no RESULT" : "RESULT " + result)
                            + " (qemu exited " + process.exitValue() + "); console:\n" + out);
        }
        return out;
    }

    private void closeQuietly() {
        try {
            close();
        } catch (IOException e) {
            System.err.println("cannot close the console log of the guest " + name + ": " + e);
        }
    }

    /** Kills qemu if it still runs and closes the console log. */
    @Override
    public void close() throws IOException {
        try {
            if (process.isAlive()) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
            reader.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (this) {
            log.close();
        }
    }
}
