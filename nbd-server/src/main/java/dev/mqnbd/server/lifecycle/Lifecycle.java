package dev.mqnbd.server.lifecycle;

import dev.mqnbd.server.NbdServer;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Where a server's listening sockets come from and how it ends, for {@code mqnbd serve}: sockets the
 * service manager passed (socket activation), sockets taken over from a running server ({@code --take-over}),
 * or the configured addresses; and a stop that leaves reconnecting clients nothing to fail.
 *
 * <p>Use: {@link #begin} before the exports are opened (a take-over waits there until the running server
 * has released them), serve on {@link #addresses()}, call {@link #serving} once the server runs, and {@link
 * #stop} on SIGTERM. <b>Threading:</b> {@code begin} and {@code serving} on the starting thread; {@code
 * stop} on the shutdown hook's.
 */
public final class Lifecycle {
    private static final System.Logger LOG = System.getLogger(Lifecycle.class.getName());

    /**
     * What {@code mqnbd serve} was told.
     *
     * @param control the control socket to serve hand-overs on (and to take over through), or null for none
     * @param takeOver whether to take over from the server on {@code control} before opening the exports
     * @param timeout how long a take-over waits for the running server to drain and release its exports
     */
    public record Settings(@Nullable Path control, boolean takeOver, Duration timeout) {}

    private final Settings settings;
    private final List<SocketAddress> addresses;
    private final boolean activated;
    private final Takeover.@Nullable Handed handed;
    private @Nullable HandoverControl control;

    private Lifecycle(
            Settings settings, List<SocketAddress> addresses, boolean activated, Takeover.@Nullable Handed handed) {
        this.settings = settings;
        this.addresses = addresses;
        this.activated = activated;
        this.handed = handed;
    }

    /**
     * Finds the sockets to serve on: those the service manager passed; else, with {@code --take-over}, those of
     * the server on the control socket, once it has released its exports; else {@code configured}.
     *
     * @throws IOException if passed sockets are unusable, or a take-over fails (the running server refused,
     *     broke off or took longer than the timeout); a server already on the control socket without {@code
     *     --take-over}
     */
    public static Lifecycle begin(Settings settings, List<SocketAddress> configured) throws IOException {
        List<SocketAddress> passed = SocketActivation.inherited(
                System.getenv(), ProcessHandle.current().pid());
        if (!passed.isEmpty()) {
            return new Lifecycle(settings, passed, true, null);
        }
        Path path = settings.control();
        if (path == null) {
            return new Lifecycle(settings, configured, false, null);
        }
        if (!settings.takeOver()) {
            if (Probe.answers(path)) {
                throw new IOException(
                        "a server already answers on control socket " + path + " (add --take-over to replace it)");
            }
            return new Lifecycle(settings, configured, false, null);
        }
        Takeover.Handed handed = Takeover.from(path, settings.timeout());
        if (handed == null) {
            return new Lifecycle(settings, configured, false, null);
        }
        return new Lifecycle(settings, handed.sockets(), false, handed);
    }

    /** Returns the sockets or addresses to serve on. */
    public List<SocketAddress> addresses() {
        return addresses;
    }

    /**
     * The server runs: logs how a take-over went and opens the control socket, if one was asked for.
     *
     * @param beforeRelease for a later hand-over: closes what else holds a port (the metrics endpoint)
     * @param handedOver for a later hand-over: lets the process exit
     * @throws IOException if the control socket cannot be opened
     */
    public void serving(NbdServer server, Runnable beforeRelease, Runnable handedOver) throws IOException {
        if (handed != null) {
            long waited = (System.nanoTime() - handed.startedNanos()) / 1_000_000;
            LOG.log(
                    Level.INFO,
                    "took over from pid " + handed.oldPid() + ": it answered " + handed.answered()
                            + " requests while draining and released its exports after " + handed.drainMillis()
                            + " ms; new connections waited " + waited + " ms in the backlog");
        }
        Path path = settings.control();
        if (path != null) {
            control = HandoverControl.start(path, server, beforeRelease, handedOver);
        }
    }

    /**
     * Stops on SIGTERM. A server on sockets the service manager passed hands its clients over (no error
     * replies: a reconnecting client resends what was not answered, to the next process the manager starts);
     * any other stops as {@link NbdServer#close()} does.
     */
    public void stop(NbdServer server) {
        if (control != null) {
            control.close();
            if (control.handingOver()) {
                // The hand-over thread stops the server; the process ends once it has.
                control.awaitHandedOver();
                return;
            }
        }
        if (activated) {
            long answered = server.handOver();
            LOG.log(
                    Level.INFO,
                    "stopped for the next process the service manager starts; answered " + answered
                            + " requests while draining");
        } else {
            server.close();
        }
    }

    /** Probing a control socket for a live server. */
    private static final class Probe {
        static boolean answers(Path path) {
            try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
                return channel.isConnected();
            } catch (IOException e) {
                return false;
            }
        }
    }
}
