package dev.mqnbd.server.lifecycle;

import dev.mqnbd.server.InheritedSocket;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * systemd's socket activation protocol (sd_listen_fds(3)): a process started with {@code LISTEN_PID} equal to
 * its pid and {@code LISTEN_FDS=n} owns the listening sockets at descriptors 3 to 3+n-1, named by the optional
 * {@code LISTEN_FDNAMES} (colon-separated). {@code systemd-socket-activate} passes sockets the same way.
 */
public final class SocketActivation {
    private static final System.Logger LOG = System.getLogger(SocketActivation.class.getName());
    /** The first passed descriptor: {@code SD_LISTEN_FDS_START}. */
    static final int FIRST_FD = 3;

    private SocketActivation() {}

    /**
     * Returns the listening sockets the service manager passed to this process, or an empty list when it passed
     * none (or passed them to another process: {@code LISTEN_PID} differs). Unsets the {@code LISTEN_*}
     * variables, as sd_listen_fds does, so that no process started later takes them for its own.
     *
     * @throws IOException if the variables are malformed or a descriptor is not a listening socket
     */
    public static List<SocketAddress> inherited(Map<String, String> env, long pid) throws IOException {
        String listenPid = env.get("LISTEN_PID");
        String listenFds = env.get("LISTEN_FDS");
        if (listenPid == null || listenFds == null) {
            return List.of();
        }
        unsetenv();
        long forPid;
        int count;
        try {
            forPid = Long.parseLong(listenPid.strip());
            count = Integer.parseInt(listenFds.strip());
        } catch (NumberFormatException e) {
            throw new IOException("LISTEN_PID=" + listenPid + ", LISTEN_FDS=" + listenFds + " (expected: numbers)");
        }
        if (forPid != pid) {
            LOG.log(Level.INFO, "ignoring LISTEN_FDS: LISTEN_PID " + forPid + " is not this process (" + pid + ")");
            return List.of();
        }
        if (count < 1 || count > 64) {
            throw new IOException("LISTEN_FDS=" + count + " (expected: 1..64 listening sockets)");
        }
        String names = env.get("LISTEN_FDNAMES");
        String[] name = names == null ? new String[0] : names.split(":", -1);
        List<SocketAddress> result = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String label = (i < name.length && !name[i].isEmpty() ? name[i] + ", " : "") + "from the service manager";
            result.add(InheritedSocket.of(FIRST_FD + i, label));
        }
        LOG.log(
                Level.INFO,
                "socket activation: serving on " + count + " listening "
                        + (count == 1 ? "socket" : "sockets") + " passed by the service manager"
                        + (names == null ? "" : " (" + names + ")"));
        return result;
    }

    /** Removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from the process environment (libc's unsetenv). */
    private static void unsetenv() {
        Linker linker = Linker.nativeLinker();
        @Nullable
        MethodHandle unset = linker.defaultLookup()
                .find("unsetenv")
                .map(address -> linker.downcallHandle(
                        address, FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS)))
                .orElse(null);
        if (unset == null) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            for (String variable : List.of("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")) {
                int unused = (int) unset.invokeExact(arena.allocateFrom(variable));
            }
        } catch (Throwable e) {
            LOG.log(Level.DEBUG, () -> "cannot unset LISTEN_* variables: " + e);
        }
    }
}
