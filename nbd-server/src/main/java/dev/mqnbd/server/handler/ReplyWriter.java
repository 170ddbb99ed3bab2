package dev.mqnbd.server.handler;

import dev.mqnbd.server.log.RateLimitedLog;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

/**
 * Hands one connection's replies to its channel: in bounded pieces, and never silently.
 *
 * <p>Pieces: a READ reply made of page views (READ_SEGMENTS) has one buffer per run of contiguous pages, and
 * one per page where the backend's pages are buffers of their own (or runs alternate with holes). The epoll transport
 * copies any buffer of more than {@code IOV_MAX} (1,024) pieces into a new direct buffer before writing
 * it, which for a 32 MiB reply is a 32 MiB allocation per reply. A reply with more than {@link
 * #MAX_PIECE_BUFFERS} pieces is therefore written as several buffers of at most {@link
 * #MAX_PIECE_BUFFERS} pieces each (2 MiB of 4 KiB pages), none of which is copied.
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
        // Slices of a composite report the composite's whole count to the transport, so the pieces are new
        // composites over the reply's own memory regions: views, no copy.
        ByteBuffer[] regions;
        try {
            regions = reply.nioBuffers();
        } catch (RuntimeException | OutOfMemoryError e) {
            reply.release();
            throw e;
        }
        ChannelFuture last = null;
        try {
            for (int from = 0; from < regions.length; from += MAX_PIECE_BUFFERS) {
                int to = Math.min(regions.length, from + MAX_PIECE_BUFFERS);
                ByteBuf piece = Unpooled.wrappedBuffer(MAX_PIECE_BUFFERS, Arrays.copyOfRange(regions, from, to));
                last = ctx.write(piece);
                last.addListener(onWritten);
            }
        } finally {
            // OWNERSHIP: the pieces only view the reply's memory; it is released once the last piece is written
            // or failed (or at once if no piece went out).
            if (last == null) {
                reply.release();
            } else {
                last.addListener(f -> reply.release());
            }
        }
    }

    private void written(ChannelFuture future) {
        if (future.isSuccess() || failed) {
            return;
        }
        failed = true;
        Throwable cause = future.cause();
        Level level = cause instanceof IOException ? Level.INFO : Level.WARNING;
        FAILURES.log(
                level,
                () -> "closing connection from " + future.channel().remoteAddress() + " to export \"" + exportName
                        + "\": a reply could not be written: " + cause);
        future.channel().close();
    }
}
