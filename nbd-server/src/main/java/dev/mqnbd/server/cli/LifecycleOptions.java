package dev.mqnbd.server.cli;

import dev.mqnbd.server.lifecycle.Lifecycle;
import java.nio.file.Path;
import java.time.Duration;
import org.jspecify.annotations.Nullable;
import picocli.CommandLine.Option;

/** The restart and upgrade options of {@code mqnbd serve}: the control socket and taking over through it. */
final class LifecycleOptions {
    @Option(
            names = "--control",
            paramLabel = "PATH",
            description = "Serve a control socket at PATH through which a new mqnbd serve --take-over replaces"
                    + " this one without refusing a connection or failing a request (see the README, Restarting"
                    + " and upgrading). Off by default.")
    @Nullable
    Path control;

    @Option(
            names = "--take-over",
            description = "Before opening the exports, take over from the server on --control PATH: it passes its"
                    + " listening sockets, answers what its clients sent, makes its exports durable and releases"
                    + " them; then this one serves. Starts normally when no server answers there.")
    boolean takeOver;

    @Option(
            names = "--takeover-timeout",
            paramLabel = "DURATION",
            defaultValue = "60s",
            description = "How long --take-over waits for the running server to drain and release its exports:"
                    + " 30s, 2m (default: ${DEFAULT-VALUE}).")
    String takeoverTimeout = "60s";

    /**
     * Returns the settings.
     *
     * @throws MqnbdCommand.UsageException if --take-over lacks --control or the timeout is malformed
     */
    Lifecycle.Settings settings() {
        if (takeOver && control == null) {
            throw new MqnbdCommand.UsageException("--take-over needs --control PATH (the running server's)");
        }
        Duration timeout = LimitOptions.parseDuration("--takeover-timeout", takeoverTimeout);
        if (timeout.isZero()) {
            throw new MqnbdCommand.UsageException("--takeover-timeout " + takeoverTimeout + " (expected: above 0)");
        }
        return new Lifecycle.Settings(control, takeOver, timeout);
    }
}
