package dev.mqnbd.server.cli;

import java.io.PrintWriter;
import java.util.Objects;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** The top-level {@code mqnbd} command; its work is in subcommands. */
@Command(
        name = "mqnbd",
        mixinStandardHelpOptions = true,
        versionProvider = MqnbdCommand.Version.class,
        subcommands = {ServeCommand.class, CommandLine.HelpCommand.class},
        description = {
            "An NBD (Network Block Device) server. Clients such as the kernel's nbd-client, qemu-img, nbdinfo,"
                    + " nbdcopy and fio read and write its exports over the NBD protocol.",
        },
        footer = {
            "",
            "Start with:  mqnbd serve            (a 1 GiB memory export on localhost:10809)",
            "Then:        nbdinfo nbd://localhost",
            "More:        mqnbd serve --help",
        })
final class MqnbdCommand implements Runnable {
    static final int EXIT_USAGE = 2;

    @Spec
    @SuppressWarnings("NullAway.Init") // picocli injects it before run()
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Builds the command line with mqnbd's error handling: one clear line and exit status 2. */
    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new MqnbdCommand());
        ServeCommand.addFilterHelp(
                Objects.requireNonNull(cli.getSubcommands().get("serve")).getCommandSpec());
        cli.setParameterExceptionHandler((ex, args) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("mqnbd: " + ex.getMessage());
            err.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help'.");
            return EXIT_USAGE;
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            PrintWriter err = commandLine.getErr();
            if (ex instanceof UsageException) {
                err.println("mqnbd: " + ex.getMessage());
                err.println("Try '" + commandLine.getCommandSpec().qualifiedName() + " --help'.");
                return EXIT_USAGE;
            }
            err.println("mqnbd: " + (ex.getMessage() != null ? ex.getMessage() : ex.toString()));
            return 1;
        });
        return cli;
    }

    /** Reads the version from the jar's manifest. */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() {
            String version = MqnbdCommand.class.getPackage().getImplementationVersion();
            return new String[] {
                "mqnbd " + (version != null ? version : "(development build)"),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vm.name") + ")",
            };
        }
    }

    /** A bad command line found after parsing (a duplicate export, an impossible size): exit status 2. */
    static final class UsageException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
