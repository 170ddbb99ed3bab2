package dev.mqnbd.filter;

import dev.mqnbd.mq.Operations;
import dev.mqnbd.mq.QueueLimits;
import java.io.IOException;
import java.util.List;

/**
 * A kind of filter, named on the command line ({@code --filter vm=rate,iops=5000}): its settings, its
 * help, and how it wraps the next layer of an export. Implementations are listed in {@code
 * META-INF/services/dev.mqnbd.filter.FilterKind}.
 *
 * <p><b>Threading:</b> implementations are stateless and safe to share; each {@link #create} makes a
 * filter for one export.
 */
public interface FilterKind {
    /** Returns the name the command line uses, e.g. {@code rate}. */
    String name();

    /** Returns one line: what the filter does. */
    String summary();

    /** Returns the settings it takes, each as {@code key=VALUE  what it means}, for {@code --help}. */
    List<String> keys();

    /** Returns an example of a whole {@code --filter} argument, e.g. {@code vm=rate,iops=5000}. */
    String example();

    /**
     * Returns whether the layers below this filter must be opened read-only: a copy-on-write filter
     * never writes to them. The default is {@code false}.
     */
    default boolean opensBelowReadOnly() {
        return false;
    }

    /**
     * Builds the filter of one export over {@code next}.
     *
     * <p><b>Ownership:</b> the filter's shared state is set up when its first hardware context is built
     * and released after its last is torn down ({@link Filter#start}, {@link Filter#stop}).
     *
     * @param below the limits of the layers below
     * @param settings the filter's settings; unknown keys were already refused
     * @throws IllegalArgumentException if a setting is malformed; the message names it and what was expected
     * @throws IOException if the filter cannot open what it needs
     */
    <N, Q, T, R> Filter<?, N, Q, T, R> create(
            Operations<N, Q, T, R> next, QueueLimits below, FilterSettings settings, StackContext context)
            throws IOException;
}
