package dev.mqnbd.server.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * {@code --help} reads well in an 80-column terminal: Picocli wraps every description (none is broken by
 * hand inside a sentence), and each command's summary is one complete sentence on one line.
 */
class HelpTest {
    private static final int WIDTH = 80;

    @Test
    void mqnbdHelp_at80Columns_noLineLonger_serveSummaryIsOneCompleteSentenceOnOneLine() {
        List<String> lines = help("--help");

        assertThat(lines).allSatisfy(line -> assertThat(line.length()).as(line).isLessThanOrEqualTo(WIDTH));
        String serve = lines.stream()
                .filter(line -> line.stripLeading().startsWith("serve "))
                .findFirst()
                .orElseThrow();
        assertThat(serve.strip().substring("serve".length()).strip()).matches("[A-Z][^.]*\\.");
        // The next line lists the next command: the summary is not continued there.
        assertThat(lines.get(lines.indexOf(serve) + 1).stripLeading()).startsWith("help ");
    }

    @Test
    void serveHelp_at80Columns_noLineLonger_summaryIsACompleteSentence() {
        List<String> lines = help("serve", "--help");

        assertThat(lines).allSatisfy(line -> assertThat(line.length()).as(line).isLessThanOrEqualTo(WIDTH));
        // Usage lines, then the summary line, then a blank line.
        int summary = lines.indexOf(
                lines.stream().filter(l -> l.startsWith("Serves ")).findFirst().orElseThrow());
        assertThat(lines.get(summary)).matches("Serves [^.]*\\.");
        assertThat(lines.get(summary + 1)).isEmpty();
    }

    @Test
    void descriptions_oneParagraphPerOption_commandParagraphsEndSentences() {
        CommandLine cli = MqnbdCommand.commandLine();
        for (CommandSpec spec :
                List.of(cli.getCommandSpec(), cli.getSubcommands().get("serve").getCommandSpec())) {
            // Each element of a description array starts a new line: only Picocli may break one.
            for (OptionSpec option : spec.options()) {
                assertThat(option.description()).as(option.longestName()).hasSize(1);
            }
            assertThat(spec.usageMessage().description())
                    .as(spec.name())
                    .allSatisfy(paragraph -> assertThat(paragraph).matches("|.*\\."));
        }
    }

    private static List<String> help(String... args) {
        CommandLine cli = MqnbdCommand.commandLine();
        cli.setUsageHelpWidth(WIDTH);
        StringWriter out = new StringWriter();
        cli.setOut(new PrintWriter(out));
        assertThat(cli.execute(args)).isZero();
        return Arrays.asList(out.toString().split("\\R", -1));
    }
}
