package dev.mqnbd.server.cli;

import dev.mqnbd.server.security.AccessList;
import dev.mqnbd.server.security.Cidr;
import dev.mqnbd.server.security.SubjectPattern;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Option;

/** The {@code --allow} and {@code --allow-subject} options of {@code mqnbd serve}: who may use which export. */
final class AccessOptions {
    /** The NAME that stands for every export. */
    static final String EVERY_EXPORT = "*";

    @Option(
            names = "--allow",
            paramLabel = "[NAME=]CIDR[,CIDR...]",
            description = "Only clients from these addresses may see and use export NAME; repeatable. Without NAME= "
                    + "(or with NAME *) the ranges apply to every export. IPv4 and IPv6: 10.0.0.0/8, 192.168.1.7, "
                    + "fd00::/8. Unix-socket clients count as 127.0.0.1.")
    List<String> allow = new ArrayList<>();

    @Option(
            names = "--allow-subject",
            paramLabel = "NAME=SUBJECT",
            description = "Only TLS clients whose verified certificate has this subject may see and use export NAME "
                    + "(* for every export); repeatable. SUBJECT is a DN (CN=alice,O=Example) or a bare CN (alice). "
                    + "Needs --tls and a CA. A client must pass both --allow and --allow-subject where both are set.")
    List<String> allowSubject = new ArrayList<>();

    /** Returns whether some export admits clients by certificate subject. */
    boolean hasSubjects() {
        return !allowSubject.isEmpty();
    }

    /**
     * Returns the access list of every export that has one, by name, in the order of {@code exportNames}.
     *
     * @throws MqnbdCommand.UsageException if an option is malformed or names no export
     */
    Map<String, AccessList> build(List<String> exportNames) {
        Map<String, List<Cidr>> addresses = new LinkedHashMap<>();
        for (String text : allow) {
            int eq = text.indexOf('=');
            String name = eq < 0 ? EVERY_EXPORT : checkName("--allow", text, text.substring(0, eq), exportNames);
            String ranges = text.substring(eq + 1);
            for (String range : ranges.split(",", -1)) {
                try {
                    addresses.computeIfAbsent(name, n -> new ArrayList<>()).add(Cidr.parse(range));
                } catch (IllegalArgumentException e) {
                    throw new MqnbdCommand.UsageException("--allow " + text + ": " + e.getMessage());
                }
            }
        }
        Map<String, List<SubjectPattern>> subjects = new LinkedHashMap<>();
        for (String text : allowSubject) {
            int eq = text.indexOf('=');
            if (eq < 0) {
                throw new MqnbdCommand.UsageException("--allow-subject " + text
                        + ": expected NAME=SUBJECT, e.g. disk=alice, disk=CN=alice,O=Example or '*=alice'");
            }
            String name = checkName("--allow-subject", text, text.substring(0, eq), exportNames);
            try {
                SubjectPattern subject = SubjectPattern.parse(text.substring(eq + 1));
                subjects.computeIfAbsent(name, n -> new ArrayList<>()).add(subject);
            } catch (IllegalArgumentException e) {
                throw new MqnbdCommand.UsageException("--allow-subject " + text + ": " + e.getMessage());
            }
        }
        AccessList every = AccessList.of(
                addresses.getOrDefault(EVERY_EXPORT, List.of()), subjects.getOrDefault(EVERY_EXPORT, List.of()));
        Map<String, AccessList> result = new LinkedHashMap<>();
        for (String name : exportNames) {
            AccessList own =
                    AccessList.of(addresses.getOrDefault(name, List.of()), subjects.getOrDefault(name, List.of()));
            AccessList list = every.plus(own);
            if (list != AccessList.ANYONE) {
                result.put(name, list);
            }
        }
        return result;
    }

    private static String checkName(String option, String text, String name, List<String> exportNames) {
        if (!name.equals(EVERY_EXPORT) && !exportNames.contains(name)) {
            throw new MqnbdCommand.UsageException(option + " " + text + ": no export is named \"" + name + "\"");
        }
        return name;
    }
}
