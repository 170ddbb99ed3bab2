package dev.mqnbd.storage.s3;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import org.jspecify.annotations.Nullable;

/**
 * Keep-alive HTTP/1.1 connections to one host, for {@link DirectObjectStore}'s GETs and PUTs: blocking
 * sockets (the callers are virtual threads), plain or TLS (the JDK's default trust store, host name
 * verified), pooled while idle.
 *
 * <p>An exchange writes the request head and then the body straight from the caller's array, and reads a
 * 2xx body of announced length straight into an array of that length; other bodies (errors) are read up
 * to {@link #MAX_ERROR_BODY} bytes, with {@code Content-Length}, chunked framing or up to the end of the
 * connection. Each exchange has a deadline: a watchdog closes the socket when it passes, which ends a
 * write to a store that stopped reading as surely as a read from one that stopped answering. A connection
 * goes back to the pool only after a whole, well-framed reply without {@code Connection: close}; one idle
 * longer than {@link #MAX_IDLE_NANOS} is closed rather than reused (stores close idle connections after
 * some seconds). When a reused connection fails before any byte of the reply, which is how a connection
 * the store closed while idle shows, the exchange is sent once more on a new connection: every request
 * sent here (a GET, an unconditional PUT) may be repeated.
 *
 * <p><b>Bounds:</b> a reply's head is at most {@link #MAX_HEAD} bytes, a 2xx body at most {@link #MAX_BODY}
 * (longer ones fail the exchange); at most {@link
 * S3Clients#MAX_CONNECTIONS} idle connections are kept.
 *
 * <p><b>Threading:</b> safe for concurrent use; a connection is used by one exchange at a time.
 */
final class HttpConnections implements AutoCloseable {
    /** Longest a connection stays idle in the pool. */
    static final long MAX_IDLE_NANOS = TimeUnit.SECONDS.toNanos(4);

    /** Most bytes of a reply's status line and headers. */
    static final int MAX_HEAD = 64 << 10;

    /** Most bytes of a non-2xx reply's body that are read (the rest closes the connection). */
    static final int MAX_ERROR_BODY = 64 << 10;

    /** Most bytes of a 2xx reply's body: the largest block ({@link S3Spec#MAX_BLOCK_SIZE}). */
    static final int MAX_BODY = S3Spec.MAX_BLOCK_SIZE;

    /** Longest a connection may take to open (within the exchange's deadline). */
    private static final int CONNECT_TIMEOUT_MILLIS = 5_000;

    private static final Pattern CODE = Pattern.compile("<Code>([^<]*)</Code>");
    private static final Pattern MESSAGE = Pattern.compile("<Message>([^<]*)</Message>");

    /** Closes sockets whose exchange ran past its deadline. */
    private static final ScheduledThreadPoolExecutor WATCHDOG = watchdog();

    private final String host;
    private final int port;
    private final boolean tls;
    private final String hostHeader;
    private final SSLSocketFactory tlsSockets;
    private final ConcurrentLinkedDeque<Connection> idle = new ConcurrentLinkedDeque<>();
    private final AtomicInteger idleCount = new AtomicInteger();
    private final AtomicBoolean closed = new AtomicBoolean();

    /** Connections to {@code host:port}, over TLS with the JDK's default trust store when {@code tls}. */
    HttpConnections(String host, int port, boolean tls) {
        this(host, port, tls, (SSLSocketFactory) SSLSocketFactory.getDefault());
    }

    /** Connections to {@code host:port}, over TLS from {@code tlsSockets} when {@code tls}. */
    HttpConnections(String host, int port, boolean tls, SSLSocketFactory tlsSockets) {
        this.tlsSockets = tlsSockets;
        this.host = host;
        this.port = port;
        this.tls = tls;
        boolean defaultPort = port == (tls ? 443 : 80);
        String h = host.contains(":") && !host.startsWith("[") ? "[" + host + "]" : host;
        this.hostHeader = defaultPort ? h : h + ":" + port;
    }

    /** Returns the {@code Host} header of requests to this host. */
    String hostHeader() {
        return hostHeader;
    }

    /**
     * A reply: its status and reason phrase, its headers (names in lower case; the last of repeated ones), and its body
     * (whole for a 2xx, at most {@link #MAX_ERROR_BODY} bytes otherwise).
     */
    record Response(int status, String reason, Map<String, String> headers, byte[] body) {
        String header(String name, String otherwise) {
            return headers.getOrDefault(name, otherwise);
        }

