package dev.mqnbd.filter;

import dev.mqnbd.mq.Extents;
import dev.mqnbd.mq.Feature;
import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import dev.mqnbd.mq.ReqFlags;
import dev.mqnbd.mq.ReqOp;
import dev.mqnbd.mq.Request;
import dev.mqnbd.mq.Status;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * {@code cow}: a copy-on-write overlay. Writes, trims and zeroing land in the overlay; reads of bytes
 * never written there come from the layers below, which are opened read-only and never modified. Use
 * it to boot many machines from one golden image, each with its own overlay, or to try destructive
 * changes against a production image. What was written is lost when the server stops.
 *
 * <p>How each request is served (all on the request's context executor):
 *
 * <ul>
 *   <li>READ: when no byte of the range is in the overlay it goes down as it is; when every byte is, the
 *       overlay answers it; otherwise it goes down and, when it ends, the overlay's bytes are copied over
 *       what the base returned (and the base's hole report for the READ is dropped: the reply is plain data).
 *   <li>WRITE goes to the overlay; DISCARD and WRITE_ZEROES mark the range as zeroes in the overlay and give
 *       back the overlay's space for it; FLUSH and FUA make a file overlay durable.
 *   <li>BLOCK_STATUS merges both layers: where the overlay holds the start of the range, its runs (written:
 *       data; trimmed or zeroed: hole and zero) up to the first byte it does not hold; elsewhere the base's
 *       answer, cut where the overlay's next run begins. A reply may cover less than asked, as NBD allows.
 * </ul>
 *
 * <p>Limits: those of the layers below, made writable (unless the export is served read-only) and with
 * flush, FUA, trim, zeroing (always fast), block status and multi-connection consistency, since one
 * overlay serves every context. READs are copied into a buffer (no zero-copy page views), so the overlay's
 * bytes can be laid over them.
 */
final class CowFilter<N, Q, T, R> extends Filter<FilterContext<N>, N, Q, T, R> {
    private static final System.Logger LOG = System.getLogger(CowFilter.class.getName());

    private final OverlaySource source;
    private final boolean belowHasBlockStatus;
    private final long capacity;
    private final String description;
    private final OverlayMap map = new OverlayMap();
    private volatile @Nullable Overlay overlay;

    /** Returns the overlay; only between start() and stop(), while requests are served. */
    private Overlay overlay() {
        return Objects.requireNonNull(overlay, "the cow overlay is not open");
    }

    /** Opens the overlay when the export starts. */
    @FunctionalInterface
    interface OverlaySource {
        Overlay open(long capacity) throws IOException;
    }

    CowFilter(
            Operations<N, Q, T, R> next,
            QueueLimits below,
            boolean readOnly,
            OverlaySource source,
            String description) {
        super(next, limits(below, readOnly));
        this.source = source;
        this.belowHasBlockStatus = below.has(Feature.BLOCK_STATUS);
        this.capacity = below.capacity();
        this.description = description;
    }

    static QueueLimits limits(QueueLimits below, boolean readOnly) {
        EnumSet<Feature> features =
                below.features().isEmpty() ? EnumSet.noneOf(Feature.class) : EnumSet.copyOf(below.features());
        features.addAll(Feature.writableDisk());
        features.add(Feature.WRITE_SEGMENTS);
        features.remove(Feature.READ_SEGMENTS);
        int logical = below.logicalBlockSize();
        return new QueueLimits(
                below.capacity(),
                logical,
                below.physicalBlockSize(),
                below.maxTransferBytes(),
                Math.max(logical, 512),
                features,
                readOnly);
    }

    @Override
    protected FilterContext<N> newContext(N next, int index) {
        return new FilterContext<>(next, index);
    }

    @Override
    protected void start() throws IOException {
        overlay = source.open(capacity);
    }

    @Override
    protected void stop() throws IOException {
        Overlay o = overlay;
        overlay = null;
        if (o != null) {
            o.close();
        }
    }

    @Override
    public Status queueRq(FilterContext<N> hw, Q queue, Request<R> rq, boolean isLast) {
        long from = rq.offset();
        long to = from + rq.length();
        if (rq.op() == ReqOp.READ && map.allBase(from, to)) {
            return pass(hw, queue, rq, isLast);
        }
        if (rq.op() == ReqOp.BLOCK_STATUS && belowHasBlockStatus && map.stateAt(from) == OverlayMap.BASE) {
            return pass(hw, queue, rq, isLast);
        }
        if (rq.op() == ReqOp.READ && !map.noBase(from, to)) {
            return pass(hw, queue, rq, isLast); // mixed: the overlay's bytes are laid over it in ended()
        }
        took(hw, queue, isLast);
        Status status;
        try {
            status = serve(rq, from, to);
        } catch (IOException e) {
            LOG.log(Level.ERROR, "cow overlay " + overlay + ": " + rq.op() + " at " + from + " failed: " + e);
            status = e.getMessage() != null && e.getMessage().contains("No space") ? Status.NO_SPACE : Status.IO_ERROR;
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "cow overlay " + overlay + ": failed to serve " + rq, e);
            status = Status.IO_ERROR;
        }
        rq.end(status);
        return Status.OK;
    }

    /** Serves a request the overlay answers alone. */
    private Status serve(Request<R> rq, long from, long to) throws IOException {
        if (limits().readOnly()
                && rq.op() != ReqOp.READ
                && rq.op() != ReqOp.FLUSH
                && rq.op() != ReqOp.CACHE
                && rq.op() != ReqOp.BLOCK_STATUS) {
            return Status.READ_ONLY;
        }
        return switch (rq.op()) {
            case READ -> {
                overlayOnto(Objects.requireNonNull(rq.data()), from, to);
                yield Status.OK;
            }
            case WRITE -> {
                long at = from;
                for (int i = 0, n = rq.segmentCount(); i < n; i++) {
                    ByteBuffer src = rq.segment(i);
                    if (!overlay().write(at, src, src.position(), src.remaining())) {
                        yield Status.NO_SPACE;
                    }
                    at += src.remaining();
                }
                map.set(from, to, OverlayMap.DATA);
                if (rq.hasFlag(ReqFlags.FUA)) {
                    overlay().sync();
                }
                yield Status.OK;
            }
            case DISCARD, WRITE_ZEROES -> {
                map.set(from, to, OverlayMap.ZERO);
                overlay().release(from, to - from);
                if (rq.hasFlag(ReqFlags.FUA)) {
                    overlay().sync();
                }
                yield Status.OK;
            }
            case FLUSH -> {
                overlay().sync();
                yield Status.OK;
            }
            case CACHE -> Status.OK;
            case BLOCK_STATUS -> {
                blockStatus(Objects.requireNonNull(rq.extents()), from, to);
                yield Status.OK;
            }
        };
    }

    /** Copies the overlay's bytes of {@code [from, to)} (written data, or zeroes) over {@code dst}. */
    private boolean overlayOnto(ByteBuffer dst, long from, long to) throws IOException {
        boolean any = false;
        int base = dst.position();
        long at = from;
        while (at < to) {
            int state = map.stateAt(at);
            long end = map.runEnd(at, to);
            int index = base + (int) (at - from);
            int length = (int) (end - at);
            if (state == OverlayMap.DATA) {
                overlay().read(at, dst, index, length);
                any = true;
            } else if (state == OverlayMap.ZERO) {
                for (int i = 0; i < length; i++) {
                    dst.put(index + i, (byte) 0);
                }
                any = true;
            }
            at = end;
        }
        return any;
    }

    /** Reports the overlay's runs from {@code from} until the first byte it does not hold (or the base's, as data). */
    private void blockStatus(Extents out, long from, long to) {
        long at = from;
        while (at < to) {
            int state = map.stateAt(at);
            if (state == OverlayMap.BASE && belowHasBlockStatus && at > from) {
                return; // the client asks again from here, and the base answers
            }
            long end = map.runEnd(at, to);
            int flags = state == OverlayMap.ZERO ? Extents.HOLE | Extents.ZERO : 0;
            if (!out.add(end - at, flags)) {
                return;
            }
            at = end;
        }
    }

    @Override
    protected void ended(@Nullable FilterContext<N> hw, Request<R> rq, boolean wasPassed) {
        if (!wasPassed || rq.status() != Status.OK) {
            return;
        }
        long from = rq.offset();
        long to = from + rq.length();
        if (rq.op() == ReqOp.READ) {
            try {
                if (overlayOnto(Objects.requireNonNull(rq.data()), from, to) && rq.extents() != null) {
                    rq.extents().clear(); // the base's holes may hold overlay data now: send it all as data
                }
            } catch (IOException e) {
                // The status is final by now: all that is left is to say so loudly.
                LOG.log(
                        Level.ERROR,
                        "cow overlay " + overlay + ": READ at " + from + " failed after the base"
                                + " answered; the client got the base's bytes for this range: " + e);
            }
        } else if (rq.op() == ReqOp.BLOCK_STATUS && rq.extents() != null) {
            cut(rq.extents(), map.runEnd(from, to) - from);
        }
    }

    /** Cuts the runs in {@code out} so that they cover at most {@code length} bytes. */
    private static void cut(Extents out, long length) {
        if (out.total() <= length) {
            return;
        }
        int n = out.count();
        long[] lengths = new long[n];
        int[] flags = new int[n];
        for (int i = 0; i < n; i++) {
            lengths[i] = out.runLength(i);
            flags[i] = out.runFlags(i);
        }
        out.clear();
        long left = length;
        for (int i = 0; i < n && left > 0; i++) {
            long run = Math.min(lengths[i], left);
            out.add(run, flags[i]);
            left -= run;
        }
    }

    /** Returns how many separate runs the overlay map holds. */
    int mapRuns() {
        return map.size();
    }

    @Override
    public Map<String, Long> gauges() {
        return Map.of("overlay_runs", (long) map.size());
    }

    @Override
    public String toString() {
        return description;
    }

    /** The {@code cow} kind. */
    public static final class Kind extends DescribedFilterKind {
        /** Creates the kind; {@link java.util.ServiceLoader} calls this. */
        public Kind() {
            super(
                    "cow",
                    "copy-on-write: writes go to an overlay, the export below is never modified",
                    List.of("overlay=memory|file:PATH  where written data lives: RAM (default), or a scratch file"
                            + " that must not exist, created at start and unlinked at once (its space is freed when the"
                            + " server stops, however it stops)"),
                    "vm1=cow,overlay=file:/var/tmp/vm1.overlay");
        }

        @Override
        public boolean opensBelowReadOnly() {
            return true;
        }

        @Override
        public <N, Q, T, R> Filter<?, N, Q, T, R> create(
                Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context)
                throws IOException {
            String where = settings.get("overlay").orElse("memory");
            OverlaySource source;
            if (where.equals("memory")) {
                source = Overlay.Memory::new;
            } else if (where.startsWith("file:") && where.length() > 5) {
                Path path = Path.of(where.substring(5));
                if (Files.exists(path)) {
                    throw new IOException("filter cow: overlay file " + path
                            + " exists (expected: a path to create; the overlay is scratch, unlinked once open)");
                }
                Path parent = path.toAbsolutePath().getParent();
                if (parent != null && !Files.isDirectory(parent)) {
                    throw new IOException("filter cow: overlay directory " + parent + " does not exist");
                }
                source = capacity -> new Overlay.File(path, capacity);
            } else {
                throw settings.bad("overlay", where, "memory or file:PATH");
            }
            return new CowFilter<>(next, below, context.readOnly(), source, "cow(overlay=" + where + ")");
        }
    }
}
