package dev.mqnbd.server.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.Arrays;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * Every fuzz target behind one {@code @FuzzTest}, for the short fuzzing run of the normal build: Jazzer
 * fuzzes one method per JVM, and starting its agent costs more than a short run itself, so one run
 * shares its time among {@link NbdRequestDecoderFuzzTest#compactHeaders}, {@link
 * NbdRequestDecoderFuzzTest#extendedHeaders} and {@link NbdHandshakeFuzzTest#handshake}, with the same
 * properties. The input's first byte picks the target (its value mod 3); the rest is that target's input.
 *
 * <p>Seed corpus: {@code AllTargetsFuzzTestInputs/anyTarget/}, the three targets' seeds with their
 * selector byte ({@link SeedCorpus#allTargets}).
 */
class AllTargetsFuzzTest {
    @BeforeAll
    static void quiet() {
        QuietLogs.silence();
    }

    @AfterAll
    static void loud() {
        QuietLogs.restore();
    }

    @FuzzTest(maxDuration = "10m")
    void anyTarget(byte[] input) throws Exception {
        if (input.length == 0) {
            return;
        }
        FuzzInput rest = FuzzInput.of(Arrays.copyOfRange(input, 1, input.length));
        switch (Byte.toUnsignedInt(input[0]) % 3) {
            case 0 -> NbdRequestDecoderFuzzTest.check(rest, false);
            case 1 -> NbdRequestDecoderFuzzTest.check(rest, true);
            default -> NbdHandshakeFuzzTest.check(rest);
        }
    }
}
