package dev.mqnbd.server.handler;

import dev.mqnbd.server.protocol.NbdCodecException;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import java.io.IOException;
import java.lang.System.Logger.Level;

/**
 * How one connection ends: the client's {@code NBD_CMD_DISC}, a graceful stop of the server ({@link
 * TransmissionHandler#shutdown}), a protocol violation or a lost peer. After DISC or a stop, the requests
 * in flight finish and are answered, then the connection closes ({@link #maybeClose}).
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
    /** Whether the channel is closed or closing: replies are released, not written. */
    boolean closed;

    ConnectionEnd(TransmissionHandler h) {
        this.h = h;
    }

    /** Whether the connection takes no new commands. */
    boolean ending() {
        return disconnecting || shuttingDown || closed;
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

    /** Closes once DISC or a stop was seen and nothing is left to answer. */
    void maybeClose() {
        if ((disconnecting || shuttingDown) && !h.busy() && !closed) {
            closed = true;
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
