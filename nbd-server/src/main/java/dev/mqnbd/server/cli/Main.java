package dev.mqnbd.server.cli;

import picocli.CommandLine;

/** The {@code mqnbd} entry point. */
public final class Main {
    private Main() {}

    /** Runs the command line and exits with its status. */
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit status: 0 success, 1 failure, 2 bad usage. */
    public static int run(String... args) {
        CommandLine cli = MqnbdCommand.commandLine();
        return cli.execute(args);
    }
}
