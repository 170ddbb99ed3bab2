package dev.mqnbd.server.handler;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;

/**
 * Hands one connection's replies to its channel: in bounded pieces, and never silently.
 *
 * <p>Pieces: a READ reply made of page views (READ_SEGMENTS) has one buffer per page. The epoll transport
 * copies any buffer of more than {@code IOV_MAX} (1,024) pieces into a new direct buffer before writing
 * it, which for a 32 MiB reply is a 32 MiB allocation per reply. A reply with more than {@link
 * #MAX_PIECE_BUFFERS} pieces is therefore written as slices of at most {@link #PIECE_BYTES} bytes and at
 * most {@link #MAX_PIECE_BUFFERS} pieces each, none of which is copied.
 *
 * <p>Failures: every write carries a promise; a failed write (the peer went away, or the transport could
 * not allocate) closes the connection and is logged, at most once a second across connections.
 *
 * <p><b>Ownership:</b> {@link #write} consumes the reply. <b>Threading:</b> the channel's event loop.
 */
final class ReplyWriter {
    private static final System.Logger LOG = System.getLogger(TransmissionHandler.class.getName());
    private static final RateLimitedLog FAILURES = new RateLimitedLog(LOG, 1, TimeUnit.SECONDS);

    /** The most buffers one written piece may gather: half the transport's iovec limit. */
    static final int MAX_PIECE_BUFFERS = 512;
    /** The largest piece a many-buffer reply is cut into. */
    static final int PIECE_BYTES = 1 << 20;

    private final ChannelHandlerContext ctx;
    private final String exportName;
    private final ChannelFutureListener onWritten = this::written;
    private boolean failed;

    ReplyWriter(ChannelHandlerContext ctx, String exportName) {
        this.ctx = ctx;
        this.exportName = exportName;
    }

    /** Queues {@code reply} for the next flush; OWNERSHIP: the channel releases it once written or failed. */
    void write(ByteBuf reply) {
        if (reply.nioBufferCount() <= MAX_PIECE_BUFFERS) {
            ctx.write(reply).addListener(onWritten);
            return;
        }
        try {
            int index = reply.readerIndex();
            int end = reply.writerIndex();
            while (index < end) {
                int n = pieceLength(reply, index, end - index);
                // OWNERSHIP: each piece holds its own reference; the reply's own ends in the finally block.
                ctx.write(reply.retainedSlice(index, n)).addListener(onWritten);
                index += n;
            }
        } finally {
            reply.release();
        }
    }

    /** Returns the length of the next piece at {@code index}: at most {@link #PIECE_BYTES} and few enough buffers. */
    static int pieceLength(ByteBuf reply, int index, int left) {
        int n = Math.min(left, PIECE_BYTES);
        while (n > 1 && reply.slice(index, n).nioBufferCount() > MAX_PIECE_BUFFERS) {
            n >>>= 1;
        }
        return n;
    }

    private void written(ChannelFuture future) {
        if (future.isSuccess() || failed) {
            return;
        }
        failed = true;
        Throwable cause = future.cause();
        Level level = cause instanceof java.io.IOException ? Level.INFO : Level.WARNING;
        FAILURES.log(level, () -> "closing connection from " + future.channel().remoteAddress()
                + " to export \"" + exportName + "\": a reply could not be written: " + cause);
        future.channel().close();
    }
}
