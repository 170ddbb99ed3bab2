package dev.mqnbd.server.handler;

import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.server.protocol.NbdCommand;
import dev.mqnbd.server.protocol.NbdError;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

/**
 * Work proportional to the range, bounded: a TRIM or WRITE_ZEROES longer than {@link
 * TransmissionHandler#MAX_ZERO_CHUNK} is submitted as consecutive requests of at most that length, one
 * after the other, each a batch of its own, and answered once after the last. No single dispatch on the
 * event loop works through terabytes.
 *
 * <p><b>Threading:</b> the channel's event loop.
 */
final class ZeroChunks {
    /** The pause before the next piece of a split TRIM or WRITE_ZEROES: a turn of the event loop. */
    private static final long CHUNK_YIELD_MICROS = 20;

    private final TransmissionHandler h;
    /** The rest of split requests, submitted before the connection's pending commands. */
    private final ArrayDeque<Chunk> chunks = new ArrayDeque<>();

    ZeroChunks(TransmissionHandler h) {
        this.h = h;
    }

    /** Prepares the first piece of a TRIM or WRITE_ZEROES; the rest follows from {@link #scheduleNext}. */
    static void prepareFirst(Request<?> request, Slot slot, ReqOp op, int flags, long offset, long length) {
        long first = Math.min(length, TransmissionHandler.MAX_ZERO_CHUNK);
        slot.op = op;
        slot.reqFlags = flags;
        slot.chunkOffset = offset + first;
        slot.chunkEnd = offset + length;
        request.prepare(op, flags, offset, first, null);
    }

    boolean isEmpty() {
        return chunks.isEmpty();
    }

    void clear() {
        chunks.clear();
    }

    /** Submits the next pieces of split TRIMs and WRITE_ZEROES, each as a batch of its own. */
    void submit() {
        while (!chunks.isEmpty() && !h.flow.waitingForTag && !h.end.closed) {
            Request<?> request = h.queue.tryAllocate(h.hctx, h.dispatch);
            if (request == null) {
                h.flow.waitForTag();
                break;
            }
            Chunk chunk = chunks.pollFirst();
            Slot slot = h.dispatch.claim(request);
            slot.reset(chunk.cookie, chunk.command, chunk.replyOffset, chunk.nbdFlags);
            slot.op = chunk.op;
            slot.reqFlags = chunk.reqFlags;
            long length = Math.min(chunk.end - chunk.offset, TransmissionHandler.MAX_ZERO_CHUNK);
            slot.chunkEnd = chunk.end;
            slot.chunkOffset = chunk.offset + length;
            request.prepare(chunk.op, chunk.reqFlags, chunk.offset, length, null)
                    .attach(h.peer);
            h.inFlight++;
            // OWNERSHIP: the request belongs to mq-core and the backend until completed; a batch of its own.
            h.queue.submit(request, true);
        }
    }

    /** A piece of {@code slot}'s request completed and more remains: queues the rest after a turn of the loop. */
    void scheduleNext(Slot slot) {
        Chunk next = new Chunk(
                slot.cookie,
                Objects.requireNonNull(slot.command),
                slot.offset,
                slot.flags,
                Objects.requireNonNull(slot.op),
                slot.reqFlags,
                slot.chunkOffset,
                slot.chunkEnd);
        slot.chunkOffset = slot.chunkEnd = 0;
        // Scheduled, not executed: the event loop runs thousands of queued tasks before it polls the sockets
        // again, while a due scheduled task waits for the next turn, after I/O. So other connections are
        // served between the pieces (a piece submitted from here would also run on this very stack).
        h.ctx.executor().schedule(() -> resume(next), CHUNK_YIELD_MICROS, TimeUnit.MICROSECONDS);
    }

    private void resume(Chunk next) {
        h.inFlight--;
        if (h.end.closed || h.end.shuttingDown) {
            // The rest is dropped with the connection; a stop answers what was done so far as failed.
            if (h.end.shuttingDown && !h.end.closed) {
                h.write(h.encoder.failed(
                        h.ctx.alloc(), next.cookie, next.replyOffset, next.command, NbdError.ESHUTDOWN.code()));
            }
            h.end.maybeClose();
            return;
        }
        chunks.addLast(next);
        h.drain();
    }

    /** The rest of a split request: {@code [offset, end)}, answered as {@code cookie} at {@code replyOffset}. */
    private record Chunk(
            long cookie,
            NbdCommand command,
            long replyOffset,
            int nbdFlags,
            ReqOp op,
            int reqFlags,
            long offset,
            long end) {}
}
