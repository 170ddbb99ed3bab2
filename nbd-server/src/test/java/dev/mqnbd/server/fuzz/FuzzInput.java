package dev.mqnbd.server.fuzz;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * How a fuzz input is read: its first byte says how to cut the rest, the client's byte stream, into
 * socket reads, so the fuzzer explores frame boundaries as well as frame contents.
 *
 * <p>First byte 0: the stream in one read; 1: one byte per read; any other value seeds the sizes of the
 * reads, each 1 to {@link #MAX_CHUNK} bytes. Seed files are written in this format ({@link SeedCorpus}).
 *
 * @param chunking the first byte, unsigned
 * @param stream the bytes the client sends
 */
record FuzzInput(int chunking, byte[] stream) {
    /** The largest read a seeded cut makes. */
    static final int MAX_CHUNK = 256;

    static FuzzInput of(byte[] input) {
        if (input.length == 0) {
            return new FuzzInput(0, input);
        }
        return new FuzzInput(input[0] & 0xff, Arrays.copyOfRange(input, 1, input.length));
    }

    /** Returns the reads, in order; together they are exactly {@link #stream()}. */
    List<byte[]> chunks() {
        List<byte[]> chunks = new ArrayList<>();
        if (stream.length == 0) {
            return chunks; // a client that sends nothing and closes
        }
        if (chunking == 0) {
            chunks.add(stream);
            return chunks;
        }
        SplittableRandom sizes = new SplittableRandom(chunking);
        for (int at = 0; at < stream.length; ) {
            int n = chunking == 1 ? 1 : sizes.nextInt(1, MAX_CHUNK + 1);
            int end = Math.min(stream.length, at + n);
            chunks.add(Arrays.copyOfRange(stream, at, end));
            at = end;
        }
        return chunks;
    }

    /** Returns the largest read {@link #chunks()} makes. */
    int largestChunk() {
        return chunking == 0 ? stream.length : chunking == 1 ? 1 : MAX_CHUNK;
    }
}