        /** Returns the user metadata ({@code x-amz-meta-*}), keys without the prefix. */
        Map<String, String> metadata() {
            Map<String, String> m = new HashMap<>();
            for (Map.Entry<String, String> h : headers.entrySet()) {
                if (h.getKey().startsWith("x-amz-meta-")) {
                    m.put(h.getKey().substring("x-amz-meta-".length()), h.getValue());
                }
            }
            return m;
        }

        /** Returns the S3 error code of an error reply's XML body, or "" without one. */
        String code() {
            Matcher m = CODE.matcher(new String(body, StandardCharsets.UTF_8));
            return m.find() ? m.group(1) : "";
        }

        /** Returns the S3 error message of an error reply's XML body, else its reason phrase. */
        String message() {
            Matcher m = MESSAGE.matcher(new String(body, StandardCharsets.UTF_8));
            return m.find() ? m.group(1) : reason;
        }
    }

    /**
     * Sends a request and reads its reply before {@code deadline} ({@link System#nanoTime()}).
     *
     * @param headers the request's headers but {@code Content-Length}, names in lower case
     * @param body the body, or {@code null} for none; only read during the call
     * @param bodies gives the array a 2xx reply's body of announced length is read into: given the length,
     *     an array of exactly that length, every byte of which is overwritten
     * @throws IOException on no reply in time, a broken connection or a malformed reply
     */
    Response exchange(
            String method,
            String path,
            Map<String, String> headers,
            byte @Nullable [] body,
            long deadline,
            IntFunction<byte[]> bodies)
            throws IOException {
        if (closed.get()) {
            throw new IOException("client closed");
        }
        byte[] head = head(method, path, headers, body);
        Connection c = take();
        if (c != null) {
            try {
                return c.exchange(head, body, method, deadline, bodies);
            } catch (IOException e) {
                c.close();
                if (c.replied
                        || System.nanoTime() - deadline >= 0
                        || Thread.currentThread().isInterrupted()) {
                    throw e;
                }
                // The store closed it while idle: once more on a new connection.
            }
        }
        c = open(deadline);
        try {
            return c.exchange(head, body, method, deadline, bodies);
        } catch (IOException e) {
            c.close();
            throw e;
        }
    }

    private byte[] head(String method, String path, Map<String, String> headers, byte @Nullable [] body) {
        StringBuilder h = new StringBuilder(640)
                .append(method)
                .append(' ')
                .append(path)
                .append(" HTTP/1.1\r\nhost: ")
                .append(hostHeader)
                .append("\r\n");
        for (Map.Entry<String, String> e : headers.entrySet()) {
            if (!e.getKey().equals("host")) {
                h.append(e.getKey()).append(": ").append(e.getValue()).append("\r\n");
            }
        }
        if (body != null) {
            h.append("content-length: ").append(body.length).append("\r\n");
        }
        h.append("user-agent: mqnbd\r\n\r\n");
        return h.toString().getBytes(StandardCharsets.ISO_8859_1);
    }

    private @Nullable Connection take() {
        for (Connection c; (c = idle.pollFirst()) != null; ) {
            idleCount.decrementAndGet();
            if (System.nanoTime() - c.idleSince < MAX_IDLE_NANOS) {
                return c;
            }
            c.close();
        }
        return null;
    }

    private void release(Connection c) {
        if (closed.get() || idleCount.incrementAndGet() > S3Clients.MAX_CONNECTIONS) {
            idleCount.decrementAndGet();
            c.close();
            return;
        }
        c.idleSince = System.nanoTime();
        idle.offerFirst(c);
        if (closed.get() && idle.remove(c)) {
            c.close();
        }
    }

    private Connection open(long deadline) throws IOException {
        long leftMillis = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
        if (leftMillis <= 0) {
            throw new SocketTimeoutException("no time left to connect to " + hostHeader);
        }
        Socket socket = new Socket();
        try {
            socket.setTcpNoDelay(true);
            socket.setKeepAlive(true);
            socket.connect(new InetSocketAddress(host, port), (int) Math.min(CONNECT_TIMEOUT_MILLIS, leftMillis));
            Socket raw = socket;
            if (tls) {
                SSLSocket ssl = (SSLSocket) tlsSockets.createSocket(socket, host, port, true);
                SSLParameters parameters = ssl.getSSLParameters();
                parameters.setEndpointIdentificationAlgorithm("HTTPS");
                ssl.setSSLParameters(parameters);
                return new Connection(ssl, raw);
            }
            return new Connection(socket, raw);
        } catch (IOException | RuntimeException e) {
            socket.close();
            throw e;
        }
    }

