package dev.mqnbd.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class SizesTest {

    /* --------------- parse --------------- */

    @ParameterizedTest
    @CsvSource({
        "0, 0",
        "512, 512",
        "1K, 1024",
        "1k, 1024",
        "1KiB, 1024",
        "1kb, 1024",
        "1536K, 1572864",
        "1M, 1048576",
        "1G, 1073741824",
        "' 2G ', 2147483648",
        "1T, 1099511627776",
        "1P, 1125899906842624",
        "7E, 8070450532247928832",
        "9223372036854775807, 9223372036854775807",
        "100B, 100"
    })
    void parse_validSize_returnsBytes(String text, long bytes) {
        assertThat(Sizes.parse(text)).isEqualTo(bytes);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "abc", "1.5G", "G", "1X", "1 G", "0x10", "9223372036854775808"})
    void parse_notASize_throws(String text) {
        assertThatThrownBy(() -> Sizes.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("size: \"" + text + "\" (expected: a number of bytes, optionally with K, M, G, T, P or E)");
    }

    @ParameterizedTest
    @ValueSource(strings = {"-1", "-1G", "8E", "8192P", "9007199254740992K"})
    void parse_outOfRange_throws(String text) {
        assertThatThrownBy(() -> Sizes.parse(text))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("size: \"" + text + "\" (expected: 0 to 8 EiB - 1)");
    }

    /* --------------- format --------------- */

    @ParameterizedTest
    @CsvSource({
        "0, 0",
        "1000, 1000",
        "1024, 1K",
        "1572864, 1536K",
        "1073741824, 1G",
        "1099511627776, 1T",
        "1152921504606846976, 1E",
        "1049088, 1049088"
    })
    void format_printsLargestUnitThatDivides(long bytes, String text) {
        assertThat(Sizes.format(bytes)).isEqualTo(text);
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 512, 4096, 1 << 20, (1L << 20) + 1536, 1L << 40, 3L << 50, Long.MAX_VALUE})
    void format_thenParse_roundTrips(long bytes) {
        assertThat(Sizes.parse(Sizes.format(bytes))).isEqualTo(bytes);
    }
}
