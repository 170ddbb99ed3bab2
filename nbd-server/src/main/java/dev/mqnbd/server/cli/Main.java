package dev.mqnbd.server.cli;

import picocli.CommandLine;

/** The {@code mqnbd} entry point. */
public final class Main {
    private Main() {}

    /** Runs the command line and exits with its status. */
    public static void main(String[] args) {
        // Must come before the first log record, so that the graceful stop can still log.
        System.setProperty("java.util.logging.manager", KeepLogsLogManager.class.getName());
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit status: 0 success, 1 failure, 2 bad usage. */
    public static int run(String... args) {
        CommandLine cli = MqnbdCommand.commandLine();
        return cli.execute(args);
    }
}
