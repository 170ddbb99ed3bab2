package dev.mqnbd.server.lifecycle;

import dev.mqnbd.server.InheritedSocket;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.unix.DomainSocketAddress;
import io.netty.channel.unix.Socket;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.SocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The new process's side of a hand-over: asks the server on the control socket to hand over, receives its
 * listening sockets, and waits (bounded) until it has drained its clients and released its exports.
 *
 * <p><b>Threading:</b> one thread; it polls the non-blocking control socket every millisecond, which costs
 * nothing next to the JVM start it follows.
 */
final class Takeover {
    private static final System.Logger LOG = System.getLogger(Takeover.class.getName());
    private static final Duration LOG_EVERY = Duration.ofSeconds(5);

    private final Socket socket;
    private final Path control;
    private final long started;
    private long oldPid = -1;

    private Takeover(Socket socket, Path control) {
        this.socket = socket;
        this.control = control;
        this.started = System.nanoTime();
    }

    /** Result of a finished take-over: the sockets to serve on and what the old process reported. */
    record Handed(List<SocketAddress> sockets, long oldPid, long answered, long drainMillis, long startedNanos) {}

    /**
     * Takes over from the server on {@code control}; returns null (and logs it) when no server answers there.
     *
     * @throws IOException if the server refuses, breaks off, or does not release its exports within {@code
     *     timeout}
     */
    static @Nullable Handed from(Path control, Duration timeout) throws IOException {
        Epoll.ensureAvailability();
        Socket socket = Socket.newSocketDomain();
        try {
            if (!socket.connect(new DomainSocketAddress(control.toString()))) {
                while (!socket.finishConnect()) {
                    Thread.onSpinWait();
                }
            }
        } catch (IOException e) {
            socket.close();
            LOG.log(Level.INFO, "no server answers on " + control + " (" + e.getMessage() + "): starting afresh");
            return null;
        }
        Takeover takeover = new Takeover(socket, control);
        try {
            return takeover.run(timeout);
        } finally {
            socket.close();
        }
    }

    private Handed run(Duration timeout) throws IOException {
        long deadline = started + timeout.toNanos();
        send("TAKEOVER " + ProcessHandle.current().pid() + "\n");
        String[] listeners = readLine(deadline, "its listening sockets").split(" ");
        if (listeners.length != 3 || !listeners[0].equals("LISTENERS")) {
            throw new IOException("the server on " + control + " refused to hand over: " + String.join(" ", listeners));
        }
        int count = Integer.parseInt(listeners[1]);
        oldPid = Long.parseLong(listeners[2]);
        List<SocketAddress> sockets = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            sockets.add(InheritedSocket.of(receiveFd(deadline), "from pid " + oldPid));
        }
        LOG.log(
                Level.INFO,
                "taking over from pid " + oldPid + ": got its " + count + " listening "
                        + (count == 1 ? "socket" : "sockets") + "; waiting up to " + timeout.toSeconds()
                        + " s for it to drain its clients and release its exports");
        String[] released = readLine(deadline, "the release of its exports").split(" ");
        if (released.length != 3 || !released[0].equals("RELEASED")) {
            throw new IOException("pid " + oldPid + " broke off the hand-over: " + String.join(" ", released));
        }
        return new Handed(sockets, oldPid, Long.parseLong(released[1]), Long.parseLong(released[2]), started);
    }

    private void send(String line) throws IOException {
        byte[] bytes = line.getBytes(StandardCharsets.US_ASCII);
        ByteBuffer buffer = ByteBuffer.allocateDirect(bytes.length).put(bytes).flip();
        while (buffer.hasRemaining()) {
            int n = socket.send(buffer, buffer.position(), buffer.limit());
            buffer.position(buffer.position() + Math.max(n, 0));
        }
    }

    /**
     * Reads one line a byte at a time, so that nothing past it is consumed: the descriptors that follow come
     * with bytes of their own, and a read that took those bytes would lose the descriptors.
     */
    private String readLine(long deadline, String what) throws IOException {
        ByteBuffer one = ByteBuffer.allocateDirect(1);
        StringBuilder line = new StringBuilder();
        long nextLog = System.nanoTime() + LOG_EVERY.toNanos();
        while (true) {
            int n = socket.recv(one, 0, 1);
            if (n < 0) {
                throw new IOException((oldPid < 0 ? "the server on " + control : "pid " + oldPid)
                        + " closed the control connection while we waited for " + what);
            }
            if (n == 0) {
                long now = System.nanoTime();
                if (now - deadline > 0) {
                    throw new IOException("gave up waiting for " + what + " from "
                            + (oldPid < 0 ? "the server on " + control : "pid " + oldPid) + " after "
                            + (now - started) / 1_000_000 + " ms (--takeover-timeout)");
                }
                if (now - nextLog > 0) {
                    nextLog = now + LOG_EVERY.toNanos();
                    LOG.log(
                            Level.INFO,
                            "still waiting for " + what + " from pid " + oldPid + " (" + (now - started) / 1_000_000
                                    + " ms)");
                }
                sleep();
                continue;
            }
            char c = (char) one.get(0);
            if (c == '\n') {
                return line.toString();
            }
            if (line.length() > 200) {
                throw new IOException("the server on " + control + " sent a line too long: " + line);
            }
            line.append(c);
        }
    }

    private int receiveFd(long deadline) throws IOException {
        while (true) {
            int fd = socket.recvFd();
            if (fd > 0) {
                return fd;
            }
            if (fd < 0) {
                throw new IOException("pid " + oldPid + " closed the control connection before its sockets came");
            }
            if (System.nanoTime() - deadline > 0) {
                throw new IOException("pid " + oldPid + " did not send its listening sockets in time");
            }
            sleep();
        }
    }

    private static void sleep() throws IOException {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while taking over", e);
        }
    }
}
