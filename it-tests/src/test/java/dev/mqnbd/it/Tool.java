package dev.mqnbd.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs a client program to completion with a time limit and captures what it printed. */
final class Tool {
    private Tool() {}

    /** What a finished program left behind. */
    record Result(List<String> command, int exitCode, String stdout, String stderr) {
        /** Asserts a zero exit status, showing the output otherwise; returns this. */
        Result assertSuccess() {
            assertThat(exitCode)
                    .as("%s exited %d%nstdout:%n%s%nstderr:%n%s", String.join(" ", command), exitCode, stdout, stderr)
                    .isZero();
            return this;
        }

        /** Asserts a non-zero exit status; returns this. */
        Result assertFailure() {
            assertThat(exitCode)
                    .as("%s should fail%nstdout:%n%s%nstderr:%n%s", String.join(" ", command), stdout, stderr)
                    .isNotZero();
            return this;
        }
    }

    /** Runs {@code command}, killing it after {@code timeout} (which fails the test). */
    static Result run(Duration timeout, String... command) {
        ProcessBuilder builder = new ProcessBuilder(command);
        // Debian's clients first: nbdsh runs the python3 on PATH, which must be the one with libnbd's module.
        builder.environment().merge("PATH", "/usr/bin:/bin", (old, debian) -> debian + ":" + old);
        try {
            Process process = builder.start();
            process.getOutputStream().close();
            CompletableFuture<String> out = drain(process.getInputStream());
            CompletableFuture<String> err = drain(process.getErrorStream());
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly().waitFor();
                throw new AssertionError(String.join(" ", command) + " did not finish within " + timeout
                        + "\nstdout:\n" + out.join() + "\nstderr:\n" + err.join());
            }
            return new Result(List.of(command), process.exitValue(), out.join(), err.join());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + command[0] + " (scripts/install-test-deps installs it)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /** Runs {@code command} with a two-minute limit. */
    static Result run(String... command) {
        return run(Duration.ofMinutes(2), command);
    }

    static CompletableFuture<String> drain(InputStream in) {
        return CompletableFuture.supplyAsync(() -> {
            try (in) {
                return new String(in.readAllBytes(), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(unreadable: " + e + ")";
            }
        });
    }
}
