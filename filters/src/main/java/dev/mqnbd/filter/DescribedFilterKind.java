package dev.mqnbd.filter;

import java.util.List;

/**
 * The part of a {@link FilterKind} that only describes it: its name, one-line summary, settings and
 * example, given once to the constructor. Kinds extend it and write only {@link #create}.
 */
public abstract class DescribedFilterKind implements FilterKind {
    private final String name;
    private final String summary;
    private final List<String> keys;
    private final String example;

    /**
     * Creates the description.
     *
     * @param name the name the command line uses, e.g. {@code rate}
     * @param summary one line: what the filter does
     * @param keys the settings it takes, each as {@code key=VALUE  what it means}
     * @param example a whole {@code --filter} argument, e.g. {@code vm=rate,iops=5000}
     */
    protected DescribedFilterKind(String name, String summary, List<String> keys, String example) {
        this.name = name;
        this.summary = summary;
        this.keys = List.copyOf(keys);
        this.example = example;
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final String summary() {
        return summary;
    }

    @Override
    public final List<String> keys() {
        return keys;
    }

    @Override
    public final String example() {
        return example;
    }
}
