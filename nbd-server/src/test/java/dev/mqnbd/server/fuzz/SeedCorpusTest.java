package dev.mqnbd.server.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import dev.mqnbd.server.fuzz.NbdHandshakeFuzzTest.Outcome;
import dev.mqnbd.server.fuzz.ReferenceRequests.Reading;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Keeps the fuzz tests' regression mode honest: the seed files Jazzer replays are on the test class path
 * and are the seeds {@link SeedCorpus} builds, and each seed does what its name says (a handshake seed
 * named "transmission-..." gets through option haggling and is answered in transmission; a decoder seed
 * yields the requests it spells out). Without this, a missing or stale corpus would let {@code @FuzzTest}
 * pass on nothing but the empty input.
 */
class SeedCorpusTest {
    static Stream<Arguments> corpora() {
        return Stream.of(
                Arguments.of("NbdRequestDecoderFuzzTest", "compactHeaders", SeedCorpus.compact()),
                Arguments.of("NbdRequestDecoderFuzzTest", "extendedHeaders", SeedCorpus.extended()),
                Arguments.of("NbdHandshakeFuzzTest", "handshake", SeedCorpus.handshake()),
                Arguments.of("AllTargetsFuzzTest", "anyTarget", SeedCorpus.allTargets()));
    }

    @ParameterizedTest(name = "{0}.{1}")
    @MethodSource("corpora")
    void inputsDirectory_holdsEverySeed(String testClass, String method, Map<String, byte[]> seeds) throws Exception {
        if (Boolean.getBoolean("mqnbd.fuzz.writeSeeds")) {
            SeedCorpus.main(new String[] {"src/test/resources"});
        }
        URL url = SeedCorpusTest.class.getResource(testClass + "Inputs/" + method);
        assertThat(url)
                .as("%sInputs/%s on the test class path (regenerate: -Dmqnbd.fuzz.writeSeeds=true)", testClass, method)
                .isNotNull();
        Path dir = Path.of(url.toURI());
        for (Map.Entry<String, byte[]> seed : seeds.entrySet()) {
            Path file = dir.resolve("seed-" + seed.getKey());
            assertThat(file)
                    .as("seed file (regenerate: -Dmqnbd.fuzz.writeSeeds=true)")
                    .exists();
            assertThat(Files.readAllBytes(file))
                    .as("%s (regenerate: -Dmqnbd.fuzz.writeSeeds=true)", file)
                    .isEqualTo(seed.getValue());
        }
    }

    @Test
    void handshakeSeeds_doWhatTheirNamesSay() throws Exception {
        for (Map.Entry<String, byte[]> seed : SeedCorpus.handshake().entrySet()) {
            String name = seed.getKey();
            Outcome outcome = NbdHandshakeFuzzTest.check(FuzzInput.of(seed.getValue()));
            if (name.startsWith("transmission")) {
                assertThat(outcome.transmission())
                        .as("%s reaches transmission", name)
                        .isTrue();
                assertThat(outcome.transmissionReplies())
                        .as("%s: replies in transmission", name)
                        .isGreaterThan(1);
                if (name.contains("slow-device")) {
                    // Delays, errors, drops and BUSY: every third to seventh request of the slow disk.
                    assertThat(outcome.faultsInjected())
                            .as("%s: faults the slow disk injected", name)
                            .isGreaterThanOrEqualTo(3);
                }
            } else {
                assertThat(outcome.transmission())
                        .as("%s stays in option haggling", name)
                        .isFalse();
            }
        }
        Outcome extended =
                NbdHandshakeFuzzTest.check(FuzzInput.of(SeedCorpus.handshake().get("transmission-extended-headers")));
        assertThat(extended.session().extendedHeaders()).isTrue();
        Outcome listed =
                NbdHandshakeFuzzTest.check(FuzzInput.of(SeedCorpus.handshake().get("list-info-abort")));
        assertThat(listed.optionReplies())
                .as(
                        "LIST (3 exports + ACK), INFO (EXPORT, NAME, DESCRIPTION, BLOCK_SIZE, ACK), INFO unknown, ABORT's ACK")
                .isEqualTo(11);
        assertThat(listed.closedByServer()).isTrue();
        assertThat(NbdHandshakeFuzzTest.check(
                                FuzzInput.of(SeedCorpus.handshake().get("bad-option-magic")))
                        .closedByServer())
                .isTrue();
    }

    @Test
    void decoderSeeds_yieldTheRequestsTheySpellOut() {
        Map<String, byte[]> compact = SeedCorpus.compact();
        for (Map.Entry<String, byte[]> seed : compact.entrySet()) {
            NbdRequestDecoderFuzzTest.check(FuzzInput.of(seed.getValue()), false);
        }
        Map<String, byte[]> extended = SeedCorpus.extended();
        for (Map.Entry<String, byte[]> seed : extended.entrySet()) {
            NbdRequestDecoderFuzzTest.check(FuzzInput.of(seed.getValue()), true);
        }
        int max = NbdRequestDecoderFuzzTest.MAXIMUM_PAYLOAD;
        Reading mixed = ReferenceRequests.read(FuzzInput.of(compact.get("mixed-random-reads")).stream(), false, max);
        assertThat(mixed.requests()).hasSize(9);
        assertThat(mixed.framingError()).isFalse();
        Reading drained = ReferenceRequests.read(
                FuzzInput.of(compact.get("write-above-the-maximum-drained")).stream(), false, max);
        assertThat(drained.requests().get(0).discarded()).isTrue();
        assertThat(ReferenceRequests.read(FuzzInput.of(compact.get("bad-magic-after-a-read")).stream(), false, max)
                        .framingError())
                .isTrue();
        assertThat(ReferenceRequests.read(FuzzInput.of(extended.get("mixed-whole")).stream(), true, max)
                        .requests())
                .hasSize(8);
        assertThat(ReferenceRequests.read(FuzzInput.of(extended.get("negative-payload-length")).stream(), true, max)
                        .framingError())
                .isTrue();
    }
}
