package dev.mqnbd.server.handler;

import dev.mqnbd.server.protocol.NbdCodecException;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.socket.DuplexChannel;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;

/**
 * How one connection ends: the client's {@code NBD_CMD_DISC}, a graceful stop of the server ({@link
 * TransmissionHandler#shutdown}), a protocol violation or a lost peer. After DISC or a stop, the requests
 * in flight finish and are answered, then the connection closes ({@link #maybeClose}). A hand-over to a
 * new server process ({@link TransmissionHandler#handOver}) answers every command already read, drops
 * those read later unanswered (a reconnecting client sends them again), then closes the write side and
 * waits briefly for the client to close its own, so that no unread request turns the close into a reset
 * that could discard replies not yet delivered.
 *
 * <p><b>Threading:</b> the channel's event loop.
 */
final class ConnectionEnd {
    private final TransmissionHandler h;
    /** Whether NBD_CMD_DISC was decoded: what follows it is not read as requests. */
    boolean discReceived;
    /** Whether DISC was reached in the pending commands: no new commands, close once the rest is answered. */
    boolean disconnecting;
    /** Whether the server stops: commands not yet started are answered ESHUTDOWN. */
    boolean shuttingDown;
    /** Whether the server hands the connection over: commands read from now on are dropped unanswered. */
    boolean handingOver;
    /** Whether the channel is closed or closing: replies are released, not written. */
    boolean closed;

    /** How long a handed-over connection waits for the client to close after the last reply. */
    static final long HAND_OVER_GRACE_MILLIS = 2000;

    ConnectionEnd(TransmissionHandler h) {
        this.h = h;
    }

    /** Whether the connection takes no new commands. */
    boolean ending() {
        // A connection being handed over reads on, dropping what it reads, until the client closes.
        return !handingOver && (disconnecting || shuttingDown || closed);
    }

    /** proto.md NBD_CMD_DISC: handle every outstanding request, then close. */
    void beginDisconnect() {
        disconnecting = true;
        h.flow.update();
        h.releasePending();
    }

    void shutdown() {
        shuttingDown = true;
        h.flow.update();
        h.drain();
    }

    /**
     * Starts a hand-over: the commands read so far are answered as usual; {@code answered} counts them.
     */
    void handOver(LongAdder answered) {
        if (closed || handingOver) {
            return;
        }
        handingOver = true;
        answered.add(h.inFlight + h.pending.size());
        h.flow.update();
        h.drain();
        maybeClose();
    }

    /** Closes once DISC, a stop or a hand-over was seen and nothing is left to answer. */
    void maybeClose() {
        if ((disconnecting || shuttingDown || handingOver) && !h.busy() && !closed) {
            closed = true;
            if (handingOver && !disconnecting && h.ctx.channel() instanceof DuplexChannel duplex) {
                // FIN after the last reply; the close follows when the client closes, or after the grace.
                h.ctx.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(f -> duplex.shutdownOutput());
                h.flow.update();
                h.ctx.executor().schedule(() -> h.ctx.close(), HAND_OVER_GRACE_MILLIS, TimeUnit.MILLISECONDS);
                return;
            }
            h.ctx.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(ChannelFutureListener.CLOSE);
        }
    }

    /** Closes at once: the connection cannot go on in sync. */
    void closeNow() {
        closed = true;
        h.ctx.close();
    }

    void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        String export = h.export.name();
        if (discReceived && cause instanceof NbdCodecException) {
            // proto.md: nothing follows NBD_CMD_DISC. What did is ignored; the replies to the requests before
            // it still go out, and the connection closes after them (maybeClose).
            TransmissionHandler.LOG.log(
                    Level.DEBUG,
                    () -> "ignoring bytes after NBD_CMD_DISC from "
                            + ctx.channel().remoteAddress() + ": " + cause.getMessage());
            return;
        }
        if (cause instanceof NbdCodecException) {
            TransmissionHandler.CLOSES.log(
                    Level.WARNING,
                    () -> "closing connection from " + ctx.channel().remoteAddress() + " to export \"" + export + "\": "
                            + cause.getMessage());
        } else if (cause instanceof IOException) {
            // The peer went away (reset, broken pipe) while replies were being read or written.
            TransmissionHandler.CLOSES.log(
                    Level.INFO,
                    () -> "connection from " + ctx.channel().remoteAddress() + " to export \"" + export + "\" lost: "
                            + cause.getMessage());
        } else {
            TransmissionHandler.LOG.log(
                    Level.WARNING,
                    "closing connection from " + ctx.channel().remoteAddress() + " to export \"" + export + "\"",
                    cause);
        }
        closeNow();
    }
}
