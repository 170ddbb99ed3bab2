package dev.mqnbd.mq;

/**
 * Where a driver reports the allocation of a range, run by run from the request's offset: the answer to
 * {@link ReqOp#BLOCK_STATUS}, and optionally, for a {@link ReqOp#READ}, which parts of what it read are
 * holes. The submitter provides it (preallocated) with {@link Request#extents(Extents)}.
 *
 * <p><b>Threading:</b> filled by the driver while it owns the request, read by the submitter after
 * completion; the request's hand-offs order the two.
 */
public interface Extents {
    /** The run is not allocated: writing it may need space. */
    int HOLE = 1;

    /** The run reads as zeroes. */
    int ZERO = 1 << 1;

    /**
     * Appends the next run: {@code length} bytes (positive) with {@code flags} ({@link #HOLE}, {@link
     * #ZERO}, or 0 for data). A run with the same flags as the previous one extends it.
     *
     * @return {@code false} when no more runs fit; the driver stops there (what was added stands)
     */
    boolean add(long length, int flags);

    /** Forgets every run; called by the submitter before it hands the sink to a new request. */
    void clear();

    /** Returns the number of runs added. */
    int count();

    /** Returns the total length of the runs added. */
    long total();

    /**
     * Returns the length of run {@code i}, in the order added (after merging): a filter reads back what
     * the layer below reported, to merge it with its own.
     *
     * @throws IndexOutOfBoundsException if {@code i} is not below {@link #count()}
     */
    long runLength(int i);

    /**
     * Returns the flags of run {@code i}.
     *
     * @throws IndexOutOfBoundsException if {@code i} is not below {@link #count()}
     */
    int runFlags(int i);
}
