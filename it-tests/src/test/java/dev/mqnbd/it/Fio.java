package dev.mqnbd.it;

import java.util.ArrayList;
import java.util.List;

/**
 * fio command lines on its {@code nbd} engine, the jobs the tests share, spelled out once. Each method
 * returns the whole command (starting with {@code fio}), to run with {@link Tool#run} on this machine or
 * with {@code Containers.exec} in a client container.
 *
 * <p>The verify jobs write blocks that each carry fio's verify header with a CRC32C of the block, then
 * read every block back and check it: fio exits non-zero at the first block that does not match
 * ({@code --verify_fatal=1}), so a test only needs the exit status. {@code --verify_state_save=0} keeps
 * fio from leaving a state file in the working directory.
 */
public final class Fio {
    private Fio() {}

    /** {@code fio --name=NAME --ioengine=nbd --uri=URI} followed by {@code options}. */
    public static String[] nbd(String name, String uri, String... options) {
        List<String> args = new ArrayList<>(List.of("fio", "--name=" + name, "--ioengine=nbd", "--uri=" + uri));
        args.addAll(List.of(options));
        return args.toArray(String[]::new);
    }

    /**
     * Random writes of {@code blockSizes} (a {@code --bs=} or {@code --bsrange=} option) at {@code depth}
     * over the first {@code size} of the export, from seed {@code seed}, each block verified as described
     * above; {@code more} adds options (an {@code --offset=}, {@code --do_verify=0} for a write-only pass,
     * {@code --verify_only} for a read-only one, several jobs...).
     */
    public static String[] verifiedRandomWrites(
            String name, String uri, String blockSizes, int depth, String size, long seed, String... more) {
        List<String> options = new ArrayList<>(List.of(
                "--rw=randwrite",
                blockSizes,
                "--iodepth=" + depth,
                "--size=" + size,
                "--verify=crc32c",
                "--verify_fatal=1",
                "--verify_state_save=0",
                "--randseed=" + seed));
        options.addAll(List.of(more));
        return nbd(name, uri, options.toArray(String[]::new));
    }

    /**
     * The real clients' first job: 4 KiB random writes at depth 32 over 64 MiB, verified, with fio's
     * JSON report (whose {@code "error" : 0} the tests check).
     */
    public static String[] randomWrites4kVerified(String uri) {
        return verifiedRandomWrites("verify", uri, "--bs=4k", 32, "64m", 2026, "--output-format=json");
    }

    /**
     * The real clients' second job: random writes from 512 bytes to 256 KiB at depth 64 over 32 MiB from
     * {@code offset}, verified; unaligned sizes and many requests in flight at once.
     */
    public static String[] mixedBlockSizesVerified(String uri, String offset) {
        return verifiedRandomWrites("mixed", uri, "--bsrange=512-256k", 64, "32m", 7, "--offset=" + offset);
    }
}
