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
        return runWithEnv(timeout, java.util.Map.of(), command);
    }

    /** Runs {@code command} with {@code env} added to this JVM's environment, killed after {@code timeout}. */
    static Result runWithEnv(Duration timeout, java.util.Map<String, String> env, String... command) {
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.environment().putAll(env);
        // Debian's clients first: nbdsh runs the python3 on PATH, which must be the one with libnbd's module.
        builder.environment().merge("PATH", "/usr/bin:/bin", (old, debian) -> debian + ":" + old);
        try {
            Process process = builder.start();
            process.getOutputStream().close();
            CompletableFuture<String> out = drain(process.getInputStream());
            CompletableFuture<String> err = drain(process.getErrorStream());
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly().waitFor();
                throw new AssertionError(String.join(" ", command) + " did not finish within " + timeout + "\nstdout:\n"
                        + out.join() + "\nstderr:\n" + err.join());
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

    /**
     * Reads {@code in} to the end on a thread of its own. (Not the common pool: it has one thread on two
     * cores, and a long-running program's drain would hold up every other program's output behind it.)
     */
    static CompletableFuture<String> drain(InputStream in) {
        CompletableFuture<String> result = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("tool-drain").start(() -> {
            try (in) {
                result.complete(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                result.complete("(unreadable: " + e + ")");
            }
        });
        return result;
    }
}