    /** Closes every idle connection; exchanges in progress finish, and their connections are closed. */
    @Override
    public void close() {
        closed.set(true);
        for (Connection c; (c = idle.pollFirst()) != null; ) {
            idleCount.decrementAndGet();
            c.close();
        }
    }

    private static ScheduledThreadPoolExecutor watchdog() {
        ScheduledThreadPoolExecutor e = new ScheduledThreadPoolExecutor(1, r -> {
            Thread t = new Thread(r, "mqnbd-s3-http-watchdog");
            t.setDaemon(true);
            return t;
        });
        e.setRemoveOnCancelPolicy(true);
        return e;
    }

    /**
     * One connection: its socket (TLS over {@code raw}, or {@code raw} itself) and a buffer of what was read
     * past the last reply's head. Closing closes {@code raw}, at once: a TLS {@code close_notify} could
     * block behind a write to a store that stopped reading.
     */
    private final class Connection {
        private final Socket raw;
        private final InputStream in;
        private final OutputStream out;
        private final byte[] buffer = new byte[16 << 10];
        private int pos;
        private int limit;
        /** Whether the current exchange got any byte of its reply. */
        boolean replied;
        /** Whether the last reply was whole and well framed, and the store keeps the connection open. */
        private boolean reusable;

        long idleSince;

        Connection(Socket socket, Socket raw) throws IOException {
            this.raw = raw;
            this.in = socket.getInputStream();
            this.out = socket.getOutputStream();
        }

        Response exchange(byte[] head, byte @Nullable [] body, String method, long deadline, IntFunction<byte[]> bodies)
                throws IOException {
            replied = false;
            reusable = false;
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new SocketTimeoutException("no time left for the request");
            }
            AtomicBoolean expired = new AtomicBoolean();
            ScheduledFuture<?> watchdog = WATCHDOG.schedule(
                    () -> {
                        expired.set(true);
                        close();
                    },
                    left,
                    TimeUnit.NANOSECONDS);
            Response r;
            try {
                out.write(head);
                if (body != null && body.length > 0) {
                    out.write(body);
                }
                out.flush();
                r = read(method, bodies);
            } catch (IOException e) {
                watchdog.cancel(false);
                if (expired.get()) {
                    SocketTimeoutException t = new SocketTimeoutException(
                            "no whole reply within " + TimeUnit.NANOSECONDS.toMillis(left) + " ms");
                    t.initCause(e);
                    throw t;
                }
                throw e;
            }
            // A watchdog that already ran closed the socket: the reply is whole, but the connection is gone.
            if (watchdog.cancel(false) && reusable) {
                release(this);
            } else {
                close();
            }
            return r;
        }

