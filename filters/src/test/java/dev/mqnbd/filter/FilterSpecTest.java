package dev.mqnbd.filter;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatIllegalArgumentException;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The {@code --filter} grammar and its errors. */
class FilterSpecTest {
    @Test
    void parse_keepsExportKindAndSettingsInOrder() {
        FilterSpec spec = FilterSpec.parse("vm=rate,iops=5000,bandwidth=50M/s");
        assertThat(spec.export()).isEqualTo("vm");
        assertThat(spec.kind()).isEqualTo("rate");
        assertThat(spec.settings().values())
                .containsExactly(java.util.Map.entry("iops", "5000"), java.util.Map.entry("bandwidth", "50M/s"));
        assertThat(spec.describe()).isEqualTo("rate(iops=5000,bandwidth=50M/s)");
        assertThat(spec.appliesTo("vm")).isTrue();
        assertThat(spec.appliesTo("other")).isFalse();
        assertThat(FilterSpec.parse("*=cow").appliesTo("anything")).isTrue();
        assertThat(FilterSpec.parse("=cow").appliesTo("")).isTrue();
    }

    @ParameterizedTest
    @CsvSource(
            delimiter = '|',
            value = {
                "cow                  | --filter: \"cow\" (expected: EXPORT=KIND[,key=value...]",
                "vm=zip               | filter: unknown kind \"zip\" (expected: one of ",
                "vm=rate,iops         | --filter vm=rate,iops: \"iops\" (expected: key=value; rate takes ",
                "vm=rate,speed=5      | --filter vm=rate,speed=5: unknown key \"speed\" (expected: rate takes iops, bandwidth, burst)",
                "vm=rate,iops=1,iops=2 | --filter vm=rate,iops=1,iops=2: \"iops\" given twice (expected: once)",
            })
    void parse_malformed_saysWhatWasExpected(String text, String message) {
        assertThatIllegalArgumentException()
                .isThrownBy(() -> FilterSpec.parse(text))
                .withMessageStartingWith(message);
    }

    @Test
    void settings_typedGetters_nameKeyAndExpectation() {
        FilterSettings s =
                FilterSpec.parse("x=delay,read=1.5s,write=250us,flush=7").settings();
        assertThat(s.duration("read", Duration.ZERO)).isEqualTo(Duration.ofMillis(1500));
        assertThat(s.duration("write", Duration.ZERO)).isEqualTo(Duration.ofNanos(250_000));
        assertThat(s.duration("flush", Duration.ZERO)).isEqualTo(Duration.ofMillis(7));
        assertThat(s.duration("trim", Duration.ofSeconds(3))).isEqualTo(Duration.ofSeconds(3));
        assertThatIllegalArgumentException()
                .isThrownBy(
                        () -> FilterSpec.parse("x=delay,read=soon").settings().duration("read", Duration.ZERO))
                .withMessage("filter delay: read=soon (expected: a duration such as 500us, 10ms or 2s, below an hour)");
        assertThat(FilterSpec.parse("x=error,rate=2%").settings().probability("rate", 0))
                .isEqualTo(0.02);
        assertThatIllegalArgumentException()
                .isThrownBy(
                        () -> FilterSpec.parse("x=error,rate=1.5").settings().probability("rate", 0))
                .withMessage("filter error: rate=1.5 (expected: a probability from 0 to 1, such as 0.01 or 1%)");
    }
}
