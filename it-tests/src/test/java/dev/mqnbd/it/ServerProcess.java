package dev.mqnbd.it;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The {@code mqnbd} jar run as its own process, as a user runs it; its log is collected. */
public final class ServerProcess implements AutoCloseable {
    private static final Pattern LISTENING = Pattern.compile("listening on 127\\.0\\.0\\.1:(\\d+)");

    private final Process process;
    private final StringBuffer log = new StringBuffer();
    private volatile int port = -1;
    private volatile boolean ready;

    private ServerProcess(Process process) {
        this.process = process;
        Thread reader = new Thread(this::readLog, "mqnbd-log");
        reader.setDaemon(true);
        reader.start();
    }

    /** Returns the command that runs the CLI jar with this JVM's java. */
    static List<String> command(String... args) {
        return command(List.of(), args);
    }

    /** Returns the command that runs the CLI jar with this JVM's java and the extra {@code jvmOptions}. */
    static List<String> command(List<String> jvmOptions, String... args) {
        String jar = System.getProperty("mqnbd.jar");
        if (jar == null || !Files.isRegularFile(Path.of(jar))) {
            throw new IllegalStateException("mqnbd.jar (" + jar + ") is missing: run the build from the top directory");
        }
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> command = new ArrayList<>(
                List.of(java, "--sun-misc-unsafe-memory-access=allow", "--enable-native-access=ALL-UNNAMED"));
        command.addAll(jvmOptions);
        command.addAll(List.of("-jar", jar));
        command.addAll(List.of(args));
        return command;
    }

    /** Starts {@code mqnbd ARGS} and waits until it logs that it is ready. */
    public static ServerProcess start(String... args) throws IOException, InterruptedException {
        return start(List.of(), args);
    }

    /**
     * Starts {@code java JVM_OPTIONS -jar mqnbd.jar ARGS} (e.g. {@code -Dio.netty.leakDetection.level=paranoid})
     * and waits until it logs that it is ready.
     */
    static ServerProcess start(List<String> jvmOptions, String... args) throws IOException, InterruptedException {
        return start(Map.of(), jvmOptions, args);
    }

    /** As {@link #start(List, String...)}, with {@code env} added to the server's environment. */
    static ServerProcess start(Map<String, String> env, List<String> jvmOptions, String... args)
            throws IOException, InterruptedException {
        return startCommand(env, command(jvmOptions, args));
    }

    /** Runs {@code command} (one that runs the CLI jar, perhaps through a launcher) and waits until it is ready. */
    static ServerProcess startCommand(Map<String, String> env, List<String> command)
            throws IOException, InterruptedException {
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().putAll(env);
        ServerProcess server = new ServerProcess(builder.start());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!server.ready) {
            if (!server.process.isAlive()) {
                throw new AssertionError("mqnbd exited with " + server.process.exitValue() + ":\n" + server.log());
            }
            if (System.nanoTime() - deadline > 0) {
                server.close();
                throw new AssertionError("mqnbd was not ready within 30 s:\n" + server.log());
            }
            Thread.sleep(20);
        }
        return server;
    }

    private void readLog() {
        try (BufferedReader in =
                new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                log.append(line).append('\n');
                Matcher m = LISTENING.matcher(line);
                if (m.find() && port < 0) {
                    port = Integer.parseInt(m.group(1));
                }
                if (line.contains(" ready: ")) {
                    ready = true;
                }
            }
        } catch (IOException e) {
            log.append("(log unreadable: ").append(e).append(")\n");
        }
    }

    public int port() {
        return port;
    }

    /**
     * Returns the port the server logged for listen address {@code host} as the log shows it ({@code
     * 127.0.0.1}, {@code [::1]}); with {@code --port 0} each address gets its own.
     */
    int port(String host) {
        Matcher m = Pattern.compile("listening on " + Pattern.quote(host) + ":(\\d+)")
                .matcher(log());
        if (!m.find()) {
            throw new AssertionError("mqnbd logged no listener on " + host + ":\n" + log());
        }
        return Integer.parseInt(m.group(1));
    }

    /** Waits up to {@code timeout} for {@code text} to appear in the log; returns whether it did. */
    boolean awaitLog(String text, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!log().contains(text)) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(20);
        }
        return true;
    }

    public String log() {
        return log.toString();
    }

    public Process process() {
        return process;
    }

    /** Sends SIGTERM and waits for the process to end; returns its exit status. */
    int stop(Duration timeout) throws InterruptedException {
        // ProcessHandle.destroy sends SIGTERM without closing our end of the log pipe (Process.destroy does).
        process.toHandle().destroy();
        if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            process.destroyForcibly().waitFor();
            throw new AssertionError("mqnbd did not stop within " + timeout + " of SIGTERM:\n" + log());
        }
        // Let the log reader catch the last lines.
        Thread.sleep(50);
        return process.exitValue();
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }
}