        private Response read(String method, IntFunction<byte[]> bodies) throws IOException {
            String statusLine = line();
            replied = true;
            // HTTP/1.1 200 OK
            if (!statusLine.startsWith("HTTP/1.") || statusLine.length() < 12) {
                throw new IOException("malformed reply: " + printable(statusLine));
            }
            int status;
            try {
                status = Integer.parseInt(statusLine.substring(9, 12));
            } catch (NumberFormatException e) {
                throw new IOException("malformed status line: " + printable(statusLine), e);
            }
            boolean keepAlive = statusLine.startsWith("HTTP/1.1");
            Map<String, String> headers = new HashMap<>();
            int headBytes = statusLine.length();
            for (String line; !(line = line()).isEmpty(); ) {
                headBytes += line.length() + 2;
                if (headBytes > MAX_HEAD) {
                    throw new IOException("reply head longer than " + MAX_HEAD + " bytes");
                }
                int colon = line.indexOf(':');
                if (colon <= 0) {
                    throw new IOException("malformed header: " + printable(line));
                }
                headers.put(
                        line.substring(0, colon).strip().toLowerCase(Locale.ROOT),
                        line.substring(colon + 1).strip());
            }
            String connection = headers.getOrDefault("connection", "");
            if (connection.equalsIgnoreCase("close")) {
                keepAlive = false;
            }
            boolean success = status / 100 == 2;
            byte[] body;
            String length = headers.get("content-length");
            if (method.equals("HEAD") || status == 204 || status == 304 || status / 100 == 1) {
                body = new byte[0];
            } else if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
                body = chunked(success ? MAX_BODY : MAX_ERROR_BODY);
            } else if (length != null) {
                long n;
                try {
                    n = Long.parseLong(length);
                } catch (NumberFormatException e) {
                    throw new IOException("malformed Content-Length: " + printable(length), e);
                }
                if (n < 0 || (success && n > MAX_BODY)) {
                    throw new IOException("Content-Length " + n + " out of range (expected: 0 to " + MAX_BODY + ")");
                }
                if (!success && n > MAX_ERROR_BODY) {
                    body = new byte[MAX_ERROR_BODY];
                    readFully(body, body.length);
                    keepAlive = false;
                } else {
                    body = success ? bodies.apply((int) n) : new byte[(int) n];
                    readFully(body, body.length);
                }
            } else {
                // Delimited by the end of the connection.
                body = untilEnd(success ? MAX_BODY : MAX_ERROR_BODY, !success);
                keepAlive = false;
            }
            reusable = keepAlive;
            return new Response(status, statusLine.length() > 13 ? statusLine.substring(13) : "", headers, body);
        }

        private byte[] chunked(int max) throws IOException {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            while (true) {
                String sizeLine = line();
                int semicolon = sizeLine.indexOf(';');
                long size;
                try {
                    size = Long.parseLong((semicolon < 0 ? sizeLine : sizeLine.substring(0, semicolon)).strip(), 16);
                } catch (NumberFormatException e) {
                    throw new IOException("malformed chunk size: " + printable(sizeLine), e);
                }
                if (size < 0 || body.size() + size > max) {
                    throw new IOException("reply body longer than " + max + " bytes");
                }
                if (size == 0) {
                    while (!line().isEmpty()) {
                        // Trailers: ignored.
                    }
                    return body.toByteArray();
                }
                byte[] chunk = new byte[(int) size];
                readFully(chunk, chunk.length);
                body.writeBytes(chunk);
                if (!line().isEmpty()) {
                    throw new IOException("malformed chunk end");
                }
            }
        }

        /** Reads the body up to the end of the connection: at most {@code max} bytes, or fails if {@code !truncate}. */
        private byte[] untilEnd(int max, boolean truncate) throws IOException {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            body.write(buffer, pos, limit - pos);
            pos = limit;
            byte[] chunk = new byte[8192];
            for (int r; body.size() <= max && (r = in.read(chunk)) >= 0; ) {
                body.write(chunk, 0, r);
            }
            if (body.size() <= max) {
                return body.toByteArray();
            }
            if (!truncate) {
                throw new IOException("reply body longer than " + max + " bytes");
            }
            return Arrays.copyOf(body.toByteArray(), max);
        }

        /** Reads {@code n} bytes into {@code dst}: the buffered ones, then straight from the socket. */
        private void readFully(byte[] dst, int n) throws IOException {
            int done = Math.min(n, limit - pos);
            System.arraycopy(buffer, pos, dst, 0, done);
            pos += done;
            while (done < n) {
                int r = in.read(dst, done, n - done);
                if (r < 0) {
                    throw new EOFException("connection closed after " + done + " of " + n + " body bytes");
                }
                done += r;
            }
        }

        /** Reads one line ending in CRLF (or LF), without it. */
        private String line() throws IOException {
            StringBuilder line = null;
            while (true) {
                for (int i = pos; i < limit; i++) {
                    if (buffer[i] == '\n') {
                        int end = i > pos && buffer[i - 1] == '\r' ? i - 1 : i;
                        String part = new String(buffer, pos, end - pos, StandardCharsets.ISO_8859_1);
                        pos = i + 1;
                        if (line == null) {
                            return part;
                        }
                        line.append(part);
                        int l = line.length();
                        if (l > 0 && line.charAt(l - 1) == '\r' && end == i) {
                            line.setLength(l - 1);
                        }
                        return line.toString();
                    }
                }
                if (line == null) {
                    line = new StringBuilder();
                }
                line.append(new String(buffer, pos, limit - pos, StandardCharsets.ISO_8859_1));
                if (line.length() > MAX_HEAD) {
                    throw new IOException("reply line longer than " + MAX_HEAD + " bytes");
                }
                pos = 0;
                limit = in.read(buffer);
                if (limit < 0) {
                    limit = 0;
                    throw new EOFException("connection closed by " + hostHeader);
                }
            }
        }

        void close() {
            try {
                raw.close();
            } catch (IOException e) {
                // Nothing to do: the connection is gone either way.
            }
        }
    }

    private static String printable(String s) {
        String t = s.length() > 80 ? s.substring(0, 80) + "..." : s;
        return t.replaceAll("[^\\x20-\\x7e]", "?");
    }
}
